"""The collector's sampling loop and its HTTP endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from common.http import Handler, Response
from common.lifecycle import sleep_unless_stopped
from common.problems import Problems
from metrics_collector.cgroups import CgroupFiles, Limits, MalformedCgroupError, Usage, locate, read_usage
from metrics_collector.containers import ContainerDirectory
from metrics_collector.sampler import Sampler, TaskIdentity
from metrics_collector.settings import SamplingSettings

log = structlog.get_logger("metrics_collector")

STALE_SAMPLES = 3
"""The collector is unhealthy when its newest sample is older than this many intervals."""


@dataclass
class Sample:
    """What one sample read of the node's containers."""

    at: float
    readings: dict[str, tuple[TaskIdentity, Usage]] = field(default_factory=dict)
    malformed: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Per container (short id): its service, and why its cgroup files could not be read."""
    vanished: int = 0
    """Containers that stopped between the listing and the read."""
    seconds: float = 0.0
    """How long the reading took."""


class MetricsCollector:
    def __init__(
        self,
        settings: SamplingSettings,
        directory: ContainerDirectory,
        cgroup_root: Path,
        sampler: Sampler,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sampler = sampler
        self.last_error: str | None = None
        self.sample_seconds = 0.0
        self.vanished = 0
        self.unlocated: set[str] = set()
        self.problems = Problems()
        """Kind ``cgroup``: per container (short id), why its cgroup files were unreadable when last read."""
        self.malformed_reads = 0
        self._directory = directory
        self._root = cgroup_root
        self._files: dict[str, CgroupFiles] = {}
        self._limits: dict[str, Limits] = {}
        """Per container: its limits, read again after each listing of the containers."""
        self._limits_listed_at: float | None = None
        self._clock = clock

    def read(self) -> Sample:
        """List the containers and read their cgroup files: the I/O of a sample, for a worker thread.

        It touches only what no endpoint reads (the directory and the cgroup file paths);
        ``apply`` makes the sample what the endpoints see, on the event loop.
        """
        started = time.perf_counter()
        now = self._clock()
        # A copy: a container that vanishes is forgotten by the directory while this loops.
        tasks = dict(self._directory.tasks(now))
        if self._directory.listed_at != self._limits_listed_at:
            self._limits.clear()
            self._limits_listed_at = self._directory.listed_at
        sample = Sample(now)
        for container_id, identity in tasks.items():
            files = self._files.get(container_id) or locate(self._root, container_id)
            if files is None:
                if container_id not in self.unlocated:
                    log.warning("cgroup not found", container=container_id[:12], service=identity.service)
                self.unlocated.add(container_id)
                continue
            try:
                usage = read_usage(files, self._limits.get(container_id))
            except OSError:
                # The container stopped between the listing and the read: not an error.
                sample.vanished += 1
                self._directory.forget(container_id)
                continue
            except MalformedCgroupError as error:
                # Only this container goes unmeasured; the autoscaler sees its task as not measured.
                sample.malformed[container_id[:12]] = (identity.service, str(error))
                continue
            sample.readings[container_id] = (identity, usage)
            self._files[container_id] = files
            self._limits[container_id] = Limits(usage.cpu_limit_cores, usage.memory_limit)
        for gone in set(self._files) - set(tasks):
            del self._files[gone]
            self._limits.pop(gone, None)
        sample.seconds = time.perf_counter() - started
        return sample

    def apply(self, sample: Sample) -> None:
        """The sample into what the endpoints read; on the event loop, as the endpoints are."""
        for gone in set(self.unreadable()) - set(sample.malformed):
            self.problems.clear("cgroup", gone)
        for container, (service, problem) in sample.malformed.items():
            self.problems.set("cgroup", container, problem, service=service)
        self.malformed_reads += len(sample.malformed)
        self.vanished += sample.vanished
        self.sampler.record(sample.at, sample.readings)
        self.sample_seconds = sample.seconds

    def sample_once(self) -> None:
        """One sample, read and applied in the calling thread."""
        self.apply(self.read())

    def unreadable(self) -> dict[str, str]:
        """Per container (short id): why its cgroup files could not be read at the last sample."""
        return self.problems.of_kind("cgroup")

    async def run(self, stop: asyncio.Event) -> None:
        log.info("sampling started", interval=self.settings.interval, window=self.settings.window)
        while not stop.is_set():
            try:
                # Listing containers and reading files block: off the event loop. What the
                # endpoints read is changed only on it, so that no read sees it half changed.
                self.apply(await asyncio.to_thread(self.read))
                self.last_error = None
            except Exception as error:  # noqa: BLE001 - reported on /health, retried next interval
                self.last_error = repr(error)
                log.error("sampling failed", error=repr(error))
            if await sleep_unless_stopped(stop, self.settings.interval):
                break

    def health_problems(self, now: float) -> list[str]:
        problems = []
        if self.last_error:
            problems.append(f"last sample failed: {self.last_error}")
        sampled_at = self.sampler.sampled_at
        if sampled_at is None:
            problems.append("no sample taken yet")
        elif now - sampled_at > STALE_SAMPLES * self.settings.interval:
            problems.append(f"newest sample is {now - sampled_at:.0f}s old")
        return problems


class CollectorMetrics(Collector):
    """Prometheus metrics, computed at scrape time from the sampler."""

    def __init__(self, collector: MetricsCollector) -> None:
        self._collector = collector

    def collect(self) -> Iterator[Metric]:
        collector = self._collector
        cpu = GaugeMetricFamily(
            "collector_task_cpu_percent",
            "CPU use over the window, in percent of the task's CPU limit.",
            labels=["service", "task"],
        )
        memory = GaugeMetricFamily(
            "collector_task_memory_percent",
            "Working-set memory, in percent of the task's memory limit.",
            labels=["service", "task"],
        )
        tasks: dict[str, int] = {}
        for task in collector.sampler.tasks():
            labels = [task.identity.service, task.identity.task_name or task.identity.task_id]
            tasks[task.identity.service] = tasks.get(task.identity.service, 0) + 1
            if task.cpu_percent is not None:
                cpu.add_metric(labels, task.cpu_percent)
            memory.add_metric(labels, task.memory_percent)
        count = GaugeMetricFamily(
            "collector_service_tasks", "Task containers of the service on this node.", labels=["service"]
        )
        for service, number in sorted(tasks.items()):
            count.add_metric([service], number)
        duration = GaugeMetricFamily(
            "collector_sample_duration_seconds", "Time the last sample of every container took."
        )
        duration.add_metric([], collector.sample_seconds)
        vanished = CounterMetricFamily(
            "collector_vanished_containers", "Containers that stopped between listing and reading."
        )
        vanished.add_metric([], collector.vanished)
        malformed = CounterMetricFamily(
            "collector_malformed_cgroup_reads",
            "Container reads skipped because a cgroup file held something the kernel would not write.",
        )
        malformed.add_metric([], collector.malformed_reads)
        unreadable = GaugeMetricFamily(
            "collector_unreadable_containers",
            "Containers whose cgroup files could not be read at the last sample.",
        )
        unreadable.add_metric([], len(collector.unreadable()))
        yield from (cpu, memory, count, duration, vanished, malformed, unreadable)
        if collector.sampler.sampled_at is not None:
            last = GaugeMetricFamily(
                "collector_last_sample_timestamp_seconds",
                "When the last sample was taken, in seconds since the epoch.",
            )
            last.add_metric([], collector.sampler.sampled_at)
            yield last


def routes(
    collector: MetricsCollector,
    registry: CollectorRegistry,
    node: str,
    clock: Callable[[], float],
    node_id: str | None = None,
) -> dict[str, Handler]:
    def health() -> Response:
        problems = collector.health_problems(clock())
        if problems:
            return Response.json(
                HTTPStatus.SERVICE_UNAVAILABLE, {"status": "unhealthy", "problems": problems}
            )
        return Response.json(HTTPStatus.OK, {"status": "ok"})

    return {
        "/health": health,
        "/metrics": lambda: Response(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST),
        "/v1/services": lambda: Response.json(
            HTTPStatus.OK,
            {**collector.sampler.report(node, node_id), "unreadable_containers": collector.unreadable()},
        ),
    }
