"""The stack under test: where it is and how it was configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar

import docker
import pytest

Seen = TypeVar("Seen")

ROOT = Path(__file__).resolve().parents[2]
STACK = "autoscaler-e2e"
PORTS = {
    "PUBLISHED_PORT": 18080,
    "AUTOSCALER_PORT": 18081,
    "COLLECTOR_PORT": 18090,
    "ENTRYPOINT_METRICS_PORT": 18091,
    "PROMETHEUS_PORT": 18092,
}
# Short intervals, so that a scale-up and the way back fit in a few minutes.
SETTINGS = {
    "CHECK_INTERVAL": "5",
    "COOLDOWN_PERIOD": "15",
    # An explicit scale-up cooldown, so that the tests see one kept across an autoscaler's restart.
    "SCALE_UP_COOLDOWN": "15",
    "SCALE_DOWN_STABILIZATION": "20",
    "SAMPLE_INTERVAL": "2",
    "METRICS_WINDOW": "10",
    # Read the entry points 2 s before each 5 s check: the surge window.
    "SURGE_WINDOW": "2",
    "CONTAINER_REFRESH_INTERVAL": "4",
    "MIN_REPLICAS": "2",
    "MAX_REPLICAS": "10",
    # Kubernetes' lease of 15 s, renewed within 10 s and tried every 2 s, scaled to the 5 s checks.
    "LEASE_DURATION": "6",
    "LEASE_RENEW_DEADLINE": "4",
    "LEASE_RETRY_PERIOD": "1",
    # The demo's cached reads come to tens of commands a second here, not the tens of thousands
    # a Redis replica is for by default.
    "REDIS_REPLICA_SCALE_UP_OPS": "40",
    "REDIS_REPLICA_SCALE_DOWN_OPS": "10",
}


DEPLOY = ROOT / "deploy-autoscaling.sh"


def deploy_environment() -> dict[str, str]:
    """The environment deploy-autoscaling.sh runs with for the stack under test."""
    return {**os.environ, "STACK_NAME": STACK, **SETTINGS, **{k: str(v) for k, v in PORTS.items()}}


@dataclass(frozen=True)
class Stack:
    name: str
    entry: str
    """Base URL of nginx on the host."""
    entry_metrics: str
    """URL of the entry point's request counters."""
    autoscaler: str
    collector: str
    prometheus: str
    settings: dict[str, str]
    docker: docker.DockerClient

    def service(self, short_name: str) -> str:
        return f"{self.name}_{short_name}"


def keep(report: Path, **figures: object) -> None:
    """Add what a test measured to the run's report file (run-tests.sh prints it)."""
    known = json.loads(report.read_text()) if report.exists() else {}
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps({**known, **figures}, indent=2) + "\n")


def start_load(stack: Stack, users: int, path: str, duration: int = 300) -> subprocess.Popen[str]:
    """The project's load generator against the stack's entry point, in the background."""
    command = [sys.executable, "-m", "loadtest", "--target", stack.entry, "--users", str(users)]
    command += ["--duration", str(duration), "--path", path, "--json", "--autoscaler", stack.autoscaler]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def stop_load(load: subprocess.Popen[str]) -> None:
    load.terminate()
    load.wait(timeout=30)


def wait_until(
    condition: str, look: Callable[[], Seen | None], predicate: Callable[[Seen], bool], timeout: float
) -> Seen:
    """The first thing ``look`` sees (twice a second) that satisfies ``predicate``; fails at ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = look()
        if seen is not None and predicate(seen):
            return seen
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {condition}; last: {look()}")


class Background:
    """Loops that run in threads while ``with`` lasts; each ends when ``stopped`` is set."""

    join_timeout = 60.0

    def loops(self) -> list[Callable[[], None]]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.stopped = threading.Event()
        self._threads = [threading.Thread(target=loop, daemon=True) for loop in self.loops()]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        for thread in self._threads:
            thread.join(timeout=self.join_timeout)
