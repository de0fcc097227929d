"""The scaling policy of a service, from the environment and the service's labels.

Every policy variable can be overridden per service by a label named ``autoscaler.``
followed by the variable's name in lower case, e.g. ``autoscaler.min_replicas``.
Labels are read through the same parser as the environment, so a label is held to
exactly the rules of its variable.
"""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.core import Policy, Thresholds
from autoscaler.core.decide import ALGORITHMS
from common.config import ConfigError, raw, read_choice, read_float, read_int

LABEL_PREFIX = "autoscaler."
ENABLE_LABEL = "autoscaler.enable"

DEFAULT_UP_THRESHOLD = 80.0
DEFAULT_DOWN_THRESHOLD = 30.0

# Variables that make up a policy, with their defaults.
POLICY_VARIABLES: dict[str, str] = {
    "SCALING_ALGORITHM": "linear",
    "MIN_REPLICAS": "2",
    "MAX_REPLICAS": "10",
    "COOLDOWN_PERIOD": "120",
    "SCALE_UP_THRESHOLD": f"{DEFAULT_UP_THRESHOLD:g}",
    "SCALE_DOWN_THRESHOLD": f"{DEFAULT_DOWN_THRESHOLD:g}",
    "CPU_SCALE_UP_THRESHOLD": "70",
    "CPU_SCALE_DOWN_THRESHOLD": "20",
    "MEMORY_SCALE_UP_THRESHOLD": "80",
    "MEMORY_SCALE_DOWN_THRESHOLD": "40",
    "METRICS_MAX_AGE": "90",
}


def label_name(variable: str) -> str:
    return LABEL_PREFIX + variable.lower()


def _thresholds(source: Mapping[str, str], prefix: str) -> Thresholds:
    """A metric's thresholds: its own variable, else the generic one if set, else its default.

    SCALE_UP_THRESHOLD and SCALE_DOWN_THRESHOLD apply to a metric only where its own
    variable is unset, and only when they are set themselves; otherwise the metric
    keeps its own default (CPU 70/20, memory 80/40).
    """
    limits = []
    for direction in ("UP", "DOWN"):
        own = f"{prefix}_SCALE_{direction}_THRESHOLD"
        generic = f"SCALE_{direction}_THRESHOLD"
        name = own if raw(source, own) is not None or raw(source, generic) is None else generic
        default = float(POLICY_VARIABLES[own])
        limits.append(read_float(source, name, default, minimum=0, maximum=100))
    up, down = limits
    if down >= up:
        raise ConfigError(
            f"{prefix}_SCALE_DOWN_THRESHOLD",
            f"{down:g}",
            f"must be below the scale-up threshold {up:g}, or the service would flap",
        )
    return Thresholds(up=up, down=down)


def parse_policy(source: Mapping[str, str]) -> Policy:
    """A policy from variables keyed by their environment names; raises ConfigError."""
    algorithm = read_choice(source, "SCALING_ALGORITHM", "linear", tuple(ALGORITHMS))
    minimum = read_int(source, "MIN_REPLICAS", int(POLICY_VARIABLES["MIN_REPLICAS"]), minimum=1)
    maximum = read_int(source, "MAX_REPLICAS", int(POLICY_VARIABLES["MAX_REPLICAS"]), minimum=1)
    if minimum > maximum:
        raise ConfigError("MIN_REPLICAS", str(minimum), f"is greater than MAX_REPLICAS={maximum}")
    return Policy(
        algorithm=algorithm,
        min_replicas=minimum,
        max_replicas=maximum,
        cooldown=read_float(source, "COOLDOWN_PERIOD", 120.0, minimum=0),
        cpu=_thresholds(source, "CPU"),
        memory=_thresholds(source, "MEMORY"),
        metrics_max_age=read_float(source, "METRICS_MAX_AGE", 90.0, minimum=1),
    )


def policy_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The policy variables that are set in the environment."""
    return {name: environ[name] for name in POLICY_VARIABLES if raw(environ, name) is not None}


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
