"""What is known of one service at a check, built from what the check read. Pure.

The check reads the swarm's running tasks, the collectors and the entry points once for
every service; ``running_by_service`` indexes the tasks once, so that building each
service's observation costs its own tasks, not the swarm's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from autoscaler.collectors import Reading, ServiceMetrics
from autoscaler.core import Observation, Policy
from autoscaler.entrypoint import RequestReading
from autoscaler.sources import SourceReading
from autoscaler.swarm import RunningTask, SwarmService, name_in_stack
from autoscaler.traffic import Window

RunningTasks = dict[str, frozenset[str]]
"""Per service id: the ids of its running tasks."""


def running_by_service(tasks: Iterable[RunningTask]) -> RunningTasks:
    """The running tasks' ids per service id, in one pass over the swarm's tasks."""
    found: dict[str, set[str]] = {}
    for task in tasks:
        found.setdefault(task.service_id, set()).add(task.id)
    return {service_id: frozenset(ids) for service_id, ids in found.items()}


@dataclass(frozen=True)
class ServiceWindows:
    """What the entry point says of one service."""

    behind: bool
    """An entry point proxies to the service."""
    window: Window | None
    """Its requests over the last METRICS_WINDOW."""
    recent: Window | None
    """Its requests over the surge window."""


@dataclass(frozen=True)
class Seen:
    """What the check read of one service."""

    metrics: ServiceMetrics | None
    """The collectors' merged metrics; None when none reported it."""
    running: frozenset[str] | None
    """Its running tasks; None when the task list could not be read."""
    requests: ServiceWindows
    requests_read_at: float
    """When the entry points answered."""
    source: SourceReading | None = None
    """Its metric source, if it has one."""
    unread_entry_points: int = 0
    """Entry point instances that gave no counters at this check."""


@dataclass(frozen=True)
class Inputs:
    """What one check read from outside, for every service."""

    reading: Reading
    running: RunningTasks | None
    """The running tasks of every service; None when the task list could not be read."""
    requests: RequestReading


def windows_of(
    service: SwarmService, requests: RequestReading, behind_entry_point: set[str]
) -> ServiceWindows:
    """Whether an entry point proxies to the service, and its requests over both windows.

    The entry point counts a service under the name it has in its stack
    (``demo-api`` for ``mystack_demo-api``); ``behind_entry_point`` holds every name an
    entry point has ever counted.
    """
    names = sorted({service.name, name_in_stack(service.name, service.labels)})
    behind = bool(set(names) & behind_entry_point)
    window = next((requests.windows[name] for name in names if name in requests.windows), None)
    recent = next((requests.recent[name] for name in names if name in requests.recent), None)
    return ServiceWindows(behind, window, recent)


def seen_of(
    service: SwarmService, inputs: Inputs, windows: ServiceWindows, source: SourceReading | None
) -> Seen:
    """What the check read of the service, out of what it read of every service."""
    running = None if inputs.running is None else inputs.running.get(service.id, frozenset())
    metrics = inputs.reading.services.get(service.name)
    read_at, unread = inputs.requests.read_at, inputs.requests.unread
    return Seen(metrics, running, windows, read_at, source, unread)


def _request_fields(windows: ServiceWindows, read_at: float, policy: Policy) -> dict[str, float | None]:
    """The observation's request metrics from the service's windows at the entry point."""
    window, recent = windows.window, windows.recent
    if window is None:
        return {}
    return {
        "requests": window.counters.requests,
        "requests_per_second": window.rate,
        "latency_ms": window.latency_ms(policy.latency_percentile / 100),
        "error_percent": window.error_percent,
        "concurrency": window.concurrency,
        "surge_concurrency": None if recent is None else recent.concurrency,
        "requests_read_at": read_at,
    }


def observe(service: SwarmService, seen: Seen, policy: Policy) -> Observation:
    """What is known of a replicated service; running tasks no collector measured make it incomplete."""
    if service.replicas is None:
        raise ValueError(f"{service.name} is global: only replicated services are observed")
    metrics, running, source = seen.metrics, seen.running, seen.source
    measured = metrics.task_ids if metrics else frozenset()
    if running is not None:
        ready, unmeasured = len(running & measured), len(running - measured)
    else:
        # No task list: every replica of the spec beyond those measured counts as unmeasured.
        ready, unmeasured = len(measured), max(0, service.replicas - len(measured))
    return Observation(
        current_replicas=service.replicas,
        # With the task list, 0 ready is known (all still starting); without it, unknown.
        ready_replicas=ready if running is not None else ready or None,
        cpu_percent=metrics.cpu_percent if metrics else None,
        memory_percent=metrics.memory_percent if metrics else None,
        sampled_at=metrics.sampled_at if metrics else None,
        unmeasured_tasks=unmeasured,
        unread_entry_points=seen.unread_entry_points,
        changed_at=service.updated_at,
        behind_entry_point=seen.requests.behind,
        external=source.value if source else None,
        external_per_replica=policy.source is not None and policy.source.per_replica,
        external_read_at=source.read_at if source else None,
        **_request_fields(seen.requests, seen.requests_read_at, policy),
    )
