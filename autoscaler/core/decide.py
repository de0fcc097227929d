"""The decision for one service at one check."""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.core.model import (
    Action,
    Decision,
    Limit,
    Observation,
    Policy,
    Reason,
    ServiceState,
    Thresholds,
)


@dataclass(frozen=True)
class Reading:
    """One fresh metric value with the thresholds it is judged against."""

    metric: str
    value: float
    thresholds: Thresholds


@dataclass(frozen=True)
class Recommendation:
    """What an algorithm asks for, before cooldowns and bounds."""

    replicas: int
    action: Action
    message: str
    deciding: Reading | None = None


def fresh_readings(observation: Observation, policy: Policy, now: float) -> list[Reading]:
    """The metrics present and no older than the policy allows; stale ones count as missing."""
    if observation.sampled_at is None or now - observation.sampled_at > policy.metrics_max_age:
        return []
    candidates = (
        ("cpu", observation.cpu_percent, policy.cpu),
        ("memory", observation.memory_percent, policy.memory),
    )
    return [Reading(name, value, limits) for name, value, limits in candidates if value is not None]


EXPECTED_METRICS = 2
"""CPU and memory: a scale-down needs both to be present and low."""


def linear(current: int, readings: list[Reading]) -> Recommendation:
    """One replica more when any metric is above its up threshold; one fewer when all are low."""
    if not readings:
        return Recommendation(current, "none", "no fresh metrics: holding")
    above = [r for r in readings if r.value > r.thresholds.up]
    if above:
        worst = max(above, key=lambda r: r.value / r.thresholds.up)
        return Recommendation(
            current + 1,
            "scale_up",
            f"{worst.metric} {worst.value:.1f}% > {worst.thresholds.up:g}%",
            worst,
        )
    if len(readings) < EXPECTED_METRICS:
        present = ", ".join(r.metric for r in readings)
        return Recommendation(current, "none", f"only {present} fresh: never scale down on partial data")
    if all(r.value < r.thresholds.down for r in readings):
        closest = max(readings, key=lambda r: r.value / r.thresholds.down)
        summary = " and ".join(f"{r.metric} {r.value:.1f}% < {r.thresholds.down:g}%" for r in readings)
        return Recommendation(current - 1, "scale_down", summary, closest)
    return Recommendation(current, "none", "within thresholds")


ALGORITHMS = {"linear": linear}


def _bounded(replicas: int, policy: Policy) -> tuple[int, Limit | None]:
    if replicas > policy.max_replicas:
        return policy.max_replicas, "max_replicas"
    if replicas < policy.min_replicas:
        return policy.min_replicas, "min_replicas"
    return replicas, None


def _threshold(recommendation: Recommendation) -> float | None:
    deciding = recommendation.deciding
    if deciding is None:
        return None
    if recommendation.action == "scale_up":
        return deciding.thresholds.up
    return deciding.thresholds.down


def decide(observation: Observation, policy: Policy, state: ServiceState, now: float) -> Decision:
    """The replica count the service should have now, and why.

    ``now`` is in seconds since the epoch, on the same clock as the observation's
    ``sampled_at`` and the state's ``last_scaled_at``.
    """
    current = observation.current_replicas
    readings = fresh_readings(observation, policy, now)
    limited_by: Limit | None
    if current == 0:
        recommendation = Recommendation(0, "none", "scaled to 0 by hand: treated as paused")
        desired, limited_by = 0, "paused"
    else:
        recommendation = ALGORITHMS[policy.algorithm](current, readings)
        desired, limited_by = _bounded(recommendation.replicas, policy)
    message = recommendation.message
    if limited_by in {"min_replicas", "max_replicas"}:
        message += f"; bounded by {limited_by}"
    cooldown_remaining = None
    # A service outside its bounds is brought back at once: bounds outrank the cooldown.
    inside_bounds = policy.min_replicas <= current <= policy.max_replicas
    if desired != current and inside_bounds and state.last_scaled_at is not None:
        remaining = policy.cooldown - (now - state.last_scaled_at)
        if remaining > 0:
            desired, limited_by, cooldown_remaining = current, "cooldown", round(remaining, 1)
            message += f"; held by cooldown ({remaining:.0f}s left)"
    action: Action = "none"
    if desired != current:
        action = "scale_up" if desired > current else "scale_down"
    deciding = recommendation.deciding
    reason = Reason(
        algorithm=policy.algorithm,
        action=action,
        message=message,
        metric=deciding.metric if deciding else None,
        value=round(deciding.value, 2) if deciding else None,
        threshold=_threshold(recommendation),
        recommendation=recommendation.replicas,
        limited_by=limited_by,
        cooldown_remaining=cooldown_remaining,
        min_replicas=policy.min_replicas,
        max_replicas=policy.max_replicas,
        metrics={r.metric: round(r.value, 2) for r in readings},
    )
    return Decision(current, desired, reason)
