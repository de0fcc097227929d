"""Values that flow into and out of the decision core."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from autoscaler.core.forecast import Forecaster

Action = Literal["scale_up", "scale_down", "none"]
Limit = Literal[
    "paused",
    "missing_metrics",
    "stabilization",
    "rate_limit",
    "cooldown",
    "replicas_starting",
    "min_replicas",
    "max_replicas",
]
Metric = Literal["cpu", "memory", "latency", "errors", "rps", "concurrency", "external"]
METRICS: tuple[Metric, ...] = ("cpu", "memory", "latency", "errors", "rps", "concurrency", "external")
REQUEST_METRICS: frozenset[Metric] = frozenset({"latency", "errors", "rps", "concurrency"})
"""The metrics measured at the entry point, from the requests it proxied."""
JUDGED_ON_REQUESTS: frozenset[Metric] = frozenset({"latency", "errors"})
"""Metrics that say nothing without enough requests: a window with too few leaves them idle."""


@dataclass(frozen=True)
class Thresholds:
    """Scale up above ``up``; scale down only below ``down`` (None: this metric never asks for less)."""

    up: float
    down: float | None


@dataclass(frozen=True)
class MetricThresholds:
    cpu: Thresholds
    """Percent of the tasks' CPU limit."""
    memory: Thresholds
    """Percent of the tasks' memory limit."""
    latency: Thresholds
    """95th-percentile response time, in milliseconds."""
    errors: Thresholds
    """Percent of responses that are server errors; up only."""
    rps: Thresholds | None = None
    """Requests per second per ready replica; None when no target is set (then rps is no metric)."""
    concurrency: Thresholds | None = None
    """Requests in flight per ready replica; None when no target is set (then it is no metric)."""
    external: Thresholds | None = None
    """The service's metric source's value; None when the service has no source."""

    def of(self, metric: Metric) -> Thresholds:
        thresholds: Thresholds | None = getattr(self, metric)
        if thresholds is None:
            raise ValueError(f"no thresholds for {metric}")
        return thresholds


@dataclass(frozen=True)
class RateLimit:
    """At most the larger (up) or smaller (down) of ``replicas`` and ``percent`` per ``period``."""

    replicas: int
    percent: float
    period: float
    """Seconds."""


@dataclass(frozen=True)
class Behaviour:
    """Limits every algorithm's recommendation goes through, as Kubernetes' HPA behaviour."""

    scale_up_cooldown: float
    """Seconds after the autoscaler's own change before the service may grow; 0 unless set."""
    scale_down_cooldown: float
    """Seconds after any change to the service before it may shrink."""
    scale_down_stabilization: float
    """Seconds of recommendations whose highest is the most a scale-down may go to."""
    scale_up_rate: RateLimit
    scale_down_rate: RateLimit
    tolerance: float
    """The target algorithm's dead band, as a fraction of the target (0.1: within 10 %)."""


@dataclass(frozen=True)
class Forecasting:
    """How the predictive algorithm forecasts."""

    startup_time: float
    """Seconds from a scale-up decision until the new replica serves; the longest a scale-up waits for it."""
    check_interval: float
    """Seconds between two decisions."""
    season: float
    """Seconds in one season (a day); seasonality is used once two whole seasons have been seen."""
    max_error: float
    """Recent mean absolute forecast error (fraction of the load) above which predictive falls back."""


@dataclass(frozen=True)
class AdmissionLimit:
    """The entry point's limit on a service's request rate (the entry point's concern, not the core's)."""

    replica_rps: float
    """Requests per second one replica serves; the limit is this times the replicas that run."""
    burst_seconds: float
    """Seconds' worth of the limit that may arrive at once above it (at least one request)."""


Combine = Literal["sum", "mean", "max"]


@dataclass(frozen=True)
class MetricSource:
    """A value read from Prometheus-text endpoints that a service is scaled on (the daemon reads it)."""

    urls: tuple[str, ...]
    """Endpoints to read; each host is resolved to all its addresses (``tasks.<service>``: every task)."""
    metric: str
    """The sample name, as the endpoint writes it."""
    selector: tuple[tuple[str, str], ...] = ()
    """Labels a sample must have, with these values; the samples that match in one answer are added up."""
    combine: Combine = "sum"
    """How the answers of the tasks combine into one value."""
    per_replica: bool = False
    """The value is divided by the ready replicas (a load to share out), or is the service's as it is."""
    timeout: float = 2.0
    """Seconds an endpoint has to answer."""
    absent_is_zero: bool = False
    """An answer without the metric counts 0 (a queue whose key is gone), rather than as no value."""


@dataclass(frozen=True)
class Policy:
    """How one service is scaled. Built from the environment and the service's labels."""

    algorithm: str
    min_replicas: int
    max_replicas: int
    metrics: tuple[Metric, ...]
    """The metrics the service is scaled on; one of them missing blocks any scale-down."""
    thresholds: MetricThresholds
    behaviour: Behaviour
    forecasting: Forecasting
    metrics_max_age: float
    """Seconds after which an observation counts as stale, as if missing."""
    metrics_by_default: bool = False
    """``metrics`` are the defaults: the request metrics then count only behind the entry point."""
    latency_percentile: float = 95.0
    """The percentile of the response times that ``latency`` is, from 1 to 99.9."""
    min_requests: int = 20
    """Fewest requests in a window that latency and errors are judged on; fewer leave them idle."""
    paused: bool = False
    """Leave the service exactly as it is."""
    dry_run: bool = False
    """Decide, log and report as usual, but change nothing (the daemon's concern, not the core's)."""
    admission: AdmissionLimit | None = None
    """The entry point's rate limit; None: no limit."""
    surge_threshold: float = 2.0
    """Concurrency over the surge window at this many times its target decides instead of the window's."""
    source: MetricSource | None = None
    """Where the ``external`` metric comes from; None: the service has none."""
    scheduled_replicas: int = 0
    """Replicas the active schedules ask for (their minimum; 0: none active). They count as a
    recommendation, as KEDA's cron trigger counts as a metric: after a window the way down
    goes through the stabilization window."""


@dataclass(frozen=True)
class Observation:
    """What was seen of one service at one check."""

    current_replicas: int
    """Replicas in the service's spec."""
    ready_replicas: int | None = None
    """Tasks running and measured; None when unknown (then taken as ``current_replicas``)."""
    cpu_percent: float | None = None
    """Mean CPU use of the tasks, in percent of each task's CPU limit."""
    memory_percent: float | None = None
    """Mean working-set memory of the tasks, in percent of each task's memory limit."""
    latency_ms: float | None = None
    """The policy's percentile of the response times, in milliseconds; None with no requests."""
    error_percent: float | None = None
    """Percent of responses that were server errors; None with no requests."""
    requests: float | None = None
    """Requests the entry point answered over the window; None when it was not read."""
    requests_per_second: float | None = None
    """The service's request rate over the window, all replicas together."""
    concurrency: float | None = None
    """Mean requests in flight at the entry point over the window, all replicas together."""
    surge_concurrency: float | None = None
    """The same over the surge window (a few seconds before the check); None when not read."""
    requests_read_at: float | None = None
    """When the entry point's counters were read, in seconds since the epoch; None if not."""
    behind_entry_point: bool = False
    """The entry point proxies to the service (it has counted it, possibly zero requests)."""
    sampled_at: float | None = None
    """When the collectors sampled CPU and memory, in seconds since the epoch; None if never."""
    unmeasured_tasks: int = 0
    """Running tasks no collector measured: the metrics may ask for more, never for fewer."""
    unread_entry_points: int = 0
    """Entry point instances that gave no counters at this check: request metrics may ask for
    more, never for fewer, since the requests they answered are missing."""
    changed_at: float | None = None
    """When the service's spec last changed (by anyone), in seconds since the epoch; None if unknown."""
    external: float | None = None
    """The metric source's value, combined over its endpoints' tasks; None when not read or not known."""
    external_per_replica: bool = False
    """``external`` is a load to share out over the ready replicas, not the service's value as it is."""
    external_read_at: float | None = None
    """When the metric source was read, in seconds since the epoch; None if never."""

    def per_ready_replica(self, total: float | None) -> float | None:
        ready = self.ready_replicas or self.current_replicas
        return None if total is None or ready <= 0 else total / ready

    def value(self, metric: Metric) -> float | None:
        if metric == "rps":
            return self.per_ready_replica(self.requests_per_second)
        if metric == "concurrency":
            return self.per_ready_replica(self.concurrency)
        if metric == "external":
            return self.per_ready_replica(self.external) if self.external_per_replica else self.external
        return {
            "cpu": self.cpu_percent,
            "memory": self.memory_percent,
            "latency": self.latency_ms,
            "errors": self.error_percent,
        }[metric]

    def read_at(self, metric: Metric) -> float | None:
        """When the metric's source was read: the entry point, the metric source or the collectors."""
        if metric == "external":
            return self.external_read_at
        return self.requests_read_at if metric in REQUEST_METRICS else self.sampled_at


@dataclass(frozen=True)
class ServiceState:
    """What the core remembers about one service between decisions: an immutable value.

    ``decide`` returns the next state in its decision; ``record_change`` the state
    after a change was made. Nothing is changed in place, so a caller can drop a
    decision (a failed update, a conflict) and decide again from the old state.
    """

    replicas: int | None = None
    """The replica count the autoscaler last saw or set; None before the service was first seen."""
    last_scaled_at: float | None = None
    """When the autoscaler last changed the replica count, in seconds since the epoch."""
    last_outside_change_at: float | None = None
    """When someone else last changed the replica count (an operator, a redeploy, another tool)."""
    recommendations: tuple[tuple[float, int], ...] = ()
    """(time, replicas) of recent recommendations, for scale-down stabilization."""
    changes: tuple[tuple[float, int], ...] = ()
    """(time, replicas added or removed) of the autoscaler's recent changes, for rate limits."""
    forecaster: Forecaster | None = None


def record_change(state: ServiceState, now: float, current: int, desired: int) -> ServiceState:
    """The state after the service was changed from ``current`` to ``desired`` replicas at ``now``."""
    if desired == current:
        return state
    return replace(
        state, replicas=desired, last_scaled_at=now, changes=(*state.changes, (now, desired - current))
    )


@dataclass(frozen=True)
class Reason:
    """Why a decision came out as it did: enough to answer "why didn't it scale?"."""

    algorithm: str
    action: Action
    message: str
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    """The threshold or target the deciding metric was held against."""
    recommendation: int | None = None
    """The replica count the algorithm asked for, before limits."""
    limited_by: tuple[Limit, ...] = ()
    """Every limit that changed the recommendation, in the order applied."""
    cooldown_remaining: float | None = None
    """Seconds of cooldown left, when the cooldown held the change back."""
    forecast: float | None = None
    """Predictive only: the load forecast, in replicas' worth of CPU at 100 %."""
    min_replicas: int | None = None
    max_replicas: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    """Every fresh metric value the decision saw."""
    idle: tuple[str, ...] = ()
    """Metrics not judged for too few requests in the window."""

    def as_dict(self) -> dict[str, Any]:
        """The fields that say something, for a log event or /status.

        Read field by field: ``dataclasses.asdict`` copies deeply, and this runs for every
        decision of every service.
        """
        values = ((name, getattr(self, name)) for name in _REASON_FIELDS)
        return {name: value for name, value in values if value is not None and value != ()}


_REASON_FIELDS = tuple(entry.name for entry in fields(Reason))


@dataclass(frozen=True)
class Decision:
    current_replicas: int
    desired_replicas: int
    reason: Reason
    state: ServiceState
    """The service's state after this decision, as long as it is not carried out (see ``record_change``)."""

    @property
    def changes(self) -> bool:
        return self.desired_replicas != self.current_replicas
