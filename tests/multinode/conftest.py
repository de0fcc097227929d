"""A swarm of four nodes on this machine (./local-swarm.sh), with the stack deployed through its registry."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from tests.e2e.support import DEPLOY, ROOT, keep
from tests.multinode.support import (
    NODES,
    PORT_BASE,
    REGISTRY,
    REGISTRY_PORT,
    REPORT,
    SETTINGS,
    STACK,
    LocalSwarm,
)

LOCAL_SWARM = ROOT / "local-swarm.sh"


def _local_swarm(*arguments: str, timeout: float = 600) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    environment |= {"LOCAL_SWARM_PORT_BASE": str(PORT_BASE), "LOCAL_SWARM_REGISTRY_PORT": str(REGISTRY_PORT)}
    done = subprocess.run(
        [str(LOCAL_SWARM), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"local-swarm.sh {' '.join(arguments)}: {done.stderr}"
    return done.stdout


def _available_memory_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no MemAvailable in /proc/meminfo")


def _busy_cores(seconds: float) -> float:
    """Cores this machine kept busy over ``seconds`` (every process, not only the swarm's)."""

    def ticks() -> tuple[int, int]:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # idle and iowait

    total, idle = ticks()
    time.sleep(seconds)
    total_after, idle_after = ticks()
    cores = os.cpu_count() or 1
    return cores * (1 - (idle_after - idle) / max(1, total_after - total))


@pytest.fixture(scope="package")
def swarm() -> Iterator[LocalSwarm]:
    before = _available_memory_mib(), _busy_cores(10)
    _local_swarm("up", "--nodes", str(NODES), "--managers", "3", "--registry")
    try:
        docker_host = _local_swarm("env").strip().removeprefix("export DOCKER_HOST=")
        environment = {
            **os.environ,
            **SETTINGS,
            "DOCKER_HOST": docker_host,
            "STACK_NAME": STACK,
            "REGISTRY": REGISTRY,
            "LOCAL_SWARM_PORT_BASE": str(PORT_BASE),
        }
        subprocess.run([str(DEPLOY)], env=environment, check=True, timeout=900)
        local = LocalSwarm(docker.from_env(environment={}))
        try:
            _wait_all_healthy(local)
            time.sleep(20)  # past the deploy's own bustle
            keep(
                REPORT,
                resources_at_rest={
                    "nodes": NODES,
                    "memory_mib": round(before[0] - _available_memory_mib()),
                    "busy_cores": round(_busy_cores(20), 2),
                    "busy_cores_before_the_swarm": round(before[1], 2),
                },
            )
            yield local
        finally:
            local.close()
    finally:
        _local_swarm("down", timeout=300)


def _wait_all_healthy(local: LocalSwarm) -> None:
    """Every node's collector answers, and an autoscaler answers healthy on every manager."""
    deadline = time.monotonic() + 120
    last: object = None
    while time.monotonic() < deadline:
        try:
            answers = [
                httpx.get(f"{local.url(node, 8090)}/health", timeout=3).status_code for node in local.nodes
            ]
            answers += [
                httpx.get(f"{local.url(node, 8080)}/health", timeout=3).status_code for node in local.managers
            ]
            if all(code == 200 for code in answers):
                return
            last = answers
        except httpx.HTTPError as error:
            last = error
        time.sleep(1)
    pytest.fail(f"the stack on the local swarm is not healthy: {last!r}")
