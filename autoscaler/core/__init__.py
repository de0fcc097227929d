"""The pure decision core: observations, policy, state and the time in; a decision out.

Nothing here does I/O, logs or reads the clock. The live daemon and the simulator
call the same functions.
"""

from autoscaler.core.decide import decide
from autoscaler.core.model import (
    Decision,
    Observation,
    Policy,
    Reason,
    ServiceState,
    Thresholds,
    record_change,
)

__all__ = [
    "Decision",
    "Observation",
    "Policy",
    "Reason",
    "ServiceState",
    "Thresholds",
    "decide",
    "record_change",
]
