"""The decision for one service at one check: an algorithm's recommendation through the shared limits."""

from __future__ import annotations

import math
from collections import deque

from autoscaler.core.algorithms import ALGORITHMS, Inputs, Reading, Recommendation, action_of
from autoscaler.core.model import Decision, Limit, Observation, Policy, Reason, ServiceState


def fresh_readings(observation: Observation, policy: Policy, now: float) -> tuple[Reading, ...]:
    """The policy's metrics that are present and no older than it allows; stale ones count as missing."""
    if observation.sampled_at is None or now - observation.sampled_at > policy.metrics_max_age:
        return ()
    readings = []
    for metric in policy.metrics:
        value = observation.value(metric)
        if value is not None:
            readings.append(Reading(metric, value, policy.thresholds.of(metric)))
    return tuple(readings)


def _forget_before(history: deque[tuple[float, int]], oldest: float) -> None:
    """Drop the (time, value) entries older than ``oldest``."""
    while history and history[0][0] < oldest:
        history.popleft()


def _stabilized(policy: Policy, state: ServiceState, now: float, current: int, desired: int) -> int:
    """A scale-down goes only as low as the highest recommendation within the window."""
    window = policy.behaviour.scale_down_stabilization
    state.recommendations.append((now, desired))
    _forget_before(state.recommendations, now - window)
    if desired >= current:
        return desired
    highest = max(replicas for _, replicas in state.recommendations)
    return min(current, max(desired, highest))


def _rate_limited(policy: Policy, state: ServiceState, now: float, current: int, desired: int) -> int:
    """Changes within a period, counted from the replicas the service had when it began."""
    behaviour = policy.behaviour
    _forget_before(state.changes, now - max(behaviour.scale_up_rate.period, behaviour.scale_down_rate.period))
    if desired > current:
        rate = behaviour.scale_up_rate
        added = sum(delta for at, delta in state.changes if delta > 0 and at >= now - rate.period)
        base = current - added
        ceiling = max(base + rate.replicas, math.ceil(base * (1 + rate.percent / 100)))
        return max(current, min(desired, ceiling))
    if desired < current:
        rate = behaviour.scale_down_rate
        removed = -sum(delta for at, delta in state.changes if delta < 0 and at >= now - rate.period)
        base = current + removed
        floor = base - min(rate.replicas, math.floor(base * rate.percent / 100))
        return min(current, max(desired, floor))
    return desired


def _cooldown_left(policy: Policy, state: ServiceState, now: float, current: int, desired: int) -> float:
    if desired == current or state.last_scaled_at is None:
        return 0.0
    behaviour = policy.behaviour
    cooldown = behaviour.scale_up_cooldown if desired > current else behaviour.scale_down_cooldown
    return max(0.0, cooldown - (now - state.last_scaled_at))


def _recommend(
    observation: Observation, policy: Policy, state: ServiceState, now: float, readings: tuple[Reading, ...]
) -> Recommendation:
    return ALGORITHMS[policy.algorithm](Inputs(observation, readings, policy, state, now))


def decide(observation: Observation, policy: Policy, state: ServiceState, now: float) -> Decision:
    """The replica count the service should have now, and why.

    ``now`` is in seconds since the epoch, on the same clock as the observation's
    ``sampled_at`` and the state's times. Appends to the state's recommendation
    history and feeds its forecaster; a change that is made must be reported with
    ``state.record_change``.
    """
    current = observation.current_replicas
    readings = fresh_readings(observation, policy, now)
    limits: list[Limit] = []
    cooldown_remaining = None
    if current == 0:
        recommendation = Recommendation(0, "scaled to 0 by hand: treated as paused")
        desired = 0
        limits.append("paused")
    elif not policy.min_replicas <= current <= policy.max_replicas:
        # A service outside its bounds is brought back at once, whatever the other limits say.
        recommendation = _recommend(observation, policy, state, now, readings)
        desired = min(max(current, policy.min_replicas), policy.max_replicas)
        limits.append("min_replicas" if current < policy.min_replicas else "max_replicas")
    else:
        recommendation = _recommend(observation, policy, state, now, readings)

        def apply(limit: Limit, before: int, after: int) -> int:
            if after != before:
                limits.append(limit)
            return after

        desired = recommendation.replicas
        if desired < current and len(readings) < len(policy.metrics):
            desired = apply("missing_metrics", desired, current)
        desired = apply("stabilization", desired, _stabilized(policy, state, now, current, desired))
        desired = apply("rate_limit", desired, _rate_limited(policy, state, now, current, desired))
        left = _cooldown_left(policy, state, now, current, desired)
        if left > 0:
            cooldown_remaining = round(left, 1)
            desired = apply("cooldown", desired, current)
        desired = apply("max_replicas", desired, min(desired, policy.max_replicas))
        desired = apply("min_replicas", desired, max(desired, policy.min_replicas))
    return Decision(
        current,
        desired,
        _reason(policy, recommendation, readings, desired, current, limits, cooldown_remaining),
    )


def _reason(  # noqa: PLR0913, PLR0917 - a reason gathers every part of the decision
    policy: Policy,
    recommendation: Recommendation,
    readings: tuple[Reading, ...],
    desired: int,
    current: int,
    limits: list[Limit],
    cooldown_remaining: float | None,
) -> Reason:
    message = recommendation.message
    if limits:
        message += "; limited by " + ", ".join(limits)
    if cooldown_remaining is not None:
        message += f" ({cooldown_remaining:.0f}s of cooldown left)"
    deciding = recommendation.deciding
    return Reason(
        algorithm=policy.algorithm,
        action=action_of(current, desired),
        message=message,
        metric=deciding.metric if deciding else None,
        value=round(deciding.value, 2) if deciding else None,
        threshold=recommendation.threshold,
        recommendation=recommendation.replicas,
        limited_by=tuple(limits),
        cooldown_remaining=cooldown_remaining,
        forecast=None if recommendation.forecast is None else round(recommendation.forecast, 3),
        min_replicas=policy.min_replicas,
        max_replicas=policy.max_replicas,
        metrics={r.metric: round(r.value, 2) for r in readings},
    )
