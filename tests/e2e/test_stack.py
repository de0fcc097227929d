"""End to end on a real Swarm: load through nginx, the demo API scales up, then back down."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.entrypoint_page import parse
from autoscaler.swarm import parse_timestamp
from tests.e2e.support import ROOT, Background, Stack, start_load, stop_load, wait_until

pytestmark = pytest.mark.e2e

REPORT = ROOT / "build" / "e2e-report.json"
LOAD_USERS = 8
LOAD_PATH = "/api/work?ms=50"
TARGET_REPLICAS = 4


def spec_replicas(stack: Stack) -> int:
    return spec(stack)[0]


def spec(stack: Stack) -> tuple[int, float]:
    """The demo API's replica count and when its spec last changed, by the engine's clock."""
    service = stack.docker.services.get(stack.service("demo-api"))
    updated_at = parse_timestamp(service.attrs["UpdatedAt"])
    assert updated_at is not None
    return int(service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"]), updated_at


def running_task_addresses(stack: Stack, service: str = "demo-api") -> frozenset[str]:
    """Overlay addresses of the service's tasks that Swarm reports running."""
    tasks = stack.docker.api.tasks(filters={"service": stack.service(service), "desired-state": "running"})
    addresses = set()
    for task in tasks:
        if task["Status"]["State"] != "running":
            continue
        for attachment in task.get("NetworksAttachments", []):
            if attachment["Network"]["Spec"]["Name"] == f"{stack.name}_backend":
                addresses.update(a.split("/")[0] for a in attachment["Addresses"])
    return frozenset(addresses)


def upstream(stack: Stack, service: str = "demo-api") -> frozenset[str]:
    """The task addresses nginx's balancer sends the service's requests to now."""
    listing = httpx.get(stack.entry_metrics.removesuffix("/metrics") + "/nginx/upstream", timeout=5)
    listing.raise_for_status()
    lines = (line.split() for line in listing.text.splitlines())
    return frozenset(backend.rsplit(":", 1)[0] for name, backend in lines if name == service)


@dataclass(frozen=True)
class Snapshot:
    at: float
    """Seconds since the load started."""
    replicas: int
    updated_at: float
    """When the service's spec last changed (Docker's UpdatedAt), in seconds since the epoch."""
    running: frozenset[str]
    upstream: frozenset[str]

    @property
    def settled(self) -> bool:
        return len(self.running) == self.replicas and self.upstream == self.running


@dataclass
class Watch(Background):
    """Background threads that record the service and what serves requests, once a second."""

    stack: Stack
    started: float = field(default_factory=time.monotonic)
    snapshots: list[Snapshot] = field(default_factory=list)
    first_served: dict[str, float] = field(default_factory=dict)
    probe_errors: int = 0
    probes: int = 0

    def now(self) -> float:
        return time.monotonic() - self.started

    def _observe(self) -> None:
        while not self.stopped.wait(1.0):
            replicas, updated_at = spec(self.stack)
            self.snapshots.append(
                Snapshot(
                    self.now(), replicas, updated_at, running_task_addresses(self.stack), upstream(self.stack)
                )
            )

    def _probe(self) -> None:
        url = self.stack.entry + "/api/work?ms=1"
        with httpx.Client(timeout=30) as client, ThreadPoolExecutor(12) as pool:
            while not self.stopped.wait(0.5):
                for outcome in pool.map(lambda _: self._one(client, url), range(12)):
                    self.probes += 1
                    if outcome is None:
                        self.probe_errors += 1
                    else:
                        self.first_served.setdefault(outcome, self.now())

    @staticmethod
    def _one(client: httpx.Client, url: str) -> str | None:
        try:
            response = client.get(url)
        except httpx.HTTPError:
            return None
        return str(response.json()["served_by"]) if response.status_code == 200 else None

    def loops(self) -> list[Callable[[], None]]:
        return [self._observe, self._probe]

    def latest(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None

    def wait_for(self, condition: str, predicate: Callable[[Snapshot], bool], timeout: float) -> Snapshot:
        return wait_until(condition, self.latest, predicate, timeout)


def replica_changes(snapshots: list[Snapshot]) -> list[tuple[float, float, int, int]]:
    """(seen at, changed at by the engine's clock, from, to) for every change of the replica count."""
    changes = []
    for before, after in itertools.pairwise(snapshots):
        if after.replicas != before.replicas:
            changes.append((after.at, after.updated_at, before.replicas, after.replicas))
    return changes


class TestDaemons:
    def test_health_and_metrics_answer_and_parse(self, stack: Stack) -> None:
        """Every daemon of the deployed stack answers /health and /metrics in Prometheus text."""
        expected = {
            stack.autoscaler: {
                "autoscaler_service_replicas",
                "autoscaler_scale_events",
                "autoscaler_decisions",
                "autoscaler_last_successful_check_timestamp_seconds",
            },
            stack.collector: {
                "collector_task_cpu_percent",
                "collector_task_memory_percent",
                "collector_last_sample_timestamp_seconds",
            },
        }
        for base, names in expected.items():
            assert httpx.get(base + "/health", timeout=5).status_code == 200
            response = httpx.get(base + "/metrics", timeout=5)
            assert response.status_code == 200
            families = {family.name for family in text_string_to_metric_families(response.text)}
            assert names <= families, f"{base}/metrics lacks {names - families}"

    def test_the_entry_point_counts_every_request_it_proxied(self, stack: Stack) -> None:
        """The entry point counts every request it proxied."""

        def counted() -> float:
            services = parse(httpx.get(stack.entry_metrics, timeout=5).text).services
            return services["demo-api"].requests if "demo-api" in services else 0.0

        # A request of an earlier test can still be on its way into the count (a WebSocket is
        # counted when it closes; the workers add their counts once a second): start from a
        # count that has stopped moving.
        readings = [counted()]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (len(readings) < 2 or readings[-1] != readings[-2]):
            time.sleep(1.5)
            readings.append(counted())
        before = readings[-1]
        command = [sys.executable, "-m", "loadtest", "--target", stack.entry, "--users", "4"]
        load = subprocess.run(
            [*command, "--duration", "5", "--path", "/api/work?ms=1", "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        sent = json.loads(load.stdout)["requests"]
        assert sent > 0
        deadline = time.monotonic() + 10  # nginx's workers add their counts to shared memory once a second
        while counted() - before != sent and time.monotonic() < deadline:
            time.sleep(0.5)
        assert counted() - before == sent

    def test_status_explains_the_latest_decision(self, stack: Stack) -> None:
        """/status explains the latest decision with the metrics it was made on."""
        # The first decisions after a deploy may come before the collector has two samples.
        # Behind the entry point, latency and errors count too: read, or idle with no requests.
        judged = {"cpu", "memory", "latency", "errors"}
        deadline = time.monotonic() + 60
        while True:
            status = httpx.get(stack.autoscaler + "/status", timeout=5).json()
            entry = status["services"][stack.service("demo-api")]
            seen = set(entry["reason"]["metrics"]) | set(entry["reason"].get("idle", ()))
            if seen == judged or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert seen == judged, entry
        assert entry["behind_entry_point"] is True
        assert entry["reason"]["algorithm"] == "linear"
        assert entry["policy"]["min_replicas"] == 2
        assert entry["current_replicas"] == spec_replicas(stack)

    def test_collector_reports_the_demo_tasks(self, stack: Stack) -> None:
        """The collector reports the demo API's running tasks with their CPU and memory."""
        report = httpx.get(stack.collector + "/v1/services", timeout=5).json()
        demo = report["services"][stack.service("demo-api")]
        assert demo["tasks"] == spec_replicas(stack)
        assert demo["cpu_percent"] is not None
        assert 0 < demo["memory_percent"] < 100

    def test_invalid_bounds_stop_the_autoscaler_with_exit_2(self, stack: Stack) -> None:
        """The autoscaler's image exits 2 with one line naming a bad bound."""
        image = stack.docker.services.get(stack.service("autoscaler")).attrs["Spec"]["TaskTemplate"][
            "ContainerSpec"
        ]["Image"]
        result = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "-e",
                "MIN_REPLICAS=5",
                "-e",
                "MAX_REPLICAS=3",
                image,
                "python",
                "-m",
                "autoscaler",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        assert len(lines) == 1, lines
        message = json.loads(lines[0])
        assert message["event"] == "invalid configuration"
        assert (message["variable"], message["value"]) == ("MIN_REPLICAS", "5")
        assert "MAX_REPLICAS=3" in message["problem"]


class TestScaling:
    def test_scales_up_under_load_and_back_down(self, stack: Stack) -> None:
        """Under load the demo API scales up within its bounds and comes back down after, no change closer
        than the cooldown."""
        cooldown = min(float(stack.settings[name]) for name in ("COOLDOWN_PERIOD", "SCALE_UP_COOLDOWN"))
        minimum, maximum = int(stack.settings["MIN_REPLICAS"]), int(stack.settings["MAX_REPLICAS"])
        with Watch(stack) as watch:
            watch.wait_for("the initial two tasks", lambda s: s.replicas == minimum and s.settled, 60)
            load_started = watch.now()
            load = start_load(stack, LOAD_USERS, LOAD_PATH)
            try:
                watch.wait_for(
                    f"{TARGET_REPLICAS} replicas running, in nginx, and serving",
                    lambda s: (
                        s.replicas >= TARGET_REPLICAS and s.settled and s.running <= set(watch.first_served)
                    ),
                    240,
                )
            finally:
                stop_load(load)
            load_stopped = watch.now()
            back = watch.wait_for(
                f"the way back to {minimum}", lambda s: s.replicas == minimum and s.settled, 400
            )
            watch.wait_for("one more look", lambda s: s.at > back.at + 2, 30)

        snapshots = watch.snapshots
        changes = replica_changes(snapshots)
        during_load = [s for s in snapshots if load_started <= s.at <= load_stopped]
        ever_running = set().union(*(s.running for s in during_load))
        served_after_start = sorted(
            (at, address) for address, at in watch.first_served.items() if address in ever_running
        )
        report = {
            "load_started_s": round(load_started, 1),
            "load_stopped_s": round(load_stopped, 1),
            "back_to_minimum_s": round(back.at, 1),
            "changes": [{"at_s": round(at, 1), "from": a, "to": b} for at, _, a, b in changes],
            "first_served_s_since_load": {
                address: round(at - load_started, 1) for at, address in served_after_start
            },
            "probes": watch.probes,
            "probe_errors": watch.probe_errors,
        }
        REPORT.parent.mkdir(exist_ok=True)
        REPORT.write_text(json.dumps(report, indent=2) + "\n")

        assert max(s.replicas for s in snapshots) >= TARGET_REPLICAS
        assert all(minimum <= s.replicas <= maximum for s in snapshots), changes
        # Gaps by the engine's own update times: exact, unlike the once-a-second snapshots.
        gaps = [later[1] - earlier[1] for earlier, later in itertools.pairwise(changes)]
        assert all(gap >= cooldown - 0.5 for gap in gaps), (gaps, changes)
        for count in {s.replicas for s in snapshots}:
            assert any(s.replicas == count and s.settled for s in snapshots), (
                f"nginx never matched the running tasks at {count} replicas"
            )
        unserved = ever_running - set(watch.first_served)
        assert not unserved, f"tasks that never received a request: {unserved}"
        # Keep-alive probes all along the way up and back down: not one may fail.
        assert watch.probes > 0
        assert watch.probe_errors == 0, report
        assert snapshots[-1].replicas == minimum
        assert snapshots[-1].settled
