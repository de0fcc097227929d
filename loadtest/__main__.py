"""``python -m loadtest``: load an HTTP endpoint and report throughput, latency and errors.

Every run is bounded: it stops after ``--duration`` seconds or ``--max-requests``
requests, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

MAX_DURATION = 3600.0
"""Longest run accepted, in seconds."""


@dataclass(frozen=True)
class Outcome:
    latency: float
    """Seconds from sending the request to the end of the response."""
    status: str
    """The HTTP status code, or the name of the error when none came."""
    finished_at: float = 0.0
    """When the response ended (or the request failed), in seconds since the epoch."""


@dataclass(frozen=True)
class Summary:
    requests: int
    errors: int
    duration_seconds: float
    requests_per_second: float
    latency_ms: dict[str, float]
    statuses: dict[str, int]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(outcomes: list[Outcome], duration: float) -> Summary:
    latencies = sorted(o.latency * 1000 for o in outcomes)
    statuses = Counter(o.status for o in outcomes)
    errors = sum(count for status, count in statuses.items() if not status.startswith(("2", "3")))
    return Summary(
        requests=len(outcomes),
        errors=errors,
        duration_seconds=round(duration, 3),
        requests_per_second=round(len(outcomes) / duration, 2) if duration > 0 else 0.0,
        latency_ms={
            name: round(percentile(latencies, fraction), 2)
            for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        },
        statuses=dict(sorted(statuses.items())),
    )


async def run_load(
    url: str, users: int, duration: float, max_requests: int, request_timeout: float
) -> tuple[list[Outcome], float]:
    """Every request's outcome, and how long the run took in seconds."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)

    async def user(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline and len(outcomes) < max_requests:
            started = time.perf_counter()
            try:
                response = await client.get(url)
                status = str(response.status_code)
            except httpx.HTTPError as error:
                status = type(error).__name__
            outcomes.append(Outcome(time.perf_counter() - started, status, time.time()))

    started = time.monotonic()
    async with httpx.AsyncClient(limits=limits, timeout=request_timeout) as client:
        await asyncio.gather(*(user(client) for _ in range(users)))
    return outcomes, time.monotonic() - started


RECORD_FIELDS = ("finished_at", "latency_ms", "status")


def write_record(outcomes: list[Outcome], path: Path) -> None:
    """One row per request: when it ended (seconds since the epoch), its latency and status."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(RECORD_FIELDS)
        for outcome in outcomes:
            writer.writerow((f"{outcome.finished_at:.6f}", f"{outcome.latency * 1000:.3f}", outcome.status))


def render_table(summary: Summary, url: str, users: int) -> str:
    latency = summary.latency_ms
    statuses = ", ".join(f"{status}: {count}" for status, count in summary.statuses.items())
    return "\n".join(
        [
            f"target        {url}",
            f"users         {users}",
            f"duration      {summary.duration_seconds:.1f} s",
            f"requests      {summary.requests}",
            f"throughput    {summary.requests_per_second:.1f} req/s",
            (
                f"latency (ms)  p50 {latency['p50']:.1f}  p95 {latency['p95']:.1f}  "
                f"p99 {latency['p99']:.1f}  max {latency['max']:.1f}"
            ),
            f"errors        {summary.errors}",
            f"statuses      {statuses}",
        ]
    )


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    parser.add_argument("--target", default="http://127.0.0.1:80", help="base URL (default %(default)s)")
    parser.add_argument("--path", default="/api/work?ms=20", help="path and query (default %(default)s)")
    parser.add_argument("--users", type=int, default=10, help="concurrent users (default %(default)s)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds (default %(default)s)")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=1_000_000,
        help="stop after this many requests (default %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--record", type=Path, help="write every request (end time, latency in ms, status) to this CSV file"
    )
    arguments = parser.parse_args(argv)
    if arguments.users < 1:
        parser.error("--users must be at least 1")
    if not 0 < arguments.duration <= MAX_DURATION:
        parser.error(f"--duration must be in (0, {MAX_DURATION:g}]")
    if arguments.max_requests < 1:
        parser.error("--max-requests must be at least 1")
    return arguments


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    url = arguments.target.rstrip("/") + arguments.path
    outcomes, duration = asyncio.run(
        run_load(url, arguments.users, arguments.duration, arguments.max_requests, arguments.timeout)
    )
    if arguments.record is not None:
        write_record(outcomes, arguments.record)
    summary = summarize(outcomes, duration)
    if arguments.json:
        report: dict[str, Any] = {"target": url, "users": arguments.users, **asdict(summary)}
        print(json.dumps(report, indent=2))
    else:
        print(render_table(summary, url, arguments.users))


if __name__ == "__main__":
    main()
