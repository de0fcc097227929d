"""End to end: the demo API scales on the latency and errors its users see at the entry point."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.support import ROOT, Stack, wait_until

pytestmark = pytest.mark.e2e

REPORT = ROOT / "build" / "e2e-request-metrics.json"
WAIT_USERS = 24
WAIT_PATH = "/api/wait?ms=500"
"""24 users on 4 workers of 500 ms per task: about 1.5 s at 2 replicas, 0.75 s at 4."""
FLAKY_USERS = 2
FLAKY_PATH = "/api/flaky?p=0.2"
LOAD_SECONDS = 80
P95_AGREEMENT = 0.2


@dataclass(frozen=True)
class Check:
    """One decision as /status showed it, with the requests the autoscaler saw over its window."""

    read_at: float
    """When the autoscaler read the entry point, in seconds since the epoch."""
    replicas: int
    reason: dict[str, Any]
    requests: dict[str, Any]


@dataclass
class StatusWatch:
    """Every decision of the demo API that /status showed while polled."""

    stack: Stack
    checks: dict[float, Check] = field(default_factory=dict)

    def poll(self) -> Check | None:
        status = httpx.get(self.stack.autoscaler + "/status", timeout=5).json()
        entry = status["services"][self.stack.service("demo-api")]
        read_at = status.get("requests_read_at")
        if read_at is None or "reason" not in entry:
            return None
        check = Check(read_at, entry["current_replicas"], entry["reason"], entry.get("requests") or {})
        self.checks.setdefault(read_at, check)
        return check

    def until(self, condition: str, predicate: Callable[[Check], bool], timeout: float) -> Check:
        return wait_until(condition, self.poll, predicate, timeout)

    def scale_ups(self) -> list[Check]:
        return [check for check in self.checks.values() if check.reason["action"] == "scale_up"]


def load(stack: Stack, users: int, path: str, record: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "loadtest", "--target", stack.entry, "--users", str(users)]
    command += ["--duration", str(LOAD_SECONDS), "--path", path, "--json", "--record", str(record)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def recorded(path: Path) -> list[tuple[float, float]]:
    """(end time, latency in ms) of every request the load generator sent."""
    with path.open() as file:
        return [(float(row["finished_at"]), float(row["latency_ms"])) for row in csv.DictReader(file)]


def p95(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def at_minimum(stack: Stack) -> Callable[[Check], bool]:
    minimum = int(stack.settings["MIN_REPLICAS"])
    return lambda check: check.replicas == minimum and check.reason["action"] == "none"


class TestScalingOnRequests:
    def test_a_waiting_service_scales_on_latency_alone_and_back_to_its_minimum(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        """A service slow with idle CPU scales on the latency nginx measured, and returns to its minimum
        after."""
        watch = StatusWatch(stack)
        status = httpx.get(stack.autoscaler + "/status", timeout=5).json()
        cpu_threshold = status["services"][stack.service("demo-api")]["policy"]["thresholds"]["cpu"]["up"]
        watch.until("the minimum before the load", at_minimum(stack), 400)
        record = tmp_path / "wait.csv"
        started = time.time()
        generator = load(stack, WAIT_USERS, WAIT_PATH, record)
        try:
            watch.until("a scale-up", lambda check: check.replicas > int(stack.settings["MIN_REPLICAS"]), 90)
            while generator.poll() is None:
                watch.poll()
                time.sleep(1)
        finally:
            generator.terminate()
            generator.wait(timeout=30)
        ended = time.time()
        back = watch.until("the minimum after the load", at_minimum(stack), 400)

        requests = recorded(record)
        comparisons = []
        for check in watch.checks.values():
            window = check.requests.get("window_seconds")
            reported = (check.requests.get("latency_ms") or {}).get("p95")
            if window is None or reported is None or not started + 2 <= check.read_at - window:
                continue
            if check.read_at > ended - 2:
                continue
            inside = [latency for at, latency in requests if check.read_at - window < at <= check.read_at]
            comparisons.append(
                {
                    "read_at": check.read_at,
                    "autoscaler_p95_ms": reported,
                    "loadtest_p95_ms": p95(inside),
                    "requests": len(inside),
                }
            )
        ups = watch.scale_ups()
        REPORT.parent.mkdir(exist_ok=True)
        REPORT.write_text(
            json.dumps(
                {
                    "scale_ups": [{"replicas": c.replicas, "reason": c.reason} for c in ups],
                    "back_at_minimum": back.reason,
                    "p95": comparisons,
                },
                indent=2,
            )
            + "\n"
        )
        assert ups, "no scale-up"
        assert {check.reason["metric"] for check in ups} == {"latency"}, ups
        assert all(check.reason["metrics"]["cpu"] < cpu_threshold / 2 for check in ups), ups
        assert set(back.reason.get("idle", ())) == {"latency", "errors"}, back.reason
        assert comparisons, "no window inside the load"
        for comparison in comparisons:
            autoscaler, generator_p95 = comparison["autoscaler_p95_ms"], comparison["loadtest_p95_ms"]
            assert abs(autoscaler - generator_p95) <= P95_AGREEMENT * generator_p95, comparison

    def test_a_failing_service_scales_on_errors(self, stack: Stack, tmp_path: Path) -> None:
        """A service answering errors scales on the error rate nginx counted."""
        watch = StatusWatch(stack)
        minimum = int(stack.settings["MIN_REPLICAS"])
        watch.until("the minimum before the load", at_minimum(stack), 400)
        generator = load(stack, FLAKY_USERS, FLAKY_PATH, tmp_path / "flaky.csv")
        try:
            up = watch.until("a scale-up", lambda check: check.reason["action"] == "scale_up", 90)
        finally:
            generator.terminate()
            generator.wait(timeout=30)
        assert up.reason["metric"] == "errors", up
        assert 10 < up.reason["value"] < 30, up  # 20 % of the requests fail
        watch.until("the minimum after the load", at_minimum(stack), 400)
        assert max(check.replicas for check in watch.checks.values()) > minimum
