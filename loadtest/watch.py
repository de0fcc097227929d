"""What the run shows while it runs: the service's replicas, read from the autoscaler, and a live line."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

from loadtest.profiles import ReplicaSample
from loadtest.report import percentile
from loadtest.senders import Run

LIVE_WINDOW = 5.0
"""Seconds of answers the live line's rate and latencies cover."""


def service_status(status: Mapping[str, Any], service: str) -> Mapping[str, Any] | None:
    """The service's entry in the autoscaler's /status: by its name, or by its name in a stack."""
    services = status.get("services")
    if not isinstance(services, Mapping):
        return None
    for name, entry in services.items():
        if (name == service or str(name).endswith("_" + service)) and isinstance(entry, Mapping):
            return entry
    return None


def replica_sample(status: object, service: str, elapsed: float) -> ReplicaSample | None:
    """The replicas /status gives for the service, or None when it gives no whole numbers."""
    entry = service_status(status, service) if isinstance(status, Mapping) else None
    if entry is None:
        return None
    desired, ready = entry.get("desired_replicas"), entry.get("ready_replicas")
    if type(desired) is not int or desired < 0:
        return None
    return ReplicaSample(elapsed, desired, ready if type(ready) is int and ready >= 0 else None)


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


@dataclass
class ReplicaWatch:
    """Reads the service's replicas from the autoscaler's /status once a second."""

    status_url: str
    service: str
    samples: list[ReplicaSample] = field(default_factory=list)
    problem: str | None = None
    """Why the last read gave no replicas; None when it did."""

    async def watch(self, run: Run, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.read_once(run.elapsed(), await self._status(client))
            await pause(stop, 1.0)

    async def _status(self, client: httpx.AsyncClient) -> object:
        try:
            response = await client.get(self.status_url, timeout=3)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as error:
            return error

    def read_once(self, elapsed: float, status: object) -> None:
        if isinstance(status, Exception):
            self.problem = f"{self.status_url}: {type(status).__name__}"
            return
        sample = replica_sample(status, self.service, elapsed)
        if sample is None:
            self.problem = f"{self.status_url} names no replicas of {self.service}"
            return
        self.problem = None
        self.samples.append(sample)

    def latest(self) -> ReplicaSample | None:
        return self.samples[-1] if self.samples else None


def live_line(run: Run, total: float, replicas: ReplicaSample | None) -> str:
    """Elapsed of total, the rate and latencies over the last seconds, errors so far, replicas."""
    elapsed = run.elapsed()
    # Outcomes are kept in the order they ended: only the newest are read, not the whole run.
    ended = itertools.takewhile(
        lambda o: o.sent_at + o.latency >= elapsed - LIVE_WINDOW, reversed(run.outcomes)
    )
    recent = sorted(o.latency * 1000 for o in ended)
    window = min(LIVE_WINDOW, elapsed) or 1.0
    shown = "-"
    if replicas is not None:
        shown = f"{replicas.ready if replicas.ready is not None else '?'}/{replicas.desired}"
    parts = [
        f"{elapsed:5.0f}/{total:.0f} s",
        f"{len(recent) / window:6.1f} req/s",
        f"p50 {percentile(recent, 0.5):6.0f} ms",
        f"p95 {percentile(recent, 0.95):6.0f} ms",
        f"errors {run.errors}",
        f"in flight {run.in_flight}",
        f"replicas {shown}",
    ]
    if run.late:
        parts.append(f"late {run.late}")
    if elapsed > total + 1:
        parts[0] = f"{elapsed:5.0f} s, load over"
    return "  ".join(parts)


async def show_live(
    run: Run, total: float, watch: ReplicaWatch | None, stop: asyncio.Event, out: TextIO = sys.stderr
) -> None:
    """The live line every second: rewritten in place on a terminal, a new line every 10 s elsewhere."""
    terminal = out.isatty()
    ticks = 0
    while not stop.is_set():
        await pause(stop, 1.0)
        ticks += 1
        line = live_line(run, total, watch.latest() if watch else None)
        if watch is not None and watch.problem:
            line += f"  ({watch.problem})"
        if terminal:
            out.write("\r" + line + "\x1b[K")
        elif ticks % 10 == 0:
            out.write(line + "\n")
        out.flush()
    if terminal:
        out.write("\n")
