"""Prometheus metrics of the autoscaler, computed at scrape time from the daemon's state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from autoscaler.leadership import Leadership
from autoscaler.records import DaemonState, ServiceRecord
from autoscaler.traffic import REPORTED_QUANTILES


def _gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _counter(
    name: str, documentation: str, counts: Iterable[tuple[Sequence[str], int]], *labels: str
) -> CounterMetricFamily:
    """A counter family from (label values, count) pairs."""
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    for key, count in sorted(counts, key=lambda pair: tuple(pair[0])):
        family.add_metric(list(key), count)
    return family


class AutoscalerCollector(Collector):
    """The autoscaler's metrics, from the state ``current`` gives at each scrape.

    ``current`` gives the control loop's published snapshot: a scrape reads one, whole,
    in the server's worker thread.
    """

    def __init__(self, current: Callable[[], DaemonState], leadership: Leadership | None = None) -> None:
        self._current = current
        self._leadership = leadership

    def collect(self) -> Iterator[Metric]:
        state = self._current()
        yield from self._per_service(state)
        yield from self._counters(state)
        yield from self._daemon(state)
        yield from self._lease()

    def _lease(self) -> Iterator[Metric]:
        if self._leadership is None:
            return
        status = self._leadership.status()
        active = _gauge(
            "autoscaler_active", "1 if this instance holds the lease and acts, 0 if it stands by.", "instance"
        )
        active.add_metric([status.instance], 1 if status.active else 0)
        yield active
        if status.active_since is not None:
            since = _gauge(
                "autoscaler_active_since_timestamp_seconds",
                "When this instance took the lease, in seconds since the epoch.",
                "instance",
            )
            since.add_metric([status.instance], status.active_since)
            yield since

    def _per_service(self, state: DaemonState) -> Iterator[Metric]:
        current = _gauge(
            "autoscaler_service_replicas", "Replicas in the service's spec at the last check.", "service"
        )
        desired = _gauge(
            "autoscaler_service_desired_replicas", "Replicas the last decision asked for.", "service"
        )
        recommended = _gauge(
            "autoscaler_service_recommended_replicas",
            "Replicas the algorithm asked for at the last decision, before limits.",
            "service",
        )
        limited = _gauge(
            "autoscaler_service_decision_limited",
            "1 for each limit (cooldown, stabilization, rate_limit, bounds...) that changed the last "
            "decision.",
            "service",
            "limit",
        )
        forecast = _gauge(
            "autoscaler_service_forecast_load",
            "Predictive only: the load forecast, in replicas' worth of CPU at 100 %.",
            "service",
        )
        observed = _gauge(
            "autoscaler_service_observed_percent",
            "Metric values the last decision saw, in percent of the task limits.",
            "service",
            "metric",
        )
        valid = _gauge(
            "autoscaler_service_config_valid",
            "1 if the service's labels are valid, 0 if the service is skipped for a bad label.",
            "service",
        )
        unmeasured = _gauge(
            "autoscaler_service_unmeasured_tasks",
            "Running tasks of the service that no collector measured at the last check (no scale-down then).",
            "service",
        )
        for name, record in sorted(state.services.items()):
            valid.add_metric([name], 0 if record.config_error else 1)
            seen = record.observation
            if seen is not None:
                unmeasured.add_metric([name], seen.unmeasured_tasks)
                for metric, value in (("cpu", seen.cpu_percent), ("memory", seen.memory_percent)):
                    if value is not None:
                        observed.add_metric([name, metric], value)
            self._add_decision(name, record, current, desired, recommended, limited, forecast)
        yield from (current, desired, recommended, limited, forecast, observed, valid, unmeasured)
        yield from self._schedules(state)
        yield from self._requests(state)

    @staticmethod
    def _schedules(state: DaemonState) -> Iterator[Metric]:
        active = _gauge(
            "autoscaler_service_schedule_active",
            "1 for each of the service's schedules whose window holds now (the policy file).",
            "service",
            "schedule",
        )
        minimum = _gauge(
            "autoscaler_service_scheduled_min_replicas",
            "The minimum the service's active schedules set; absent while none is active.",
            "service",
        )
        for name, record in sorted(state.services.items()):
            schedule = record.schedule
            for held in schedule.active:
                active.add_metric([name, held], 1)
            if schedule.min_replicas is not None:
                minimum.add_metric([name], schedule.min_replicas)
        yield from (active, minimum)

    def _requests(self, state: DaemonState) -> Iterator[Metric]:
        """Each service's requests at the entry point over the last window."""
        rate = _gauge(
            "autoscaler_service_requests_per_second",
            "Requests per second the entry point answered for the service over the window.",
            "service",
        )
        per_replica = _gauge(
            "autoscaler_service_requests_per_second_per_replica",
            "Requests per second per ready replica over the window (the rps metric).",
            "service",
        )
        latency = _gauge(
            "autoscaler_service_latency_seconds",
            "Response time percentiles over the window, from the entry point's merged histograms.",
            "service",
            "quantile",
        )
        errors = _gauge(
            "autoscaler_service_error_percent",
            "Percent of the window's requests answered with a server error (5xx).",
            "service",
        )
        concurrency = _gauge(
            "autoscaler_service_concurrency",
            "Mean requests in flight at the entry point over the window, all replicas together.",
            "service",
        )
        limit = _gauge(
            "autoscaler_service_rate_limit_rps",
            "The entry point's rate limit at the ready replicas (REPLICA_RPS times them), in requests/s.",
            "service",
        )
        for name, record in sorted(state.services.items()):
            if record.rate_limit_rps is not None:
                limit.add_metric([name], record.rate_limit_rps)
            window = record.requests
            if window is None:
                continue
            rate.add_metric([name], window.rate)
            ready = record.observation.ready_replicas if record.observation else None
            if ready:
                per_replica.add_metric([name], window.rate / ready)
            for quantile in REPORTED_QUANTILES.values():
                seconds = window.counters.quantile(quantile)
                if seconds is not None:
                    latency.add_metric([name, f"{quantile:g}"], seconds)
            if window.error_percent is not None:
                errors.add_metric([name], window.error_percent)
            if window.concurrency is not None:
                concurrency.add_metric([name], window.concurrency)
        yield from (rate, per_replica, latency, errors, concurrency, limit)

    @staticmethod
    def _add_decision(name: str, record: ServiceRecord, *families: GaugeMetricFamily) -> None:
        if record.decision is None:
            return
        current, desired, recommended, limited, forecast = families
        reason = record.decision.reason
        current.add_metric([name], record.decision.current_replicas)
        desired.add_metric([name], record.decision.desired_replicas)
        if reason.recommendation is not None:
            recommended.add_metric([name], reason.recommendation)
        for limit in reason.limited_by:
            limited.add_metric([name, limit], 1)
        if reason.forecast is not None:
            forecast.add_metric([name], reason.forecast)

    def _counters(self, state: DaemonState) -> Iterator[Metric]:
        yield _counter(
            "autoscaler_scale_events",
            "Replica changes made.",
            state.scale_events.items(),
            "service",
            "direction",
        )
        yield _counter(
            "autoscaler_decisions",
            "Decisions made, by outcome.",
            state.decisions.items(),
            "service",
            "action",
        )
        yield _counter(
            "autoscaler_input_problems",
            "Problems with outside input (collector answers, labels, Docker API answers, saved state), "
            "counted when they appear.",
            [((kind,), count) for kind, count in state.problems.appeared.items()],
            "kind",
        )
        failures = [((service,), count) for service, count in state.scale_failures.items()]
        yield _counter(
            "autoscaler_scale_failures", "Service updates the Docker API refused.", failures, "service"
        )

    def _daemon(self, state: DaemonState) -> Iterator[Metric]:
        collectors = _gauge(
            "autoscaler_collectors_answered", "Metrics collectors that answered at the last check."
        )
        collectors.add_metric([], state.collectors_answered)
        docker_up = _gauge("autoscaler_docker_api_up", "1 if the Docker API answered at the last check.")
        docker_up.add_metric([], 0 if state.docker_error else 1)
        active = _gauge(
            "autoscaler_input_problems_active", "Problems with outside input now, by kind.", "kind"
        )
        for kind, count in sorted(Counter(kind for kind, _ in state.problems.active).items()):
            active.add_metric([kind], count)
        unmeasured_nodes = _gauge(
            "autoscaler_nodes_unmeasured", "Nodes running autoscaled tasks whose collector did not answer."
        )
        unmeasured_nodes.add_metric([], len(state.nodes_unmeasured))
        entry_points = _gauge(
            "autoscaler_entry_points_answered", "Entry point instances whose request counters were read."
        )
        entry_points.add_metric([], state.entry_points_answered)
        yield from (collectors, docker_up, active, unmeasured_nodes, entry_points)
        if state.last_successful_check_at is not None:
            last = _gauge(
                "autoscaler_last_successful_check_timestamp_seconds",
                "When the last check that reached the Docker API ended, in seconds since the epoch.",
            )
            last.add_metric([], state.last_successful_check_at)
            yield last
