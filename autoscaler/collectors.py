"""Reading the metrics collectors: one per node, found through ``tasks.<service>`` DNS."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from autoscaler.settings import CollectorSettings

REPORT_PATH = "/v1/services"

Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True)
class ServiceMetrics:
    """One service's metrics, merged across the nodes its tasks run on."""

    tasks: int
    cpu_percent: float | None
    memory_percent: float | None
    sampled_at: float
    """The oldest sample time among the collectors that reported the service."""


@dataclass(frozen=True)
class Reading:
    """What one round of asking the collectors gave."""

    services: dict[str, ServiceMetrics]
    collectors_answered: int
    errors: list[str]


def _weighted_mean(pairs: Iterable[tuple[float | None, int]]) -> float | None:
    present = [(value, weight) for value, weight in pairs if value is not None and weight > 0]
    total = sum(weight for _, weight in present)
    if total == 0:
        return None
    return sum(value * weight for value, weight in present) / total


def merge_reports(reports: Iterable[dict[str, Any]]) -> dict[str, ServiceMetrics]:
    """Per service, the task-weighted means of the nodes' reports."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for report in reports:
        for name, entry in report.get("services", {}).items():
            by_service.setdefault(name, []).append(entry)
    merged = {}
    for name, entries in by_service.items():
        merged[name] = ServiceMetrics(
            tasks=sum(int(e["tasks"]) for e in entries),
            cpu_percent=_weighted_mean((e.get("cpu_percent"), int(e["tasks"])) for e in entries),
            memory_percent=_weighted_mean((e.get("memory_percent"), int(e["tasks"])) for e in entries),
            sampled_at=min(float(e["sampled_at"]) for e in entries),
        )
    return merged


async def resolve_all(host: str, port: int) -> list[str]:
    """Every address a name resolves to; ``tasks.<service>`` gives one per task."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def _fetch(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(url)
    response.raise_for_status()
    report: dict[str, Any] = response.json()
    return report


async def read_collectors(
    settings: CollectorSettings, client: httpx.AsyncClient, resolve: Resolver = resolve_all
) -> Reading:
    try:
        addresses = await resolve(settings.address, settings.port)
    except OSError as error:
        return Reading({}, 0, [f"cannot resolve {settings.address}: {error}"])
    urls = [f"http://{address}:{settings.port}{REPORT_PATH}" for address in addresses]
    results = await asyncio.gather(*(_fetch(client, url) for url in urls), return_exceptions=True)
    reports, errors = [], []
    for url, result in zip(urls, results, strict=True):
        if isinstance(result, BaseException):
            errors.append(f"{url}: {result!r}")
        else:
            reports.append(result)
    return Reading(merge_reports(reports), len(reports), errors)
