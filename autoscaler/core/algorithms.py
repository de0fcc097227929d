"""The scaling algorithms: each turns one check's readings into a recommended replica count.

An algorithm sees only fresh metrics; limits (stabilization, rate, cooldown, bounds)
are applied afterwards, the same for all of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from autoscaler.core.forecast import Forecaster
from autoscaler.core.model import Action, Metric, Observation, Policy, ServiceState, Thresholds

SATURATION_PERCENT = 100.0
"""Where a percent metric cannot go higher: the far end of 'far above the threshold'."""
SATURATED_CPU = 99.0
"""CPU percent at which the service is taken as saturated: its true load is hidden."""


@dataclass(frozen=True)
class Reading:
    """One fresh metric value with the thresholds it is judged against."""

    metric: Metric
    value: float
    thresholds: Thresholds
    surge: bool = False
    """Concurrency only: the value is the surge window's, far above the target."""


@dataclass(frozen=True)
class Inputs:
    observation: Observation
    readings: tuple[Reading, ...]
    policy: Policy
    state: ServiceState
    now: float
    idle: tuple[Metric, ...] = ()
    """Metrics with too few requests to judge: they ask for nothing and hold nothing."""

    @property
    def current(self) -> int:
        return self.observation.current_replicas

    @property
    def ready(self) -> int:
        """Replicas whose load the metrics describe."""
        ready = self.observation.ready_replicas
        return self.current if ready is None or ready <= 0 else ready


@dataclass(frozen=True)
class Recommendation:
    """What an algorithm asks for, before limits."""

    replicas: int
    message: str
    deciding: Reading | None = None
    threshold: float | None = None
    forecast: float | None = None
    floor: int | None = None
    """The fewest replicas these readings are content with, for stabilization; None: ``replicas``.

    A relative algorithm that asks for "one fewer" is content with any lower count (0),
    so a scale-down waits one stabilization window of continuously low readings, not
    one window per replica removed.
    """
    forecaster: Forecaster | None = None
    """Predictive only: the forecaster after this check's observation."""


UNITS: dict[Metric, str] = {
    "cpu": "%",
    "memory": "%",
    "latency": "ms",
    "errors": "%",
    "rps": " req/s",
    "concurrency": " in flight",
    "external": "",
}


def _unit(metric: Metric) -> str:
    return UNITS[metric]


def _above(inputs: Inputs) -> list[Reading]:
    return [r for r in inputs.readings if r.value > r.thresholds.up]


def _ratio(value: float, threshold: float) -> float:
    """How far a value is from its threshold, as a factor; a zero threshold makes any value far."""
    return value / threshold if threshold > 0 else math.inf


def _worst(readings: list[Reading]) -> Reading:
    return max(readings, key=lambda r: _ratio(r.value, r.thresholds.up))


def _idle_low(inputs: Inputs) -> list[Metric]:
    """Idle metrics that could ask for less: they count as low (no requests, no latency to hold)."""
    return [metric for metric in inputs.idle if inputs.policy.thresholds.of(metric).down is not None]


def _all_low(inputs: Inputs) -> Recommendation | None:
    """One fewer when every metric that can ask for less is below its down threshold, or idle."""
    judged = [(r, r.thresholds.down) for r in inputs.readings if r.thresholds.down is not None]
    idle = _idle_low(inputs)
    if not (judged or idle) or not all(r.value < down for r, down in judged):
        return None
    summary = " and ".join(
        [f"{r.metric} {r.value:.1f}{_unit(r.metric)} < {d:g}{_unit(r.metric)}" for r, d in judged]
        + [f"{metric} idle" for metric in idle]
    )
    if not judged:
        return Recommendation(max(inputs.current - 1, 0), summary, floor=0)
    closest, down = max(judged, key=lambda pair: _ratio(pair[0].value, pair[1]))
    return Recommendation(max(inputs.current - 1, 0), summary, closest, down, floor=0)


def _hold(inputs: Inputs, message: str = "within thresholds") -> Recommendation:
    if not inputs.readings and not inputs.idle:
        message = "no fresh metrics: holding"
    return Recommendation(inputs.current, message)


def _named(reading: Reading) -> str:
    """The metric and its value, and where a surge window's value decides, that it does."""
    surge = " (surge)" if reading.surge else ""
    return f"{reading.metric}{surge} {reading.value:.1f}{_unit(reading.metric)}"


def _up_message(reading: Reading) -> str:
    return f"{_named(reading)} > {reading.thresholds.up:g}{_unit(reading.metric)}"


def linear(inputs: Inputs) -> Recommendation:
    """One replica more when any metric is above its up threshold; one fewer when all are low."""
    above = _above(inputs)
    if above:
        worst = _worst(above)
        return Recommendation(inputs.current + 1, _up_message(worst), worst, worst.thresholds.up)
    return _all_low(inputs) or _hold(inputs)


def far_above(metric: Metric, up: float) -> float:
    """Where a metric counts as far above its threshold.

    Halfway from the threshold to saturation for a percent; twice the threshold for
    latency, requests per second, concurrency and a metric source's value, which have no ceiling.
    """
    if metric in {"latency", "rps", "concurrency", "external"}:
        return 2 * up
    return up + (SATURATION_PERCENT - up) / 2


def exponential(inputs: Inputs) -> Recommendation:
    """Multiply under stress: ×1.5 just above the threshold, rising to ×2 when far above it.

    Scales down like linear, one replica at a time, only when every metric is low.
    """
    above = _above(inputs)
    if above:

        def severity(reading: Reading) -> float:
            up = reading.thresholds.up
            return min(1.0, (reading.value - up) / (far_above(reading.metric, up) - up))

        worst = max(above, key=severity)
        factor = 1.5 + 0.5 * severity(worst)
        replicas = max(inputs.current + 1, math.ceil(inputs.current * factor))
        return Recommendation(replicas, f"{_up_message(worst)}: ×{factor:.2f}", worst, worst.thresholds.up)
    return _all_low(inputs) or _hold(inputs)


PROPORTIONAL: frozenset[Metric] = frozenset({"cpu", "memory", "rps", "concurrency", "external"})
"""Metrics that fall in proportion as replicas are added: the target rule sizes the service by them."""


def _proportional(inputs: Inputs, reading: Reading) -> tuple[int, str]:
    """HPA's count for one metric: ceil(ready × value / target), the current count within the tolerance."""
    goal = reading.thresholds.up
    ratio = reading.value / goal
    if abs(ratio - 1) <= inputs.policy.behaviour.tolerance:
        return inputs.current, "within tolerance"
    if inputs.ready == 0:
        # A service at 0 (its minimum) has no replicas to multiply: one comes on a value above target.
        return (1, "from 0") if ratio > 1 else (0, "at 0")
    replicas = math.ceil(inputs.ready * ratio - 1e-9)
    # Replicas still starting are not in `ready`: never drop them on the way up.
    replicas = max(replicas, inputs.current) if ratio > 1 else min(replicas, inputs.current)
    return replicas, f"ceil({inputs.ready} × {ratio:.2f})"


def _stepwise(inputs: Inputs, reading: Reading) -> tuple[int, str] | None:
    """Latency's and errors' count: one more than the ready replicas above the threshold.

    Neither is proportional to the replicas: latency stays near the service time until
    the tasks saturate and then grows without bound, so a ratio to the target would ask
    for a handful of replicas too many at saturation and for far too few below it. Above
    its threshold such a metric asks for one replica more than those serving (none while
    replicas it asked for are still starting); between its thresholds it holds the count;
    below the lower one (errors have none) it asks for nothing: None.
    """
    thresholds = reading.thresholds
    if reading.value > thresholds.up:
        return max(inputs.current, inputs.ready + 1), f"above {thresholds.up:g}{_unit(reading.metric)}"
    if thresholds.down is None or reading.value < thresholds.down:
        return None
    return inputs.current, "within thresholds"


def target(inputs: Inputs) -> Recommendation:
    """Kubernetes HPA's rule for CPU, memory and requests per replica; one step at a time for the rest.

    A proportional metric asks for ceil(ready × value / target) replicas, with a dead
    band of the policy's tolerance around 1; its target is its scale-up threshold.
    Latency and errors ask for one more replica while above their threshold (see
    ``_stepwise``). The highest count asked for wins. When no metric asks for any count
    (latency below its lower threshold or idle, no proportional metric), one fewer.
    """
    best: Recommendation | None = None
    for reading in inputs.readings:
        if reading.metric in PROPORTIONAL:
            asked: tuple[int, str] | None = _proportional(inputs, reading)
        else:
            asked = _stepwise(inputs, reading)
        if asked is None:
            continue
        replicas, verdict = asked
        goal = reading.thresholds.up
        unit = _unit(reading.metric)
        message = f"{_named(reading)} vs target {goal:g}{unit}: {verdict}"
        if best is None or replicas > best.replicas:
            best = Recommendation(replicas, message, reading, goal)
    return best or _all_low(inputs) or _hold(inputs)


def forecast_horizon(policy: Policy) -> float:
    """Seconds ahead to provide for.

    Until a replica asked for now serves, then until the next chance to act again.
    """
    forecasting = policy.forecasting
    return forecasting.startup_time + max(forecasting.check_interval, policy.behaviour.scale_up_cooldown)


FORECAST_SAMPLES = 10
"""Points at which the forecast over the stabilization window is looked at."""


def _highest_forecast(forecaster: Forecaster, now: float, policy: Policy) -> float:
    """The highest load the forecaster expects within the next stabilization window."""
    window = policy.behaviour.scale_down_stabilization
    step = window / FORECAST_SAMPLES
    return max(forecaster.forecast(now + step * index) for index in range(1, FORECAST_SAMPLES + 1))


def predictive(inputs: Inputs) -> Recommendation:
    """Provide for the load forecast over the horizon, never less than the target rule asks for now.

    The load is the CPU work of the service in replicas' worth at 100 % (CPU % × ready
    replicas), which a forecaster learns incrementally; the forecast is converted to
    replicas at the CPU target. While the forecasts have been bad (mean absolute error
    above the policy's limit), or before enough have been scored, the target rule
    decides alone.
    """
    reactive = target(inputs)
    policy, previous = inputs.policy, inputs.state.forecaster
    horizon = forecast_horizon(policy)
    if previous is None or (previous.horizon, previous.season) != (horizon, policy.forecasting.season):
        # A forecaster made for another horizon or season (the policy changed) starts again.
        previous = Forecaster.start(horizon, policy.forecasting.season)
    cpu = next((r for r in inputs.readings if r.metric == "cpu"), None)
    if cpu is None:
        return replace(reactive, forecaster=previous)
    forecaster = previous.observed(
        inputs.now, cpu.value / 100 * inputs.ready, censored=cpu.value >= SATURATED_CPU
    )
    reactive = replace(reactive, forecaster=forecaster)
    if not forecaster.trusted:
        return replace(reactive, message=reactive.message + "; forecaster warming up")
    if forecaster.error > policy.forecasting.max_error:
        return replace(
            reactive, message=reactive.message + f"; forecasts off by {forecaster.error:.0%}: reactive"
        )
    start = inputs.now + policy.forecasting.startup_time
    peak = max(forecaster.forecast(start), forecaster.forecast(inputs.now + horizon))
    goal = cpu.thresholds.up

    def replicas_for(load: float, utilisation: float) -> int:
        return math.ceil(load / (utilisation / 100) - 1e-9)

    needed = replicas_for(peak, goal)
    if needed <= reactive.replicas:
        if reactive.replicas < inputs.current:
            # While the forecast for the stabilization window would load a smaller count to
            # within the tolerance below the target, the service keeps every replica: a step
            # part of the way down would be one more change, and soon undone.
            lowest = goal * (1 - policy.behaviour.tolerance)
            needed_soon = replicas_for(_highest_forecast(forecaster, inputs.now, policy), lowest)
            if needed_soon > reactive.replicas:
                message = f"{reactive.message}; forecast needs {needed_soon} within the stabilization window"
                return replace(reactive, replicas=inputs.current, message=message, forecast=peak)
        return replace(reactive, forecast=peak)
    message = f"forecast {peak:.2f} replicas of cpu in {horizon:.0f}s at {goal:g}%"
    return Recommendation(needed, message, cpu, goal, peak, forecaster=forecaster)


ALGORITHMS: dict[str, Callable[[Inputs], Recommendation]] = {
    "linear": linear,
    "exponential": exponential,
    "predictive": predictive,
    "target": target,
}


def action_of(current: int, desired: int) -> Action:
    if desired > current:
        return "scale_up"
    if desired < current:
        return "scale_down"
    return "none"
