"""The scaling policy of a service, from the environment and the service's labels.

Every policy variable can be overridden per service by a label named ``autoscaler.``
followed by the variable's name in lower case, e.g. ``autoscaler.min_replicas``.
Labels are read through the same parser as the environment, so a label is held to
exactly the rules of its variable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import cast

from autoscaler.core import Policy
from autoscaler.core.algorithms import ALGORITHMS
from autoscaler.core.model import (
    METRICS,
    AdmissionLimit,
    Behaviour,
    Forecasting,
    Metric,
    MetricSource,
    MetricThresholds,
    RateLimit,
    Thresholds,
)
from autoscaler.labels import ENABLE_LABEL, LABEL_PREFIX, REPLAY_CLOCK_LABEL, SOURCE_PREFIX, label_name
from autoscaler.sources import parse_source
from common import bounds
from common.bounds import DAY
from common.config import ConfigError, raw, read_bool, read_choice, read_float, read_int

# Variables that make up a policy, with their defaults ("" where the default is derived).
POLICY_VARIABLES: dict[str, str] = {
    "SCALING_ALGORITHM": "linear",
    "SCALING_METRICS": "",
    "MIN_REPLICAS": "2",
    "MAX_REPLICAS": "10",
    "COOLDOWN_PERIOD": "120",
    "SCALE_UP_COOLDOWN": "0",
    "SCALE_DOWN_COOLDOWN": "",
    "SCALE_DOWN_STABILIZATION": "300",
    "SCALE_UP_LIMIT_REPLICAS": "4",
    "SCALE_UP_LIMIT_PERCENT": "100",
    "SCALE_UP_LIMIT_PERIOD": "30",
    "SCALE_DOWN_LIMIT_REPLICAS": "2",
    "SCALE_DOWN_LIMIT_PERCENT": "50",
    "SCALE_DOWN_LIMIT_PERIOD": "60",
    "TARGET_TOLERANCE": "0.1",
    "SCALE_UP_THRESHOLD": "80",
    "SCALE_DOWN_THRESHOLD": "30",
    "CPU_SCALE_UP_THRESHOLD": "70",
    "CPU_SCALE_DOWN_THRESHOLD": "20",
    "MEMORY_SCALE_UP_THRESHOLD": "80",
    "MEMORY_SCALE_DOWN_THRESHOLD": "40",
    "RESPONSE_TIME_SCALE_UP_MS": "1000",
    "RESPONSE_TIME_SCALE_DOWN_MS": "200",
    "ERROR_RATE_SCALE_UP_THRESHOLD": "5",
    "RESPONSE_TIME_PERCENTILE": "95",
    "MIN_REQUESTS_PER_WINDOW": "20",
    "TARGET_RPS_PER_REPLICA": "",
    "TARGET_CONCURRENCY_PER_REPLICA": "",
    "SURGE_THRESHOLD": "2",
    "METRICS_MAX_AGE": "90",
    "REPLICA_STARTUP_TIME": "60",
    "PREDICTIVE_SEASON": "86400",
    "PREDICTIVE_MAX_ERROR": "0.3",
    "PAUSED": "false",
    "DRY_RUN": "false",
    "REPLICA_RPS": "",
    "RATE_LIMIT_BURST_SECONDS": "1",
}

MOST_REPLICAS = 10_000
"""Upper bound of every replica count a policy names."""

# (lowest, highest) of every numeric policy variable.
BOUNDS: dict[str, tuple[float, float]] = {
    "MIN_REPLICAS": (0, MOST_REPLICAS),
    "MAX_REPLICAS": (1, MOST_REPLICAS),
    "COOLDOWN_PERIOD": (0, DAY),
    "SCALE_UP_COOLDOWN": (0, DAY),
    "SCALE_DOWN_COOLDOWN": (0, DAY),
    "SCALE_DOWN_STABILIZATION": (0, DAY),
    "SCALE_UP_LIMIT_REPLICAS": (1, MOST_REPLICAS),
    "SCALE_UP_LIMIT_PERCENT": (1, 10_000),
    "SCALE_UP_LIMIT_PERIOD": (1, DAY),
    "SCALE_DOWN_LIMIT_REPLICAS": (1, MOST_REPLICAS),
    "SCALE_DOWN_LIMIT_PERCENT": (1, 100),
    "SCALE_DOWN_LIMIT_PERIOD": (1, DAY),
    "TARGET_TOLERANCE": (0, 0.9),
    "SCALE_UP_THRESHOLD": (0, 100),
    "SCALE_DOWN_THRESHOLD": (0, 100),
    "CPU_SCALE_UP_THRESHOLD": (0, 100),
    "CPU_SCALE_DOWN_THRESHOLD": (0, 100),
    "MEMORY_SCALE_UP_THRESHOLD": (0, 100),
    "MEMORY_SCALE_DOWN_THRESHOLD": (0, 100),
    "RESPONSE_TIME_SCALE_UP_MS": (1, 1000 * DAY),
    "RESPONSE_TIME_SCALE_DOWN_MS": (0, 1000 * DAY),
    "ERROR_RATE_SCALE_UP_THRESHOLD": (0, 100),
    "RESPONSE_TIME_PERCENTILE": (1, 99.9),
    "MIN_REQUESTS_PER_WINDOW": (1, 1_000_000_000),
    "TARGET_RPS_PER_REPLICA": (0.001, 1_000_000_000),
    "TARGET_CONCURRENCY_PER_REPLICA": (0.001, 1_000_000),
    "SURGE_THRESHOLD": (1, 100),
    "METRICS_MAX_AGE": (1, DAY),
    "REPLICA_STARTUP_TIME": (0, DAY),
    "PREDICTIVE_SEASON": bounds.PREDICTIVE_SEASON,
    "PREDICTIVE_MAX_ERROR": (0, 1),
    "CHECK_INTERVAL": bounds.CHECK_INTERVAL,
    "REPLICA_RPS": bounds.REPLICA_RPS,
    "RATE_LIMIT_BURST_SECONDS": bounds.RATE_LIMIT_BURST_SECONDS,
}

SHARED_VARIABLES = ("CHECK_INTERVAL",)
"""Variables a policy reads that are the daemon's alone: no label overrides them."""


def _number(source: Mapping[str, str], name: str, default: float | None = None) -> float:
    lowest, highest = BOUNDS[name]
    fallback = float(POLICY_VARIABLES[name]) if default is None else default
    return read_float(source, name, fallback, minimum=lowest, maximum=highest)


def _whole(source: Mapping[str, str], name: str) -> int:
    lowest, highest = BOUNDS[name]
    return read_int(source, name, int(POLICY_VARIABLES[name]), minimum=int(lowest), maximum=int(highest))


class _Parser:
    """Reads one policy; a rule between two variables blames the one the caller overrode."""

    def __init__(self, source: Mapping[str, str], overridden: Collection[str]) -> None:
        self.source = source
        self.overridden = overridden

    def pair_error(
        self, low: tuple[str, float], high: tuple[str, float], low_problem: str, high_problem: str
    ) -> ConfigError:
        """``low`` must not exceed ``high``: blame ``high`` only when it alone was overridden.

        The problems are formatted with the other variable's ``name`` and ``value``.
        """
        (low_name, low_value), (high_name, high_value) = low, high
        if high_name in self.overridden and low_name not in self.overridden:
            return ConfigError(
                high_name, f"{high_value:g}", high_problem.format(name=low_name, value=f"{low_value:g}")
            )
        return ConfigError(
            low_name, f"{low_value:g}", low_problem.format(name=high_name, value=f"{high_value:g}")
        )

    def ordered(self, down: tuple[str, float], up: tuple[str, float]) -> Thresholds:
        if down[1] >= up[1]:
            flap = ", or the service would flap"
            raise self.pair_error(
                down, up, "must be below {name}={value}" + flap, "must be above {name}={value}" + flap
            )
        return Thresholds(up=up[1], down=down[1])

    def utilisation(self, prefix: str) -> Thresholds:
        """A utilisation metric's thresholds: its own variable, else the generic one if set, else its default.

        SCALE_UP_THRESHOLD and SCALE_DOWN_THRESHOLD apply to a metric only where its own
        variable is unset, and only when they are set themselves; otherwise the metric
        keeps its own default (CPU 70/20, memory 80/40).
        """
        limits = []
        for direction in ("DOWN", "UP"):
            own = f"{prefix}_SCALE_{direction}_THRESHOLD"
            generic = f"SCALE_{direction}_THRESHOLD"
            name = own if raw(self.source, own) is not None or raw(self.source, generic) is None else generic
            limits.append((name, _number(self.source, name, float(POLICY_VARIABLES[own]))))
        down, up = limits
        return self.ordered(down, up)

    def latency(self) -> Thresholds:
        names = ("RESPONSE_TIME_SCALE_DOWN_MS", "RESPONSE_TIME_SCALE_UP_MS")
        down, up = ((name, _number(self.source, name)) for name in names)
        return self.ordered(down, up)

    def bounds(self) -> tuple[int, int]:
        minimum = _whole(self.source, "MIN_REPLICAS")
        maximum = _whole(self.source, "MAX_REPLICAS")
        if minimum > maximum:
            raise self.pair_error(
                ("MIN_REPLICAS", minimum),
                ("MAX_REPLICAS", maximum),
                "is greater than {name}={value}",
                "is less than {name}={value}",
            )
        return minimum, maximum


DEFAULT_METRICS: tuple[Metric, ...] = ("cpu", "memory", "latency", "errors")
"""Without SCALING_METRICS: these (the request metrics only behind the entry point), and each targeted one."""
TARGET_SCALE_DOWN_FRACTION = 0.5
"""linear and exponential scale down below this fraction of a per-replica target (rps, concurrency)."""
TARGETS: dict[Metric, str] = {
    "rps": "TARGET_RPS_PER_REPLICA",
    "concurrency": "TARGET_CONCURRENCY_PER_REPLICA",
}
"""Metrics that exist only with a target, and the variable that sets it."""
SOURCE_NEEDED = f"a metric source (the {SOURCE_PREFIX}* labels)"


def _metrics(
    source: Mapping[str, str], targeted: Mapping[Metric, Thresholds | None]
) -> tuple[tuple[Metric, ...], bool]:
    """The metrics to scale on, and whether they are the default ones."""
    text = raw(source, "SCALING_METRICS")
    if text is None:
        return (*DEFAULT_METRICS, *(metric for metric, target in targeted.items() if target)), True
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise ConfigError("SCALING_METRICS", text, f"must be a comma-separated list of {', '.join(METRICS)}")
    for metric, target in targeted.items():
        if metric in names and target is None:
            raise ConfigError("SCALING_METRICS", text, f"{metric} needs {TARGETS.get(metric, SOURCE_NEEDED)}")
    return tuple(dict.fromkeys(cast("tuple[Metric, ...]", names))), False


def _target(source: Mapping[str, str], metric: Metric) -> Thresholds | None:
    """A per-replica target's thresholds: up at the target, down at half of it; None when unset."""
    name = TARGETS[metric]
    if raw(source, name) is None:
        return None
    goal = _number(source, name, 0.0)
    return Thresholds(up=goal, down=goal * TARGET_SCALE_DOWN_FRACTION)


def _admission(source: Mapping[str, str]) -> AdmissionLimit | None:
    if raw(source, "REPLICA_RPS") is None:
        return None
    return AdmissionLimit(
        replica_rps=_number(source, "REPLICA_RPS", 0.0),
        burst_seconds=_number(source, "RATE_LIMIT_BURST_SECONDS"),
    )


def _rate(source: Mapping[str, str], direction: str) -> RateLimit:
    return RateLimit(
        replicas=_whole(source, f"SCALE_{direction}_LIMIT_REPLICAS"),
        percent=_number(source, f"SCALE_{direction}_LIMIT_PERCENT"),
        period=_number(source, f"SCALE_{direction}_LIMIT_PERIOD"),
    )


def _behaviour(source: Mapping[str, str]) -> Behaviour:
    cooldown = _number(source, "COOLDOWN_PERIOD")
    return Behaviour(
        # A scale-up waits for the replicas it added to serve (see core.decide), not for a clock.
        scale_up_cooldown=_number(source, "SCALE_UP_COOLDOWN"),
        scale_down_cooldown=_number(source, "SCALE_DOWN_COOLDOWN", cooldown),
        scale_down_stabilization=_number(source, "SCALE_DOWN_STABILIZATION"),
        scale_up_rate=_rate(source, "UP"),
        scale_down_rate=_rate(source, "DOWN"),
        tolerance=_number(source, "TARGET_TOLERANCE"),
    )


def _flag(source: Mapping[str, str], name: str) -> bool:
    return read_bool(source, name, POLICY_VARIABLES[name] == "true")


def parse_policy(
    source: Mapping[str, str],
    overridden: Collection[str] = (),
    metric_source: tuple[MetricSource, Thresholds] | None = None,
) -> Policy:
    """A policy from variables keyed by their environment names; raises ConfigError.

    ``overridden``: the variables a service's labels set, blamed first when two
    variables contradict each other. ``metric_source``: the service's source of the
    ``external`` metric, from its labels, and the thresholds of its value.
    """
    parser = _Parser(source, overridden)
    algorithm = read_choice(
        source, "SCALING_ALGORITHM", POLICY_VARIABLES["SCALING_ALGORITHM"], tuple(ALGORITHMS)
    )
    minimum, maximum = parser.bounds()
    targeted = {metric: _target(source, metric) for metric in TARGETS}
    external = metric_source[1] if metric_source else None
    metrics, by_default = _metrics(source, {**targeted, "external": external})
    return Policy(
        algorithm=algorithm,
        min_replicas=minimum,
        max_replicas=maximum,
        metrics=metrics,
        metrics_by_default=by_default,
        latency_percentile=_number(source, "RESPONSE_TIME_PERCENTILE"),
        min_requests=_whole(source, "MIN_REQUESTS_PER_WINDOW"),
        thresholds=MetricThresholds(
            cpu=parser.utilisation("CPU"),
            memory=parser.utilisation("MEMORY"),
            latency=parser.latency(),
            errors=Thresholds(up=_number(source, "ERROR_RATE_SCALE_UP_THRESHOLD"), down=None),
            rps=targeted["rps"],
            concurrency=targeted["concurrency"],
            external=external,
        ),
        behaviour=_behaviour(source),
        forecasting=Forecasting(
            startup_time=_number(source, "REPLICA_STARTUP_TIME"),
            check_interval=_number(source, "CHECK_INTERVAL", 30.0),
            season=_number(source, "PREDICTIVE_SEASON"),
            max_error=_number(source, "PREDICTIVE_MAX_ERROR"),
        ),
        metrics_max_age=_number(source, "METRICS_MAX_AGE"),
        paused=_flag(source, "PAUSED"),
        dry_run=_flag(source, "DRY_RUN"),
        admission=_admission(source),
        surge_threshold=_number(source, "SURGE_THRESHOLD"),
        source=metric_source[0] if metric_source else None,
    )


def policy_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The policy variables (and the daemon's shared ones) that are set in the environment."""
    names = (*POLICY_VARIABLES, *SHARED_VARIABLES)
    return {name: environ[name] for name in names if raw(environ, name) is not None}


def service_policy(
    environment: Mapping[str, str], labels: Mapping[str, str], touched: Collection[str] | None = None
) -> Policy:
    """The policy of a service: its labels over the environment's policy variables.

    A ConfigError from a label names the label, not the variable. When two values
    contradict each other, the one an operator touched is blamed: a label over an
    environment variable, and of two labels the one in ``touched`` (the labels changed
    since the service was last read), if only one of them is.
    """
    known = {label_name(variable): variable for variable in POLICY_VARIABLES}
    overrides: dict[str, str] = {}
    metric_source = parse_source(labels)
    for label, value in labels.items():
        if (
            not label.startswith(LABEL_PREFIX)
            or label in {ENABLE_LABEL, REPLAY_CLOCK_LABEL}
            or label.startswith(SOURCE_PREFIX)
        ):
            continue
        if label not in known:
            raise ConfigError(label, value, "unknown autoscaler label")
        overrides[known[label]] = value
    try:
        touched_variables = {name for name in overrides if touched is None or label_name(name) in touched}
        return parse_policy(
            {**environment, **overrides},
            overridden=touched_variables or overrides,
            metric_source=metric_source,
        )
    except ConfigError as error:
        if error.name in overrides:
            raise ConfigError(label_name(error.name), overrides[error.name], error.problem) from None
        raise
