"""Turning cumulative cgroup counters into utilisation over a sliding window.

Pure: the caller passes the time and the raw readings in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from metrics_collector.cgroups import Usage


@dataclass(frozen=True)
class TaskIdentity:
    container_id: str
    service: str
    task_id: str
    task_name: str


@dataclass(frozen=True)
class Point:
    at: float
    usage: Usage


@dataclass
class TaskSeries:
    identity: TaskIdentity
    points: deque[Point] = field(default_factory=deque)


@dataclass(frozen=True)
class TaskUtilisation:
    identity: TaskIdentity
    cpu_percent: float | None
    """Over the window, in percent of the CPU limit (of one core without a limit).

    None until two samples exist.
    """
    memory_percent: float
    """Mean working set over the window, in percent of the memory limit (of the host's memory without one)."""


class Sampler:
    def __init__(self, window: float, host_memory: int) -> None:
        """``window`` in seconds; ``host_memory`` in bytes, the limit of an unlimited container."""
        self.window = window
        self.host_memory = host_memory
        self.sampled_at: float | None = None
        self._series: dict[str, TaskSeries] = {}

    def record(self, now: float, readings: dict[str, tuple[TaskIdentity, Usage]]) -> None:
        """Add one sample of every container; containers not in ``readings`` are forgotten."""
        for container_id in set(self._series) - set(readings):
            del self._series[container_id]
        for container_id, (identity, usage) in readings.items():
            series = self._series.setdefault(container_id, TaskSeries(identity))
            series.points.append(Point(now, usage))
            # Keep the newest point at or before the window's start as its baseline.
            while len(series.points) > 2 and series.points[1].at <= now - self.window:
                series.points.popleft()
        self.sampled_at = now

    def _cpu_percent(self, points: deque[Point]) -> float | None:
        first, last = points[0], points[-1]
        elapsed = last.at - first.at
        if elapsed <= 0:
            return None
        cores = last.usage.cpu_limit_cores or 1.0
        used = max(0.0, last.usage.cpu_seconds - first.usage.cpu_seconds)
        return 100.0 * used / elapsed / cores

    def _memory_percent(self, points: deque[Point]) -> float:
        in_window = list(points)[1:] or list(points)
        return fmean(
            100.0 * p.usage.memory_working_set / (p.usage.memory_limit or self.host_memory) for p in in_window
        )

    def tasks(self) -> list[TaskUtilisation]:
        return [
            TaskUtilisation(
                series.identity, self._cpu_percent(series.points), self._memory_percent(series.points)
            )
            for series in self._series.values()
        ]

    def report(self, node: str, node_id: str | None = None) -> dict[str, Any]:
        """The JSON document the autoscaler reads: per service, means over its tasks here.

        ``node_id``: the Swarm node's ID, with which the autoscaler tells which nodes'
        tasks were measured; the task ids tell which tasks.
        """
        by_service: dict[str, list[TaskUtilisation]] = {}
        for task in self.tasks():
            by_service.setdefault(task.identity.service, []).append(task)
        services = {}
        for name, tasks in sorted(by_service.items()):
            cpu = [t.cpu_percent for t in tasks if t.cpu_percent is not None]
            services[name] = {
                "tasks": len(tasks),
                "task_ids": sorted(t.identity.task_id for t in tasks if t.identity.task_id),
                "cpu_percent": round(fmean(cpu), 3) if cpu else None,
                "memory_percent": round(fmean(t.memory_percent for t in tasks), 3),
                "sampled_at": self.sampled_at,
            }
        return {
            "node": node,
            "node_id": node_id,
            "sampled_at": self.sampled_at,
            "window_seconds": self.window,
            "services": services,
        }
