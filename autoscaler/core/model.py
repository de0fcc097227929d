"""Values that flow into and out of the decision core."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Action = Literal["scale_up", "scale_down", "none"]
Limit = Literal["cooldown", "min_replicas", "max_replicas", "paused"]


@dataclass(frozen=True)
class Thresholds:
    """Scale up above ``up``, scale down below ``down``; both in percent of the limit."""

    up: float
    down: float


@dataclass(frozen=True)
class Policy:
    """How one service is scaled. Built from the environment and the service's labels."""

    algorithm: str
    min_replicas: int
    max_replicas: int
    cooldown: float
    """Seconds after a change to the service before the next change."""
    cpu: Thresholds
    memory: Thresholds
    metrics_max_age: float
    """Seconds after which an observation counts as stale, as if missing."""


@dataclass(frozen=True)
class Observation:
    """What was seen of one service at one check."""

    current_replicas: int
    """Replicas in the service's spec."""
    cpu_percent: float | None = None
    """Mean CPU use of the service's tasks, in percent of each task's CPU limit."""
    memory_percent: float | None = None
    """Mean working-set memory of the tasks, in percent of each task's memory limit."""
    sampled_at: float | None = None
    """When the metrics were sampled, in seconds since the epoch; None if never."""


@dataclass(frozen=True)
class ServiceState:
    """What the core remembers about a service between decisions."""

    last_scaled_at: float | None = None
    """When the service's replica count last changed, in seconds since the epoch."""


@dataclass(frozen=True)
class Reason:
    """Why a decision came out as it did: enough to answer "why didn't it scale?"."""

    algorithm: str
    action: Action
    message: str
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    recommendation: int | None = None
    """The replica count the algorithm asked for, before limits."""
    limited_by: Limit | None = None
    cooldown_remaining: float | None = None
    """Seconds of cooldown left, when the cooldown held the change back."""
    min_replicas: int | None = None
    max_replicas: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    """Every fresh metric value the decision saw."""

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class Decision:
    current_replicas: int
    desired_replicas: int
    reason: Reason

    @property
    def changes(self) -> bool:
        return self.desired_replicas != self.current_replicas
