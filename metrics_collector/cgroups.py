"""A container's CPU and memory accounting, read straight from the cgroup filesystem.

Reading these files costs tens of microseconds; Docker's stats endpoint answers at its
next collection, up to a second later (``bench/collector.py`` measures both). Both
cgroup v1 and v2 are read, with Docker's cgroupfs and systemd drivers.

The limits change only when a container is updated in place, which Swarm never does
(it replaces the task), so a collector may read them less often than the usage.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_COUNT = re.compile(r"-?[0-9]+")
UNLIMITED_V1_BYTES = 1 << 62
"""cgroup v1 writes 'no memory limit' as a huge number near 2**63 rounded to a page."""
MOST_BYTES = 65_536
"""More than any accounting file holds; what is beyond it is not read."""


class MalformedCgroupError(ValueError):
    """A cgroup file whose content is not what the kernel writes there."""


@dataclass(frozen=True)
class CgroupFiles:
    """Where one container's accounting files are."""

    version: int
    cpu_usage: Path
    """v1: cpuacct.usage (nanoseconds); v2: cpu.stat (usage_usec)."""
    cpu_limit: tuple[Path, ...]
    """v1: (cpu.cfs_quota_us, cpu.cfs_period_us); v2: (cpu.max,)."""
    memory_usage: Path
    memory_stat: Path
    memory_limit: Path


@dataclass(frozen=True)
class Limits:
    cpu_cores: float | None
    """The CPU limit in cores; None when the container has none."""
    memory: int | None
    """The memory limit in bytes; None when the container has none."""


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    """CPU time the container has used since it started, in seconds."""
    cpu_limit_cores: float | None
    """The CPU limit in cores; None when the container has none."""
    memory_working_set: int
    """Bytes in use that the kernel cannot simply drop: usage minus inactive file cache."""
    memory_limit: int | None
    """The memory limit in bytes; None when the container has none."""


def parse_count(text: str, what: str) -> int:
    """A whole number as the kernel writes it (ASCII digits, maybe a minus sign)."""
    value = text.strip()
    if not _COUNT.fullmatch(value):
        raise MalformedCgroupError(f"{what}: not a number: {text[:40]!r}")
    return int(value)


def _cores(quota: int, period: int, what: str) -> float:
    if period <= 0:
        raise MalformedCgroupError(f"{what}: CPU period {period} is not positive")
    return quota / period


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 cpu.max ("max 100000" or "50000 100000"): the limit in cores."""
    quota, _, period = text.strip().partition(" ")
    if quota == "max":
        return None
    return _cores(parse_count(quota, "cpu.max"), parse_count(period or "100000", "cpu.max"), "cpu.max")


def parse_cfs_quota(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 cpu.cfs_quota_us and cpu.cfs_period_us: the limit in cores."""
    quota = parse_count(quota_text, "cpu.cfs_quota_us")
    if quota < 0:
        return None
    return _cores(quota, parse_count(period_text, "cpu.cfs_period_us"), "cpu.cfs_period_us")


def parse_flat_keyed(text: str, what: str = "stat", keys: frozenset[str] | None = None) -> dict[str, int]:
    """A 'key value' file such as memory.stat or cpu.stat: every key, or only those in ``keys``."""
    result = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value and (keys is None or key in keys):
            result[key] = parse_count(value, what)
    return result


def parse_memory_limit(text: str) -> int | None:
    value = text.strip()
    if value == "max":
        return None
    limit = parse_count(value, "memory limit")
    return None if limit >= UNLIMITED_V1_BYTES else limit


INACTIVE_FILE = {1: "total_inactive_file", 2: "inactive_file"}
"""Per cgroup version: the memory.stat key of the file cache the kernel may drop."""
CPU_USAGE_V2 = "usage_usec"


def working_set(usage: int, stat: dict[str, int], version: int) -> int:
    """Usage minus inactive file cache, as cAdvisor and the kubelet count it."""
    return max(0, usage - stat.get(INACTIVE_FILE[version], 0))


def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def _relative_candidates(container_id: str) -> tuple[str, ...]:
    # cgroupfs driver, then systemd driver.
    return (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope")


def locate(root: Path, container_id: str) -> CgroupFiles | None:
    """The accounting files of a container under the cgroup mount ``root``, if found."""
    if (root / "cgroup.controllers").exists():
        for relative in _relative_candidates(container_id):
            directory = root / relative
            if directory.is_dir():
                return CgroupFiles(
                    version=2,
                    cpu_usage=directory / "cpu.stat",
                    cpu_limit=(directory / "cpu.max",),
                    memory_usage=directory / "memory.current",
                    memory_stat=directory / "memory.stat",
                    memory_limit=directory / "memory.max",
                )
        return None
    cpuacct = _first_dir(root, ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"))
    cpu = _first_dir(root, ("cpu", "cpu,cpuacct", "cpuacct,cpu"))
    memory = _first_dir(root, ("memory",))
    if cpuacct is None or cpu is None or memory is None:
        return None
    for relative in _relative_candidates(container_id):
        if (cpuacct / relative).is_dir():
            return CgroupFiles(
                version=1,
                cpu_usage=cpuacct / relative / "cpuacct.usage",
                cpu_limit=(cpu / relative / "cpu.cfs_quota_us", cpu / relative / "cpu.cfs_period_us"),
                memory_usage=memory / relative / "memory.usage_in_bytes",
                memory_stat=memory / relative / "memory.stat",
                memory_limit=memory / relative / "memory.limit_in_bytes",
            )
    return None


def _text(path: Path) -> str:
    """A small kernel file in one read: a third of the cost of ``Path.read_text``."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        return os.read(descriptor, MOST_BYTES).decode("ascii", errors="replace")
    finally:
        os.close(descriptor)


def read_limits(files: CgroupFiles) -> Limits:
    """Read a container's limits; raises as ``read_usage`` does."""
    if files.version == 1:
        quota, period = (_text(path) for path in files.cpu_limit)
        cpu_limit = parse_cfs_quota(quota, period)
    else:
        cpu_limit = parse_cpu_max(_text(files.cpu_limit[0]))
    return Limits(cpu_limit, parse_memory_limit(_text(files.memory_limit)))


def read_usage(files: CgroupFiles, limits: Limits | None = None) -> Usage:
    """Read a container's usage; ``limits`` as read before, or None to read them too.

    Raises OSError if the container has gone, MalformedCgroupError if a file holds
    something the kernel would not write.
    """
    if files.version == 1:
        cpu_seconds = parse_count(_text(files.cpu_usage), "cpuacct.usage") / 1e9
    else:
        cpu_stat = parse_flat_keyed(_text(files.cpu_usage), "cpu.stat", frozenset({CPU_USAGE_V2}))
        if CPU_USAGE_V2 not in cpu_stat:
            raise MalformedCgroupError(f"cpu.stat: no {CPU_USAGE_V2}")
        cpu_seconds = cpu_stat[CPU_USAGE_V2] / 1e6
    # Only the key used is checked and converted: the file has some forty lines.
    stat = parse_flat_keyed(
        _text(files.memory_stat), "memory.stat", frozenset({INACTIVE_FILE[files.version]})
    )
    usage = parse_count(_text(files.memory_usage), "memory usage")
    limits = limits or read_limits(files)
    return Usage(
        cpu_seconds=cpu_seconds,
        cpu_limit_cores=limits.cpu_cores,
        memory_working_set=working_set(usage, stat, files.version),
        memory_limit=limits.memory,
    )


def host_memory_bytes(meminfo: Path) -> int:
    """MemTotal from /proc/meminfo, in bytes."""
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no MemTotal in {meminfo}")
