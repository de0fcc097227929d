"""The entry point's balancing policies with one slowed task: latency percentiles per policy.

    .venv/bin/python bench/balancing.py [--rounds N] [--seconds S] [--clients C] [--work-ms MS]

Four demo API processes on 127.0.0.1 serve ``/api/work?ms=MS`` (MS milliseconds of CPU
time each), behind the entry point's own nginx configuration (``nginx.config.render``,
the tasks pushed as the agent pushes them). Each process runs in a CPU cgroup of its own
with a quota of TASK_CPUS, as a task's container with ``--cpus``; the slowed one's quota is
cut to SLOW_CPUS, which is what ``docker update --cpus`` writes. ``--clients`` clients send
requests one after another for ``--seconds`` per policy and round, first with the four tasks
equal (the throughput), then with one slowed (the latency). Policies alternate within each
round so that a busy machine weighs on all alike; round robin is the baseline.

Needs nginx with its Lua module and root (cgroups, nginx's workers).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from common.bounds import BALANCING_POLICIES
from nginx.config import ProxySettings, render, static_route

PROXY_PORT, METRICS_PORT, CONTROL_PORT = 18380, 18381, 18383
TASK_PORTS = (18391, 18392, 18393, 18394)
TASK_CPUS = 0.3
"""Each task's CPU quota, in CPUs: four of them leave the rest of two cores to nginx and the clients."""
SLOW_CPUS = 0.06
"""The slowed task's quota, in CPUs: a fifth of the others'."""
CGROUP_V1 = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


def _cgroup(name: str) -> Path:
    root = CGROUP_V1 if CGROUP_V1.is_dir() else CGROUP_V2
    path = root / name
    path.mkdir(exist_ok=True)
    return path


def set_cpus(cgroup: Path, cpus: float) -> None:
    """The cgroup's CPU quota, as Docker's ``--cpus`` sets it (cgroup v1 or v2)."""
    quota = int(cpus * PERIOD_US)
    if (cgroup / "cpu.cfs_quota_us").exists():
        (cgroup / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (cgroup / "cpu.cfs_quota_us").write_text(str(quota))
    else:
        (cgroup / "cpu.max").write_text(f"{quota} {PERIOD_US}")


@contextmanager
def tasks() -> Iterator[list[Path]]:
    """Four demo API processes, each in its own CPU cgroup: the cgroups."""
    processes, cgroups = [], []
    try:
        for port in TASK_PORTS:
            cgroup = _cgroup(f"balancing-bench-{port}")
            set_cpus(cgroup, TASK_CPUS)
            process = subprocess.Popen(
                [sys.executable, "-m", "demo_api"], env={"PORT": str(port), "LOG_LEVEL": "warning"}
            )
            (cgroup / "cgroup.procs").write_text(str(process.pid))
            processes.append(process)
            cgroups.append(cgroup)
        for port in TASK_PORTS:
            wait_until_answered(f"http://127.0.0.1:{port}/api/health")
        yield cgroups
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)
        for cgroup in cgroups:
            with suppress(OSError):
                cgroup.rmdir()


def wait_until_answered(url: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing answered {url}")


@contextmanager
def entry_point(policy: str, directory: Path) -> Iterator[None]:
    """The entry point's nginx with the four tasks pushed, balancing by ``policy``."""
    settings = ProxySettings(
        listen_port=PROXY_PORT,
        location="/api/",
        upstream_port=TASK_PORTS[0],
        workers="2",
        service="demo-api",
        metrics_port=METRICS_PORT,
        control_port=CONTROL_PORT,
        balance=policy,
    )
    text = render(settings, [static_route(settings)], {"demo-api": []})
    config = directory / f"{policy}.conf"
    config.write_text(text.replace("pid /run/nginx.pid;", f"pid {directory}/nginx.pid;"))
    nginx = subprocess.Popen(["nginx", "-c", str(config), "-g", "daemon off;"])
    try:
        wait_until_answered(f"http://127.0.0.1:{METRICS_PORT}/nginx/status")
        lines = "\n".join(f"demo-api 127.0.0.1:{port}" for port in TASK_PORTS)
        pushed = httpx.post(f"http://127.0.0.1:{CONTROL_PORT}/configuration/backends", content=lines)
        pushed.raise_for_status()
        time.sleep(1)  # every worker takes the pushed tasks (they look five times a second)
        yield
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=15)


async def load(seconds: float, clients: int, work_ms: int) -> tuple[list[float], int]:
    """Every request's latency in seconds, and the failed requests, of ``clients`` in a closed loop."""
    latencies: list[float] = []
    failed = 0
    deadline = time.monotonic() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal failed
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                answer = await client.get(f"/api/work?ms={work_ms}")
            except httpx.HTTPError:
                failed += 1
                continue
            if answer.status_code != 200:
                failed += 1
                continue
            latencies.append(time.perf_counter() - start)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{PROXY_PORT}", timeout=30, limits=limits
    ) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
    return latencies, failed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--work-ms", type=int, default=5)
    arguments = parser.parse_args()
    if shutil.which("nginx") is None:
        raise SystemExit("nginx is needed: apt-get install nginx-light libnginx-mod-http-lua")
    rates: dict[str, list[float]] = {policy: [] for policy in BALANCING_POLICIES}
    latencies: dict[str, list[float]] = {policy: [] for policy in BALANCING_POLICIES}
    failed = 0
    with tempfile.TemporaryDirectory() as name, tasks() as cgroups:
        for _ in range(arguments.rounds):
            for slowed in (False, True):
                set_cpus(cgroups[-1], SLOW_CPUS if slowed else TASK_CPUS)
                for policy in BALANCING_POLICIES:
                    with entry_point(policy, Path(name)):
                        measured, lost = asyncio.run(
                            load(arguments.seconds, arguments.clients, arguments.work_ms)
                        )
                    failed += lost
                    if slowed:
                        latencies[policy] += measured
                    else:
                        rates[policy].append(len(measured) / arguments.seconds)
    baseline = statistics.median(rates["round_robin"])
    print(
        f"4 tasks of {TASK_CPUS} CPUs, {arguments.clients} clients, {arguments.work_ms} ms of CPU a request,"
    )
    print(f"{arguments.rounds} rounds of {arguments.seconds:g} s per policy; failed requests: {failed}")
    print(
        f"{'policy':<12}{'equal: req/s':>14}{'vs rr':>8}   one task at {SLOW_CPUS} CPUs: p50 / p95 / p99 ms"
    )
    for policy in BALANCING_POLICIES:
        rate = statistics.median(rates[policy])
        p50, p95, p99 = (1000 * percentile(latencies[policy], q) for q in (0.5, 0.95, 0.99))
        print(f"{policy:<12}{rate:>14.0f}{rate / baseline:>8.2f}   {p50:6.1f} / {p95:6.1f} / {p99:6.1f}")


if __name__ == "__main__":
    main()
