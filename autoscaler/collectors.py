"""Reading the metrics collectors: one per node, found through ``tasks.<service>`` DNS.

A collector's answer is checked where it enters: an answer that is not a report
counts as that collector not answering; a malformed entry for one service drops
that entry only. Either way the problem is named, and the services the collector
would have measured count as not fully measured.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from autoscaler.settings import CollectorSettings
from common.numbers import finite

REPORT_PATH = "/v1/services"
MOST_TASKS = 100_000
"""More task containers than one node runs."""
HIGHEST_PERCENT = 100_000.0
"""CPU without a limit is in percent of one core: a very large host stays below this."""

Resolver = Callable[[str, int], Awaitable[list[str]]]


class BadReportError(ValueError):
    """A collector's answer that is not a report."""


@dataclass(frozen=True)
class ServiceSample:
    """One node's report of one service."""

    task_ids: frozenset[str]
    cpu_percent: float | None
    memory_percent: float | None
    sampled_at: float


@dataclass(frozen=True)
class CollectorReport:
    node_id: str | None
    """The Swarm node the collector runs on, if it says."""
    services: dict[str, ServiceSample]
    problems: dict[str, str]
    """Per service: why its entry was dropped."""


def _finite(entry: dict[str, Any], key: str) -> float | None:
    """The entry's number at ``key``; None when absent; BadReportError when it is not a finite number."""
    value = entry.get(key)
    if value is None:
        return None
    number = finite(value)
    if number is None:
        raise BadReportError(f"{key} is not a finite number: {value!r}")
    return number


def _percent(entry: dict[str, Any], key: str) -> float | None:
    value = _finite(entry, key)
    if value is not None and not 0 <= value <= HIGHEST_PERCENT:
        raise BadReportError(f"{key} out of range: {value!r}")
    return value


def parse_sample(entry: Any) -> ServiceSample:  # noqa: ANN401 - checks an untrusted JSON value
    if not isinstance(entry, dict):
        raise BadReportError("entry is not an object")
    task_ids = entry.get("task_ids")
    if (
        not isinstance(task_ids, list)
        or len(task_ids) > MOST_TASKS
        or not all(isinstance(task, str) and task for task in task_ids)
    ):
        raise BadReportError(f"task_ids is not a list of task ids: {task_ids!r}"[:200])
    sampled_at = _finite(entry, "sampled_at")
    if sampled_at is None:
        raise BadReportError("sampled_at is not a time: None")
    return ServiceSample(
        task_ids=frozenset(task_ids),
        cpu_percent=_percent(entry, "cpu_percent"),
        memory_percent=_percent(entry, "memory_percent"),
        sampled_at=sampled_at,
    )


def parse_report(document: Any) -> CollectorReport:  # noqa: ANN401 - checks an untrusted JSON value
    """A collector's /v1/services answer; BadReportError when it is not a report at all."""
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        raise BadReportError("not a report: no services object")
    node_id = document.get("node_id")
    services, problems = {}, {}
    for name, entry in document["services"].items():
        try:
            services[name] = parse_sample(entry)
        except BadReportError as error:
            problems[name] = str(error)
    return CollectorReport(node_id if isinstance(node_id, str) and node_id else None, services, problems)


@dataclass(frozen=True)
class ServiceMetrics:
    """One service's metrics, merged across the nodes its tasks run on."""

    task_ids: frozenset[str]
    """Tasks the collectors measured."""
    cpu_percent: float | None
    memory_percent: float | None
    sampled_at: float
    """The oldest sample time among the collectors that reported the service."""


@dataclass(frozen=True)
class Reading:
    """What one round of asking the collectors gave."""

    services: dict[str, ServiceMetrics]
    collectors_answered: int
    errors: dict[str, str] = field(default_factory=dict)
    """Per collector address: why it gave no report."""
    entry_problems: dict[str, str] = field(default_factory=dict)
    """Per "service at address": why that entry was dropped."""
    nodes: frozenset[str] = frozenset()
    """Nodes whose collector answered."""


def _weighted_mean(pairs: Iterable[tuple[float | None, int]]) -> float | None:
    present = [(value, weight) for value, weight in pairs if value is not None and weight > 0]
    total = sum(weight for _, weight in present)
    if total == 0:
        return None
    return sum(value * weight for value, weight in present) / total


def merge_reports(reports: Iterable[CollectorReport]) -> dict[str, ServiceMetrics]:
    """Per service, the task-weighted means of the nodes' reports."""
    by_service: dict[str, list[ServiceSample]] = {}
    for report in reports:
        for name, sample in report.services.items():
            by_service.setdefault(name, []).append(sample)
    return {
        name: ServiceMetrics(
            task_ids=frozenset().union(*(s.task_ids for s in samples)),
            cpu_percent=_weighted_mean((s.cpu_percent, len(s.task_ids)) for s in samples),
            memory_percent=_weighted_mean((s.memory_percent, len(s.task_ids)) for s in samples),
            sampled_at=min(s.sampled_at for s in samples),
        )
        for name, samples in by_service.items()
    }


async def resolve_all(host: str, port: int) -> list[str]:
    """Every address a name resolves to; ``tasks.<service>`` gives one per task."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def _fetch(client: httpx.AsyncClient, url: str) -> CollectorReport:
    response = await client.get(url)
    response.raise_for_status()
    try:
        document = response.json()
    except ValueError as error:
        raise BadReportError(f"not JSON: {error}") from None
    return parse_report(document)


async def read_collectors(
    settings: CollectorSettings, client: httpx.AsyncClient, resolve: Resolver = resolve_all
) -> Reading:
    try:
        addresses = await resolve(settings.address, settings.port)
    except OSError as error:
        return Reading({}, 0, {settings.address: f"cannot resolve: {error}"})
    results = await asyncio.gather(
        *(_fetch(client, f"http://{address}:{settings.port}{REPORT_PATH}") for address in addresses),
        return_exceptions=True,
    )
    reports, errors, entry_problems = [], {}, {}
    for address, result in zip(addresses, results, strict=True):
        if isinstance(result, BaseException):
            errors[address] = repr(result) if not isinstance(result, BadReportError) else str(result)
            continue
        reports.append(result)
        for service, problem in result.problems.items():
            entry_problems[f"{service} at {address}"] = problem
    nodes = frozenset(report.node_id for report in reports if report.node_id)
    return Reading(merge_reports(reports), len(reports), errors, entry_problems, nodes)
