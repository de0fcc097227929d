"""The autoscaler's HTTP endpoints: / (the status page), /health, /metrics, /status, /routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from http import HTTPStatus
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from autoscaler import page
from autoscaler.leadership import Leadership
from autoscaler.records import DaemonState, ServiceRecord
from autoscaler.swarm import name_in_stack
from autoscaler.traffic import REPORTED_QUANTILES, Window
from common.http import Handler, Response

STALE_CHECKS = 3
"""A check older than this many intervals means the control loop is stuck."""


def health_problems(state: DaemonState, now: float, check_interval: float, max_age: float) -> list[str]:
    """What keeps the daemon from doing its job; empty when healthy."""
    problems = []
    if state.last_check_at is None:
        return ["no check has run yet"]
    if state.docker_error is not None:
        problems.append(f"docker api unreachable: {state.docker_error}")
    if state.last_successful_check_at is None:
        problems.append("no check has reached the docker api yet")
    elif now - state.last_successful_check_at > STALE_CHECKS * check_interval + max_age:
        problems.append(f"last successful check {now - state.last_successful_check_at:.0f}s ago")
    problems += [
        f"entry point {address}: {problem}"
        for address, problem in state.problems.of_kind("entrypoint_too_large").items()
    ]
    collector_errors = [
        f"{subject}: {problem}" for subject, problem in state.problems.of_kind("collector").items()
    ]
    if state.collectors_answered == 0:
        problems.append("no metrics collector answered: " + "; ".join(collector_errors or ["none found"]))
    elif state.nodes_unmeasured:
        problems.append(
            "no metrics collector answered for node(s) running autoscaled tasks: "
            + ", ".join(state.nodes_unmeasured)
        )
    elif state.freshest_sample_at is not None and now - state.freshest_sample_at > max_age:
        problems.append(f"metrics are stale: newest sample {now - state.freshest_sample_at:.0f}s old")
    return problems


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def requests_status(window: Window, recent: Window | None, ready_replicas: int | None) -> dict[str, Any]:
    """The service's requests over the window, and its concurrency over the surge window, for /status."""
    latency = {name: window.latency_ms(q) for name, q in REPORTED_QUANTILES.items()}

    def per_ready(total: float | None) -> float | None:
        return None if total is None or not ready_replicas else round(total / ready_replicas, 3)

    return {
        "window_seconds": round(window.seconds, 3),
        "requests": window.counters.requests,
        "per_second": round(window.rate, 3),
        "per_second_per_ready_replica": per_ready(window.rate),
        "latency_ms": {name: _rounded(value, 1) for name, value in latency.items()},
        "error_percent": _rounded(window.error_percent),
        "concurrency": _rounded(window.concurrency),
        "concurrency_per_ready_replica": per_ready(window.concurrency),
        "surge_window_seconds": None if recent is None else round(recent.seconds, 3),
        "surge_concurrency_per_ready_replica": None if recent is None else per_ready(recent.concurrency),
    }


def _service_status(record: ServiceRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {"config_error": record.config_error}
    if record.policy is not None and record.config_error is None:
        entry["policy"] = asdict(record.policy)
        entry["paused"] = record.policy.paused
        entry["dry_run"] = record.policy.dry_run
        entry["rate_limit_rps"] = record.rate_limit_rps
    entry["schedule"] = record.schedule.as_dict()
    if record.decision is not None:
        entry.update(
            current_replicas=record.decision.current_replicas,
            desired_replicas=record.decision.desired_replicas,
            decided_at=record.decided_at,
            reason=record.decision.reason.as_dict(),
        )
    if record.observation is not None:
        entry["ready_replicas"] = record.observation.ready_replicas
        entry["unmeasured_tasks"] = record.observation.unmeasured_tasks
        entry["behind_entry_point"] = record.observation.behind_entry_point
    if record.requests is not None:
        ready = record.observation.ready_replicas if record.observation else None
        entry["requests"] = requests_status(record.requests, record.recent_requests, ready)
    timeline = record.timeline
    entry["last_hour"] = [
        [point.at, point.desired, point.ready, point.metric, point.value, point.threshold]
        for point in timeline.points
    ]
    entry["last_changes"] = [asdict(change) for change in reversed(timeline.changes)]
    return entry


def status(state: DaemonState) -> dict[str, Any]:
    services = {}
    for name, record in sorted(state.services.items()):
        services[name] = _service_status(record)
        services[name]["problems"] = state.problems.of(name)
    return {
        "last_check_at": state.last_check_at,
        "last_successful_check_at": state.last_successful_check_at,
        "collectors_answered": state.collectors_answered,
        "nodes_unmeasured": state.nodes_unmeasured,
        "entry_points_answered": state.entry_points_answered,
        "requests_read_at": state.requests_read_at,
        "docker_error": state.docker_error,
        "restored_services": state.restored_services,
        "problems": state.problems.listing(),
        "services": services,
    }


def routing_table(state: DaemonState) -> dict[str, Any]:
    """What the entry point needs of each service: its names, its route and its rate limit.

    Every autoscaled service and every service with a route. A service whose labels cannot
    be used is left out until they are fixed (an autoscaled one), or has no route (a route's).
    """
    autoscaled = {
        name: record
        for name, record in state.services.items()
        if record.policy is not None and record.config_error is None
    }
    services = []
    for name in sorted(set(autoscaled) | set(state.routes)):
        record, routed = autoscaled.get(name), state.routes.get(name)
        policy = record.policy if record else None
        labels = record.labels if record and record.labels else {}
        services.append(
            {
                "service": name,
                "name_in_stack": routed.name_in_stack if routed else name_in_stack(name, labels),
                "route": asdict(routed.route) if routed else None,
                "rate_limit": asdict(policy.admission) if policy and policy.admission else None,
            }
        )
    return {"services": services}


def leadership_status(leadership: Leadership | None) -> dict[str, Any] | None:
    """Which instance this is, whether it acts and since when, and who holds the lease."""
    return None if leadership is None else asdict(leadership.status())


OFF_THE_LOOP = frozenset({"/", "/health", "/metrics", "/routes", "/status"})
"""The endpoints that may run in the server's worker threads: they read only ``current()``."""


def routes(  # noqa: PLR0913 - what the endpoints show, each passed in
    current: Callable[[], DaemonState],
    registry: CollectorRegistry,
    clock: Callable[[], float],
    check_interval: float,
    max_age: float,
    *,
    leadership: Leadership | None = None,
) -> dict[str, Handler]:
    """The endpoints, each reading the state ``current`` gives when it is asked (one snapshot a request)."""

    def health() -> Response:
        problems = health_problems(current(), clock(), check_interval, max_age)
        lease = leadership_status(leadership)
        if problems:
            body = {"status": "unhealthy", "problems": problems, "leadership": lease}
            return Response.json(HTTPStatus.SERVICE_UNAVAILABLE, body)
        return Response.json(HTTPStatus.OK, {"status": "ok", "leadership": lease})

    def full_status() -> dict[str, Any]:
        return {**status(current()), "leadership": leadership_status(leadership)}

    def metrics() -> Response:
        return Response(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)

    return {
        "/health": health,
        "/metrics": metrics,
        "/": lambda: Response(HTTPStatus.OK, page.render(full_status(), clock()).encode(), page.CONTENT_TYPE),
        "/status": lambda: Response.json(HTTPStatus.OK, full_status()),
        "/routes": lambda: Response.json(HTTPStatus.OK, routing_table(current())),
    }
