"""Policies for the decision core's tests, built as the core takes them: no environment parser.

``policy`` starts from ``OPEN``, a policy whose limits that a test does not name are open
wide, so that each test sees one rule, and changes the fields it is given by name,
wherever they are in the policy: ``policy("target", scale_down_stabilization=300)``.
"""

from dataclasses import fields, replace

from autoscaler.core.model import (
    Behaviour,
    Forecasting,
    MetricThresholds,
    Policy,
    RateLimit,
    Thresholds,
)

OPEN = Policy(
    algorithm="linear",
    min_replicas=1,
    max_replicas=50,
    metrics=("cpu", "memory", "latency", "errors"),
    metrics_by_default=True,
    thresholds=MetricThresholds(
        cpu=Thresholds(up=70.0, down=20.0),
        memory=Thresholds(up=80.0, down=40.0),
        latency=Thresholds(up=1000.0, down=200.0),
        errors=Thresholds(up=5.0, down=None),
    ),
    behaviour=Behaviour(
        scale_up_cooldown=0.0,
        scale_down_cooldown=0.0,
        scale_down_stabilization=0.0,
        scale_up_rate=RateLimit(replicas=100, percent=100.0, period=30.0),
        scale_down_rate=RateLimit(replicas=100, percent=100.0, period=60.0),
        tolerance=0.1,
    ),
    forecasting=Forecasting(startup_time=60.0, check_interval=30.0, season=86_400.0, max_error=0.3),
    metrics_max_age=90.0,
)

CONCURRENCY_2 = {
    "metrics": (*OPEN.metrics, "concurrency"),
    "metrics_by_default": True,
    "concurrency": Thresholds(up=2, down=1),
}
"""2 in flight per replica as a target, beside the default metrics (TARGET_CONCURRENCY_PER_REPLICA=2)."""

_PARTS = ("thresholds", "behaviour", "forecasting")
"""The policy's parts whose fields ``policy`` reaches by name."""


def _names(value: object) -> set[str]:
    return {field.name for field in fields(value)}


def policy(algorithm: str = "linear", base: Policy = OPEN, **changes: object) -> Policy:
    """``base`` with ``algorithm`` and ``changes``, each a field of the policy or of one of its parts.

    Naming ``metrics`` turns ``metrics_by_default`` off unless it is given too, as an
    operator's SCALING_METRICS does.
    """
    top = {name: value for name, value in changes.items() if name in _names(Policy)}
    if "metrics" in top:
        top.setdefault("metrics_by_default", False)
    left, parts = set(changes) - set(top), {}
    for part in _PARTS:
        current = getattr(base, part)
        chosen = {name: changes[name] for name in left & _names(current)}
        if chosen:
            parts[part] = replace(current, **chosen)
        left -= set(chosen)
    if left:
        raise TypeError(f"no such policy field: {sorted(left)}")
    return replace(base, algorithm=algorithm, **top, **parts)


SHIPPED = policy(
    min_replicas=2,
    max_replicas=10,
    scale_down_cooldown=120,
    scale_down_stabilization=300,
    scale_up_rate=RateLimit(4, 100, 30),
    scale_down_rate=RateLimit(2, 50, 60),
    metrics_by_default=True,
)
"""The limits an operator gets who sets none: 2 to 10 replicas, HPA's stabilization and rates."""
