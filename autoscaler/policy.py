"""The scaling policy of a service, from the environment and the service's labels.

Every policy variable can be overridden per service by a label named ``autoscaler.``
followed by the variable's name in lower case, e.g. ``autoscaler.min_replicas``.
Labels are read through the same parser as the environment, so a label is held to
exactly the rules of its variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from autoscaler.core import Policy
from autoscaler.core.algorithms import ALGORITHMS
from autoscaler.core.model import (
    METRICS,
    Behaviour,
    Forecasting,
    Metric,
    MetricThresholds,
    RateLimit,
    Thresholds,
)
from common.config import ConfigError, raw, read_choice, read_float, read_int

LABEL_PREFIX = "autoscaler."
ENABLE_LABEL = "autoscaler.enable"

# Variables that make up a policy, with their defaults ("" where the default is derived).
POLICY_VARIABLES: dict[str, str] = {
    "SCALING_ALGORITHM": "linear",
    "SCALING_METRICS": "cpu,memory",
    "MIN_REPLICAS": "2",
    "MAX_REPLICAS": "10",
    "COOLDOWN_PERIOD": "120",
    "SCALE_UP_COOLDOWN": "",
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
    "METRICS_MAX_AGE": "90",
    "REPLICA_STARTUP_TIME": "60",
    "PREDICTIVE_SEASON": "86400",
    "PREDICTIVE_MAX_ERROR": "0.3",
}

SHARED_VARIABLES = ("CHECK_INTERVAL",)
"""Variables a policy reads that are the daemon's alone: no label overrides them."""


def label_name(variable: str) -> str:
    return LABEL_PREFIX + variable.lower()


def _number(source: Mapping[str, str], name: str, **bounds: float) -> float:
    return read_float(source, name, float(POLICY_VARIABLES[name]), **bounds)


def _whole(source: Mapping[str, str], name: str, minimum: int) -> int:
    return read_int(source, name, int(POLICY_VARIABLES[name]), minimum=minimum)


def _ordered(name_down: str, down: float, up: float) -> None:
    if down >= up:
        raise ConfigError(
            name_down, f"{down:g}", f"must be below the scale-up threshold {up:g}, or the service would flap"
        )


def _utilisation(source: Mapping[str, str], prefix: str) -> Thresholds:
    """A utilisation metric's thresholds: its own variable, else the generic one if set, else its default.

    SCALE_UP_THRESHOLD and SCALE_DOWN_THRESHOLD apply to a metric only where its own
    variable is unset, and only when they are set themselves; otherwise the metric
    keeps its own default (CPU 70/20, memory 80/40).
    """
    limits = []
    for direction in ("UP", "DOWN"):
        own = f"{prefix}_SCALE_{direction}_THRESHOLD"
        generic = f"SCALE_{direction}_THRESHOLD"
        name = own if raw(source, own) is not None or raw(source, generic) is None else generic
        limits.append(read_float(source, name, float(POLICY_VARIABLES[own]), minimum=0, maximum=100))
    up, down = limits
    _ordered(f"{prefix}_SCALE_DOWN_THRESHOLD", down, up)
    return Thresholds(up=up, down=down)


def _metrics(source: Mapping[str, str]) -> tuple[Metric, ...]:
    text = raw(source, "SCALING_METRICS") or POLICY_VARIABLES["SCALING_METRICS"]
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise ConfigError("SCALING_METRICS", text, f"must be a comma-separated list of {', '.join(METRICS)}")
    return tuple(dict.fromkeys(cast("tuple[Metric, ...]", names)))


def _rate(source: Mapping[str, str], direction: str) -> RateLimit:
    return RateLimit(
        replicas=_whole(source, f"SCALE_{direction}_LIMIT_REPLICAS", minimum=1),
        percent=_number(source, f"SCALE_{direction}_LIMIT_PERCENT", minimum=1),
        period=_number(source, f"SCALE_{direction}_LIMIT_PERIOD", minimum=1),
    )


def _behaviour(source: Mapping[str, str]) -> Behaviour:
    cooldown = _number(source, "COOLDOWN_PERIOD", minimum=0)
    return Behaviour(
        scale_up_cooldown=read_float(source, "SCALE_UP_COOLDOWN", cooldown, minimum=0),
        scale_down_cooldown=read_float(source, "SCALE_DOWN_COOLDOWN", cooldown, minimum=0),
        scale_down_stabilization=_number(source, "SCALE_DOWN_STABILIZATION", minimum=0),
        scale_up_rate=_rate(source, "UP"),
        scale_down_rate=_rate(source, "DOWN"),
        tolerance=_number(source, "TARGET_TOLERANCE", minimum=0, maximum=0.9),
    )


def _latency(source: Mapping[str, str]) -> Thresholds:
    up = _number(source, "RESPONSE_TIME_SCALE_UP_MS", minimum=1)
    down = _number(source, "RESPONSE_TIME_SCALE_DOWN_MS", minimum=0)
    _ordered("RESPONSE_TIME_SCALE_DOWN_MS", down, up)
    return Thresholds(up=up, down=down)


def parse_policy(source: Mapping[str, str]) -> Policy:
    """A policy from variables keyed by their environment names; raises ConfigError."""
    algorithm = read_choice(
        source, "SCALING_ALGORITHM", POLICY_VARIABLES["SCALING_ALGORITHM"], tuple(ALGORITHMS)
    )
    minimum = _whole(source, "MIN_REPLICAS", minimum=1)
    maximum = _whole(source, "MAX_REPLICAS", minimum=1)
    if minimum > maximum:
        raise ConfigError("MIN_REPLICAS", str(minimum), f"is greater than MAX_REPLICAS={maximum}")
    return Policy(
        algorithm=algorithm,
        min_replicas=minimum,
        max_replicas=maximum,
        metrics=_metrics(source),
        thresholds=MetricThresholds(
            cpu=_utilisation(source, "CPU"),
            memory=_utilisation(source, "MEMORY"),
            latency=_latency(source),
            errors=Thresholds(
                up=_number(source, "ERROR_RATE_SCALE_UP_THRESHOLD", minimum=0, maximum=100), down=None
            ),
        ),
        behaviour=_behaviour(source),
        forecasting=Forecasting(
            startup_time=_number(source, "REPLICA_STARTUP_TIME", minimum=0),
            check_interval=read_float(source, "CHECK_INTERVAL", 30.0, minimum=0.1),
            season=_number(source, "PREDICTIVE_SEASON", minimum=60),
            max_error=_number(source, "PREDICTIVE_MAX_ERROR", minimum=0, maximum=1),
        ),
        metrics_max_age=_number(source, "METRICS_MAX_AGE", minimum=1),
    )


def policy_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The policy variables (and the daemon's shared ones) that are set in the environment."""
    names = (*POLICY_VARIABLES, *SHARED_VARIABLES)
    return {name: environ[name] for name in names if raw(environ, name) is not None}


def service_policy(environment: Mapping[str, str], labels: Mapping[str, str]) -> Policy:
    """The policy of a service: its labels over the environment's policy variables.

    A ConfigError from a label names the label, not the variable.
    """
    known = {label_name(variable): variable for variable in POLICY_VARIABLES}
    overrides: dict[str, str] = {}
    for label, value in labels.items():
        if not label.startswith(LABEL_PREFIX) or label == ENABLE_LABEL:
            continue
        if label not in known:
            raise ConfigError(label, value, "unknown autoscaler label")
        overrides[known[label]] = value
    try:
        return parse_policy({**environment, **overrides})
    except ConfigError as error:
        if error.name in overrides:
            raise ConfigError(label_name(error.name), error.value, error.problem) from None
        raise
