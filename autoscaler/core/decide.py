"""The decision for one service at one check: an algorithm's recommendation through the shared limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from autoscaler.core.algorithms import ALGORITHMS, Inputs, Reading, Recommendation, action_of
from autoscaler.core.model import (
    JUDGED_ON_REQUESTS,
    REQUEST_METRICS,
    Decision,
    Limit,
    Metric,
    Observation,
    Policy,
    Reason,
    ServiceState,
    Thresholds,
)

COOLDOWN_SLACK = 0.5
"""Seconds of cooldown left that count as none.

Checks run on a schedule, so a cooldown that is a multiple of the check interval
ends within milliseconds of a check; without slack, clock jitter alone could
hold a change back by a whole check interval.
"""


def applicable_metrics(observation: Observation, policy: Policy) -> tuple[Metric, ...]:
    """The policy's metrics that apply to the service.

    The default metrics include the request metrics only for a service behind the
    entry point; metrics named in the policy apply whatever the service is.
    """
    if policy.metrics_by_default and not observation.behind_entry_point:
        return tuple(metric for metric in policy.metrics if metric not in REQUEST_METRICS)
    return policy.metrics


@dataclass(frozen=True)
class Readings:
    """What the metrics say at one check."""

    fresh: tuple[Reading, ...]
    """The metrics present and no older than the policy allows."""
    idle: tuple[Metric, ...]
    """Metrics judged on requests when the window had too few: they neither ask for more nor hold."""
    applicable: tuple[Metric, ...]

    @property
    def complete(self) -> bool:
        return len(self.fresh) + len(self.idle) == len(self.applicable)


def read_metrics(observation: Observation, policy: Policy, now: float) -> Readings:
    """The applicable metrics, fresh or idle; the others are missing.

    Stale values count as missing, and so do values that cannot be a reading (not a
    finite number, or negative). Latency and errors are judged only with the window's
    request count: over fewer than ``policy.min_requests`` requests they are idle, as a
    service nobody uses has no latency and 1 error in 3 requests says little.
    """
    applicable = applicable_metrics(observation, policy)
    requests = observation.requests
    counted = requests if requests is not None and math.isfinite(requests) and requests >= 0 else None
    fresh, idle = [], []
    for metric in applicable:
        read_at = observation.read_at(metric)
        if read_at is None or now - read_at > policy.metrics_max_age:
            continue
        if metric in JUDGED_ON_REQUESTS:
            if counted is None:
                continue
            if counted < policy.min_requests:
                idle.append(metric)
                continue
        value = observation.value(metric)
        if value is not None and math.isfinite(value) and value >= 0:
            thresholds = policy.thresholds.of(metric)
            surge = _surge(observation, policy, thresholds) if metric == "concurrency" else None
            if surge is not None and surge > value:
                fresh.append(Reading(metric, surge, thresholds, surge=True))
            else:
                fresh.append(Reading(metric, value, thresholds))
    return Readings(tuple(fresh), tuple(idle), applicable)


def _surge(observation: Observation, policy: Policy, thresholds: Thresholds) -> float | None:
    """Concurrency per ready replica over the surge window, when it is far enough above the target to decide.

    A window of METRICS_WINDOW seconds dilutes a surge that began a few seconds before
    the check; the surge window (a few seconds) does not. It decides only when it is at
    least ``policy.surge_threshold`` times the target, as Knative's panic mode does:
    a short window is noisy, and below that a steady load's ups and downs are the long
    window's to judge. It asks for more, never for fewer (it is used only when higher).
    """
    value = observation.per_ready_replica(observation.surge_concurrency)
    if value is None or not math.isfinite(value) or value < policy.surge_threshold * thresholds.up:
        return None
    return value


def _since(entries: tuple[tuple[float, int], ...], oldest: float) -> tuple[tuple[float, int], ...]:
    """The (time, value) entries after ``oldest``.

    As in Kubernetes' HPA, an entry exactly one window or period old has left it.
    """
    return tuple(entry for entry in entries if entry[0] > oldest)


@dataclass(frozen=True)
class OutsideChange:
    """The service's replica count was changed by someone else since the autoscaler last looked."""

    at: float
    before: int
    after: int


def _seen(
    observation: Observation, state: ServiceState, now: float
) -> tuple[ServiceState, OutsideChange | None]:
    """The state with the observed replica count noted, and the outside change it reveals, if any."""
    current = observation.current_replicas
    changed_at = now if observation.changed_at is None else min(now, observation.changed_at)
    if state.replicas is None:
        # A service first seen (or whose state was lost) counts as changed when its spec
        # last changed, so that a cooldown still running is not skipped.
        first_change = state.last_scaled_at if state.last_scaled_at is not None else observation.changed_at
        return replace(state, replicas=current, last_scaled_at=first_change), None
    if current == state.replicas:
        return state, None
    noted = replace(state, replicas=current, last_outside_change_at=changed_at)
    if current > state.replicas:
        # Replicas an operator added are kept for at least one stabilization window.
        noted = replace(noted, recommendations=(*noted.recommendations, (changed_at, current)))
    return noted, OutsideChange(changed_at, state.replicas, current)


def _remembered(policy: Policy, state: ServiceState, now: float, floor: int) -> tuple[tuple[float, int], ...]:
    """The stabilization window's recommendations with this check's, older ones dropped."""
    window = policy.behaviour.scale_down_stabilization
    return (*_since(state.recommendations, now - window), (now, floor))


def _stabilized(recommendations: tuple[tuple[float, int], ...], current: int, desired: int) -> int:
    """A scale-down goes only as low as the highest recommendation within the window."""
    if desired >= current:
        return desired
    highest = max(replicas for _, replicas in recommendations)
    return min(current, max(desired, highest))


def _rate_limited(
    policy: Policy, changes: tuple[tuple[float, int], ...], now: float, current: int, desired: int
) -> int:
    """Changes within a period, counted from the replicas the service had when it began.

    A scale-down that is due may always remove at least one replica per period, as
    Kubernetes' HPA allows, however low the percent.
    """
    behaviour = policy.behaviour
    if desired > current:
        rate = behaviour.scale_up_rate
        added = sum(delta for at, delta in changes if delta > 0 and at > now - rate.period)
        base = current - added
        ceiling = max(base + rate.replicas, math.ceil(base * (1 + rate.percent / 100)))
        return max(current, min(desired, ceiling))
    if desired < current:
        rate = behaviour.scale_down_rate
        removed = -sum(delta for at, delta in changes if delta < 0 and at > now - rate.period)
        base = current + removed
        allowed = max(1, min(rate.replicas, math.floor(base * rate.percent / 100)))
        return min(current, max(desired, base - allowed))
    return desired


def _cooldown_left(policy: Policy, state: ServiceState, now: float, current: int, desired: int) -> float:
    """Seconds before the change may be made.

    A scale-up waits for the autoscaler's own last change; a scale-down also for a
    change someone else made.
    """
    behaviour = policy.behaviour
    changes: tuple[float | None, ...]
    if desired > current:
        cooldown, changes = behaviour.scale_up_cooldown, (state.last_scaled_at,)
    elif desired < current:
        cooldown, changes = (
            behaviour.scale_down_cooldown,
            (state.last_scaled_at, state.last_outside_change_at),
        )
    else:
        return 0.0
    times = [at for at in changes if at is not None]
    if not times:
        return 0.0
    left = cooldown - (now - max(times))
    return left if left > COOLDOWN_SLACK else 0.0


def _starting(policy: Policy, state: ServiceState, observation: Observation, now: float) -> int:
    """Replicas of the spec that do not serve yet, while the next change still waits for them.

    After the autoscaler's own change, the next scale-up waits for evidence rather than
    for a clock: until every replica of the spec runs and is measured, so that the
    metrics it decides on include the replicas it added. A scale-down waits too: Swarm
    may remove any task, and one still starting (a database replica copying its primary)
    must not be the one. It waits at most the time a replica needs to start
    (``startup_time``): one that is not ready by then (no room on any node, a failing
    image) is not waited for any longer.
    """
    ready = observation.ready_replicas
    if ready is None or state.last_scaled_at is None:
        return 0
    if now - state.last_scaled_at > policy.forecasting.startup_time - COOLDOWN_SLACK:
        return 0
    return max(0, observation.current_replicas - ready)


def _requests_unread(observation: Observation, policy: Policy) -> bool:
    """Some entry point instance gave no counters, and the policy may judge the service on requests.

    Whether the service is behind the entry point may be what the unread instance would
    have said, so a policy of default metrics counts too.
    """
    return observation.unread_entry_points > 0 and any(metric in REQUEST_METRICS for metric in policy.metrics)


def _incomplete(observation: Observation, policy: Policy, readings: Readings) -> list[str]:
    """What the metrics leave unsaid, for the decision's message."""
    notes = []
    if observation.unmeasured_tasks:
        notes.append(f"{observation.unmeasured_tasks} running task(s) not measured")
    if _requests_unread(observation, policy):
        notes.append(f"{observation.unread_entry_points} entry point instance(s) not read")
    if readings.idle:
        notes.append(
            f"{' and '.join(readings.idle)} not judged: {observation.requests or 0:g} requests, "
            f"fewer than {policy.min_requests}"
        )
    return notes


def _recommend(
    observation: Observation, policy: Policy, state: ServiceState, now: float, readings: Readings
) -> Recommendation:
    inputs = Inputs(observation, readings.fresh, policy, state, now, idle=readings.idle)
    return ALGORITHMS[policy.algorithm](inputs)


def _held(current: int, message: str, policy: Policy, state: ServiceState) -> Decision:
    reason = Reason(
        algorithm=policy.algorithm,
        action="none",
        message=message,
        recommendation=current,
        limited_by=("paused",),
        min_replicas=policy.min_replicas,
        max_replicas=policy.max_replicas,
    )
    return Decision(current, current, reason, state)


def decide(observation: Observation, policy: Policy, state: ServiceState, now: float) -> Decision:
    """The replica count the service should have now, why, and the service's next state.

    ``now`` is in seconds since the epoch, on the same clock as the observation's
    ``sampled_at`` and the state's times. The state passed in is not changed; a
    change that is made is noted with ``record_change`` on the decision's state.
    """
    current = observation.current_replicas
    state, outside = _seen(observation, state, now)
    if policy.paused:
        return _held(current, "paused by label: left as it is", policy, state)
    if current == 0 and policy.min_replicas > 0:
        return _held(0, "scaled to 0 by hand: treated as paused", policy, state)
    readings = read_metrics(observation, policy, now)
    recommendation = _recommend(observation, policy, state, now, readings)
    limits: list[Limit] = []
    notes: list[str] = []
    cooldown_remaining = None
    if not policy.min_replicas <= current <= policy.max_replicas:
        # A service outside its bounds is brought back at once, whatever the other limits say.
        desired = min(max(current, policy.min_replicas), policy.max_replicas)
        limits.append("min_replicas" if current < policy.min_replicas else "max_replicas")
        return Decision(
            current,
            desired,
            _reason(policy, recommendation, readings, desired, current, limits, notes, cooldown_remaining),
            replace(state, forecaster=recommendation.forecaster),
        )

    def apply(limit: Limit, before: int, after: int) -> int:
        if after != before:
            limits.append(limit)
        return after

    desired = recommendation.replicas
    floor = recommendation.replicas if recommendation.floor is None else recommendation.floor
    complete = (
        readings.complete and observation.unmeasured_tasks == 0 and not _requests_unread(observation, policy)
    )
    notes.extend(_incomplete(observation, policy, readings))
    if desired < current and not complete:
        desired, floor = apply("missing_metrics", desired, current), current
    recommendations = _remembered(policy, state, now, max(floor, policy.scheduled_replicas))
    desired = apply("stabilization", desired, _stabilized(recommendations, current, desired))
    behaviour = policy.behaviour
    longest_period = max(behaviour.scale_up_rate.period, behaviour.scale_down_rate.period)
    changes = _since(state.changes, now - longest_period)
    if outside is not None and outside.after < outside.before and desired > current:
        # Someone cut the replicas (a stack redeploy resets them to the stack file's count)
        # while the metrics ask for more: the count the service just ran with comes back at
        # once, held by neither the cooldown nor the rate limit.
        desired = max(desired, outside.before)
        notes.append(f"restoring {outside.before} replicas after an outside change to {outside.after}")
    else:
        desired = apply("rate_limit", desired, _rate_limited(policy, changes, now, current, desired))
        left = _cooldown_left(policy, state, now, current, desired)
        # A surge's count is the requests in flight over the target, all replicas together: it
        # already provides for the replicas still starting, and waiting for them is what a surge
        # cannot afford.
        surge = recommendation.deciding is not None and recommendation.deciding.surge
        starting = _starting(policy, state, observation, now) if desired != current and not surge else 0
        if left > 0:
            cooldown_remaining = math.ceil(left * 10) / 10
            desired = apply("cooldown", desired, current)
        elif starting:
            notes.append(f"{starting} of {current} replicas not serving yet")
            desired = apply("replicas_starting", desired, current)
    desired = apply("max_replicas", desired, min(desired, policy.max_replicas))
    desired = apply("min_replicas", desired, max(desired, policy.min_replicas))
    return Decision(
        current,
        desired,
        _reason(policy, recommendation, readings, desired, current, limits, notes, cooldown_remaining),
        replace(
            state, recommendations=recommendations, changes=changes, forecaster=recommendation.forecaster
        ),
    )


def _reason(  # noqa: PLR0913, PLR0917 - a reason gathers every part of the decision
    policy: Policy,
    recommendation: Recommendation,
    readings: Readings,
    desired: int,
    current: int,
    limits: list[Limit],
    notes: list[str],
    cooldown_remaining: float | None,
) -> Reason:
    message = "; ".join([recommendation.message, *notes])
    if limits:
        message += "; limited by " + ", ".join(limits)
    if cooldown_remaining is not None:
        message += f" ({cooldown_remaining:g}s of cooldown left)"
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
        metrics={r.metric: round(r.value, 2) for r in readings.fresh},
        idle=readings.idle,
    )
