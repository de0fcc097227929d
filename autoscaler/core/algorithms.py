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


@dataclass(frozen=True)
class Inputs:
    observation: Observation
    readings: tuple[Reading, ...]
    policy: Policy
    state: ServiceState
    now: float

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


def _unit(metric: Metric) -> str:
    return "ms" if metric == "latency" else "%"


def _above(inputs: Inputs) -> list[Reading]:
    return [r for r in inputs.readings if r.value > r.thresholds.up]


def _ratio(value: float, threshold: float) -> float:
    """How far a value is from its threshold, as a factor; a zero threshold makes any value far."""
    return value / threshold if threshold > 0 else math.inf


def _worst(readings: list[Reading]) -> Reading:
    return max(readings, key=lambda r: _ratio(r.value, r.thresholds.up))


def _all_low(inputs: Inputs) -> Recommendation | None:
    """One fewer when every metric that can ask for less is below its down threshold."""
    judged = [(r, r.thresholds.down) for r in inputs.readings if r.thresholds.down is not None]
    if not judged or not all(r.value < down for r, down in judged):
        return None
    closest, down = max(judged, key=lambda pair: _ratio(pair[0].value, pair[1]))
    summary = " and ".join(
        f"{r.metric} {r.value:.1f}{_unit(r.metric)} < {d:g}{_unit(r.metric)}" for r, d in judged
    )
    return Recommendation(inputs.current - 1, summary, closest, down, floor=0)


def _hold(inputs: Inputs, message: str = "within thresholds") -> Recommendation:
    return Recommendation(inputs.current, message if inputs.readings else "no fresh metrics: holding")


def _up_message(reading: Reading) -> str:
    unit = _unit(reading.metric)
    return f"{reading.metric} {reading.value:.1f}{unit} > {reading.thresholds.up:g}{unit}"


def linear(inputs: Inputs) -> Recommendation:
    """One replica more when any metric is above its up threshold; one fewer when all are low."""
    above = _above(inputs)
    if above:
        worst = _worst(above)
        return Recommendation(inputs.current + 1, _up_message(worst), worst, worst.thresholds.up)
    return _all_low(inputs) or _hold(inputs)


def far_above(metric: Metric, up: float) -> float:
    """Where a metric counts as far above its threshold.

    Halfway from the threshold to saturation for a percent; twice the threshold for latency.
    """
    if metric == "latency":
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


def target(inputs: Inputs) -> Recommendation:
    """Kubernetes HPA's rule: ceil(ready × value / target) per metric, the highest; a dead band around 1.

    A metric's target is its scale-up threshold. The error rate, which is not
    proportional to the replicas, takes no part.
    """
    tolerance = inputs.policy.behaviour.tolerance
    best: Recommendation | None = None
    for reading in inputs.readings:
        if reading.metric == "errors":
            continue
        goal = reading.thresholds.up
        ratio = reading.value / goal
        if abs(ratio - 1) <= tolerance:
            replicas, verdict = inputs.current, "within tolerance"
        else:
            replicas = math.ceil(inputs.ready * ratio - 1e-9)
            # Replicas still starting are not in `ready`: never drop them on the way up.
            replicas = max(replicas, inputs.current) if ratio > 1 else min(replicas, inputs.current)
            verdict = f"ceil({inputs.ready} × {ratio:.2f})"
        unit = _unit(reading.metric)
        message = f"{reading.metric} {reading.value:.1f}{unit} vs target {goal:g}{unit}: {verdict}"
        if best is None or replicas > best.replicas:
            best = Recommendation(replicas, message, reading, goal)
    return best or _hold(inputs)


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
