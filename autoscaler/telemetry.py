"""Prometheus metrics of the autoscaler, computed at scrape time from the daemon's state."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from autoscaler.daemon import DaemonState


class AutoscalerCollector(Collector):
    def __init__(self, state: DaemonState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state
        current = GaugeMetricFamily(
            "autoscaler_service_replicas",
            "Replicas in the service's spec at the last check.",
            labels=["service"],
        )
        desired = GaugeMetricFamily(
            "autoscaler_service_desired_replicas", "Replicas the last decision asked for.", labels=["service"]
        )
        observed = GaugeMetricFamily(
            "autoscaler_service_observed_percent",
            "Metric values the last decision saw, in percent of the task limits.",
            labels=["service", "metric"],
        )
        recommended = GaugeMetricFamily(
            "autoscaler_service_recommended_replicas",
            "Replicas the algorithm asked for at the last decision, before limits.",
            labels=["service"],
        )
        limited = GaugeMetricFamily(
            "autoscaler_service_decision_limited",
            "1 for each limit (cooldown, stabilization, rate_limit, bounds, ...) that changed the last decision.",
            labels=["service", "limit"],
        )
        forecast = GaugeMetricFamily(
            "autoscaler_service_forecast_load",
            "Predictive only: the load forecast at the last decision, in replicas' worth of CPU at 100 %.",
            labels=["service"],
        )
        valid = GaugeMetricFamily(
            "autoscaler_service_config_valid",
            "1 if the service's labels are valid, 0 if the service is skipped for a bad label.",
            labels=["service"],
        )
        for name, record in sorted(state.services.items()):
            valid.add_metric([name], 0 if record.config_error else 1)
            if record.decision is not None:
                reason = record.decision.reason
                current.add_metric([name], record.decision.current_replicas)
                desired.add_metric([name], record.decision.desired_replicas)
                if reason.recommendation is not None:
                    recommended.add_metric([name], reason.recommendation)
                for limit in reason.limited_by:
                    limited.add_metric([name, limit], 1)
                if reason.forecast is not None:
                    forecast.add_metric([name], reason.forecast)
            for metric, value in (("cpu", record.cpu_percent), ("memory", record.memory_percent)):
                if value is not None:
                    observed.add_metric([name, metric], value)
        yield from (current, desired, recommended, limited, forecast, observed, valid)

        events = CounterMetricFamily(
            "autoscaler_scale_events", "Replica changes made.", labels=["service", "direction"]
        )
        for (name, direction), count in sorted(state.scale_events.items()):
            events.add_metric([name, direction], count)
        decisions = CounterMetricFamily(
            "autoscaler_decisions", "Decisions made, by outcome.", labels=["service", "action"]
        )
        for (name, action), count in sorted(state.decisions.items()):
            decisions.add_metric([name, action], count)
        failures = CounterMetricFamily(
            "autoscaler_scale_failures", "Service updates the Docker API refused.", labels=["service"]
        )
        for name, count in sorted(state.scale_failures.items()):
            failures.add_metric([name], count)
        yield from (events, decisions, failures)

        collectors = GaugeMetricFamily(
            "autoscaler_collectors_answered", "Metrics collectors that answered at the last check."
        )
        collectors.add_metric([], state.collectors_answered)
        docker_up = GaugeMetricFamily(
            "autoscaler_docker_api_up", "1 if the Docker API answered at the last check."
        )
        docker_up.add_metric([], 0 if state.docker_error else 1)
        yield from (collectors, docker_up)
        if state.last_successful_check_at is not None:
            last = GaugeMetricFamily(
                "autoscaler_last_successful_check_timestamp_seconds",
                "When the last check that reached the Docker API ended, in seconds since the epoch.",
            )
            last.add_metric([], state.last_successful_check_at)
            yield last
