"""Which changes of a service's state a restarted autoscaler must find saved. Pure.

Saving every service's state at every check would cost the managers' Raft store a write
per service per check. What a restart needs to decide as this instance would is less:
the replica count it last saw and set, when it and others last changed it, the changes
within the rate limits' periods, and the highest recommendation of the stabilization
window. Lower recommendations since the last save are what a kill can lose: the
restarted instance may then scale down to them up to ``STATE_SAVE_INTERVAL`` early.
"""

from __future__ import annotations

from autoscaler.core.model import Policy, ServiceState


def stabilization_peak(state: ServiceState, policy: Policy, now: float) -> int | None:
    """The highest recommendation still inside the stabilization window; None with none."""
    oldest = now - policy.behaviour.scale_down_stabilization
    return max((replicas for at, replicas in state.recommendations if at > oldest), default=None)


def matters_for_restart(saved: ServiceState | None, state: ServiceState, policy: Policy, now: float) -> bool:
    """Whether ``state`` holds something that a restart from ``saved`` would decide without.

    A change made or seen (replicas, its times, the changes the rate limits count), and
    a new stabilization peak: a recommendation higher than any saved within the window.
    The forecaster is saved on an interval of its own: it learns a little at every check.
    """
    if saved is None:
        return True
    if (saved.replicas, saved.last_scaled_at, saved.last_outside_change_at, saved.changes) != (
        state.replicas,
        state.last_scaled_at,
        state.last_outside_change_at,
        state.changes,
    ):
        return True
    peak, saved_peak = stabilization_peak(state, policy, now), stabilization_peak(saved, policy, now)
    return peak is not None and (saved_peak is None or peak > saved_peak)
