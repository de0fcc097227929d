"""End to end on a real Swarm: the control loop under an operator's hands.

Restarts, manual scaling, stack redeploys, pausing, bad labels, other stacks, and a
deploy that cannot run. They share the stack the scaling test deployed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import docker.errors
import httpx
import pytest

from tests.e2e.support import PORTS, ROOT, SETTINGS, STACK, Background, Stack, keep, start_load, stop_load
from tests.e2e.test_stack import Snapshot, Watch, replica_changes

pytestmark = pytest.mark.e2e

LOAD_USERS = 8
LOAD_PATH = "/api/work?ms=50"
CHECK = float(SETTINGS["CHECK_INTERVAL"])
COOLDOWN = float(SETTINGS["SCALE_UP_COOLDOWN"])
STABILIZATION = float(SETTINGS["SCALE_DOWN_STABILIZATION"])
MINIMUM = int(SETTINGS["MIN_REPLICAS"])


MEASURED = ROOT / "build" / "e2e-operations.json"


def record(**figures: float) -> None:
    """Keep what a test measured for the run's report, to a tenth."""
    keep(MEASURED, **{k: round(v, 1) for k, v in figures.items()})


def status(stack: Stack) -> dict:
    return httpx.get(stack.autoscaler + "/status", timeout=5).json()


def demo_status(stack: Stack) -> dict:
    return status(stack)["services"][stack.service("demo-api")]


def wait(condition: str, check: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, KeyError, docker.errors.APIError) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {condition}; last: {last!r}")


def container_of(stack: Stack, short_name: str):
    """The one container of a service with one task; None while it has none or several."""
    containers = stack.docker.containers.list(
        filters={"label": f"com.docker.swarm.service.name={stack.service(short_name)}"}
    )
    return containers[0] if len(containers) == 1 else None


def autoscaler_container(stack: Stack):
    return container_of(stack, "autoscaler")


def demo(stack: Stack):
    return stack.docker.services.get(stack.service("demo-api"))


def label(stack: Stack, add: dict[str, str] | None = None, remove: tuple[str, ...] = ()) -> None:
    command = ["docker", "service", "update", "--detach", "--quiet"]
    for key, value in (add or {}).items():
        command += ["--label-add", f"{key}={value}"]
    for key in remove:
        command += ["--label-rm", key]
    subprocess.run([*command, stack.service("demo-api")], check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class ReplicaChange:
    at: float
    """When the engine recorded it, in seconds since the epoch."""
    old: int
    new: int


def replica_changes_since(stack: Stack, since: float) -> list[ReplicaChange]:
    """The demo API's replica changes the engine has reported since `since`, oldest first."""
    events = stack.docker.events(
        since=int(since),
        until=int(time.time()) + 1,
        filters={"type": "service", "service": stack.service("demo-api")},
        decode=True,
    )
    changes = []
    for event in events:
        attributes = event["Actor"]["Attributes"]
        if "replicas.new" in attributes and event["timeNano"] / 1e9 >= since:
            changes.append(
                ReplicaChange(
                    event["timeNano"] / 1e9, int(attributes["replicas.old"]), int(attributes["replicas.new"])
                )
            )
    return changes


Undone = tuple[ReplicaChange, ReplicaChange]


def reset_and_restore(stack: Stack, since: float, replicas: int) -> Undone | None:
    """The first cut below `replicas` since `since`, and the first change after it back to them."""
    changes = replica_changes_since(stack, since)
    cuts = [i for i, change in enumerate(changes) if change.new < replicas]
    if not cuts:
        return None
    restores = [change for change in changes[cuts[0] + 1 :] if change.new >= replicas]
    return (changes[cuts[0]], restores[0]) if restores else None


def back_to_minimum(watch: Watch) -> Snapshot:
    return watch.wait_for(f"the way back to {MINIMUM}", lambda s: s.replicas == MINIMUM and s.settled, 400)


@pytest.fixture
def idle(stack: Stack) -> Iterator[Stack]:
    """The stack at its minimum, with no load, before and after the test."""
    with Watch(stack) as watch:
        back_to_minimum(watch)
    yield stack
    with Watch(stack) as watch:
        back_to_minimum(watch)


class TestUnderLoad:
    def test_restart_redeploy_and_pause_under_load(self, idle: Stack) -> None:
        """Under load: a killed autoscaler keeps its cooldown, a redeploy's cut is undone, and a pause is
        honoured."""
        stack = idle
        with Watch(stack) as watch:
            load = start_load(stack, LOAD_USERS, LOAD_PATH)
            try:
                self.killed_autoscaler_keeps_its_cooldown(stack, watch)
                self.redeploy_is_undone_within_two_checks(stack, watch)
                self.paused_service_is_left_alone(stack, watch)
            finally:
                stop_load(load)

    @staticmethod
    def killed_autoscaler_keeps_its_cooldown(stack: Stack, watch: Watch) -> None:
        first = watch.wait_for("a scale-up", lambda s: s.replicas > MINIMUM, 120)
        before = autoscaler_container(stack)
        assert before is not None
        before.kill()
        killed_at = time.time()
        wait("a new autoscaler task", lambda: (c := autoscaler_container(stack)) and c.id != before.id, 60)
        following = watch.wait_for("the next change", lambda s: s.replicas != first.replicas, 180)
        gap = following.updated_at - first.updated_at
        assert gap >= COOLDOWN - 0.5, f"changed {gap:.1f}s after the last change; cooldown {COOLDOWN}s"
        assert status(stack)["restored_services"] >= 1, "the new autoscaler did not read the saved state"
        record(killed_after_scale_up_s=killed_at - first.updated_at, next_change_after_scale_up_s=gap)

    @staticmethod
    def redeploy_is_undone_within_two_checks(stack: Stack, watch: Watch) -> None:
        scaled = watch.wait_for("4 replicas, settled", lambda s: s.replicas >= 4 and s.settled, 180)
        image = demo(stack).attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        data_image = stack.docker.services.get(stack.service("postgres")).attrs["Spec"]["TaskTemplate"]
        environment = {
            **os.environ,
            **SETTINGS,
            **{key: str(value) for key, value in PORTS.items()},
            "APP_IMAGE": image,
            "DATA_IMAGE": data_image["ContainerSpec"]["Image"],
            "AUTOSCALER_SCOPE": STACK,
        }
        redeployed_at = time.time()
        redeploy = subprocess.run(
            ["docker", "stack", "deploy", "--resolve-image", "never", "-c", "stack.yml", STACK],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert redeploy.returncode == 0, redeploy.stderr
        # The reset and its undoing can both fall between two of the watch's snapshots, so
        # they are read from the engine's own record of the service's replica changes.
        cut, restored = wait(
            f"the redeploy's reset and the way back to {scaled.replicas}",
            lambda: reset_and_restore(stack, since=redeployed_at, replicas=scaled.replicas),
            60,
        )
        took = restored.at - cut.at
        assert took <= 2 * CHECK + 1, f"back at {restored.new} only {took:.1f}s after the reset to {cut.new}"
        record(redeploy_reset_from=scaled.replicas, redeploy_reset_to=cut.new, redeploy_undone_in_s=took)

    @staticmethod
    def paused_service_is_left_alone(stack: Stack, watch: Watch) -> None:
        label(stack, add={"autoscaler.paused": "true"})
        try:
            wait("the pause seen", lambda: demo_status(stack).get("paused") is True, 30)
            paused = watch.latest()
            assert paused is not None
            time.sleep(4 * CHECK)
            during = [s for s in watch.snapshots if s.at >= paused.at]
            assert {s.replicas for s in during} == {paused.replicas}, replica_changes(during)
            entry = demo_status(stack)
            assert entry["reason"]["limited_by"] == ["paused"]
            assert entry["reason"]["metrics"] == {} or entry["desired_replicas"] == paused.replicas
        finally:
            label(stack, remove=("autoscaler.paused",))


@dataclass
class Probe(Background):
    """Requests through the entry point every 50 ms, each noted with its status (None: no answer)."""

    url: str
    outcomes: list[tuple[float, int | None]] = field(default_factory=list)
    join_timeout = 10.0

    def loops(self) -> list[Callable[[], None]]:
        return [self._run]

    def _run(self) -> None:
        with httpx.Client(timeout=1) as client:
            while not self.stopped.wait(0.05):
                at = time.monotonic()
                try:
                    status_code: int | None = client.get(self.url).status_code
                except httpx.HTTPError:
                    status_code = None
                self.outcomes.append((at, status_code))


class TestEntryPoint:
    def test_a_killed_entry_point_serves_its_tasks_again_from_its_first_answer(self, idle: Stack) -> None:
        """An entry point killed and restarted serves the running tasks from its first answer."""
        stack = idle
        killed = container_of(stack, "nginx")
        assert killed is not None
        with Probe(stack.entry + "/api/health") as probe:
            wait("answers before the kill", lambda: any(code == 200 for _, code in probe.outcomes), 10)
            killed_at = time.monotonic()
            killed.kill()
            wait(
                "a new entry point answering",
                lambda: any(at > killed_at and code == 200 for at, code in probe.outcomes[-5:]),
                120,
            )
            time.sleep(2)  # a few more answers from the new one
        after = [(at, code) for at, code in probe.outcomes if at >= killed_at]
        unanswered = [at for at, code in after if code is None]
        answers = [code for _, code in after if code is not None]
        record(
            entry_point_outage_s=(unanswered[-1] - killed_at) if unanswered else 0.0,
            entry_point_unanswered_probes=len(unanswered),
        )
        replaced = container_of(stack, "nginx")
        assert replaced is not None
        assert replaced.id != killed.id
        # Every answer, the new entry point's first included, came from a task: no 503 for
        # "no tasks yet", no 502.
        assert answers
        assert set(answers) == {200}, after


class TestOperator:
    def test_a_manual_scale_up_is_kept_for_the_stabilization_window(self, idle: Stack) -> None:
        """Replicas an operator adds by hand stay for the stabilization window."""
        stack = idle
        with Watch(stack) as watch:
            demo(stack).scale(5)
            scaled = watch.wait_for("the manual scale to 5", lambda s: s.replicas == 5, 30)
            down = watch.wait_for("the way down", lambda s: s.replicas < 5, 240)
        kept = down.updated_at - scaled.updated_at
        assert kept >= STABILIZATION, f"the manual replicas were removed after {kept:.1f}s"
        record(manual_scale_kept_s=kept)

    def test_a_bad_label_skips_only_that_service(self, idle: Stack) -> None:
        """A service with a bad label is skipped and reported; the other services are still decided."""
        stack = idle
        image = demo(stack).attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        common = {"autoscaler.enable": "true", "autoscaler.min_replicas": "1", "autoscaler.max_replicas": "2"}
        inside = stack.docker.services.create(
            image,
            ["python", "-m", "demo_api"],
            name=f"{STACK}-extra",
            labels={**common, "com.docker.stack.namespace": STACK},
            mode=docker.types.ServiceMode("replicated", 1),
        )
        outside = stack.docker.services.create(
            image,
            ["python", "-m", "demo_api"],
            name="autoscaler-e2e-other-stack",
            labels={**common, "autoscaler.min_replicas": "2", "com.docker.stack.namespace": "other"},
            mode=docker.types.ServiceMode("replicated", 1),
        )
        try:
            label(stack, add={"autoscaler.max_replicas": "many"})
            entry = wait("the bad label reported", lambda: demo_status(stack).get("config_error"), 30)
            assert "autoscaler.max_replicas" in entry
            assert "'many'" in entry
            assert "reason" not in demo_status(stack)
            first = status(stack)["services"][inside.name]["decided_at"]
            wait(
                "the other service decided again",
                lambda: status(stack)["services"][inside.name]["decided_at"] > first,
                3 * CHECK,
            )
            assert httpx.get(stack.autoscaler + "/health", timeout=5).status_code == 200
            problems = status(stack)["problems"]
            assert any(p["kind"] == "label" and p["subject"] == stack.service("demo-api") for p in problems)
            # The service of another stack, below this policy's minimum, is not this autoscaler's.
            assert outside.name not in status(stack)["services"]
            outside.reload()
            assert outside.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 1
        finally:
            label(stack, remove=("autoscaler.max_replicas",))
            inside.remove()
            outside.remove()
        wait("the demo API decided again", lambda: "reason" in demo_status(stack), 3 * CHECK)


class TestDeploy:
    @pytest.mark.usefixtures("stack")  # the engine, the swarm and the image are there
    def test_a_bad_configuration_fails_the_deploy_with_the_autoscalers_error(self) -> None:
        """A deploy with a bad configuration fails with the autoscaler's own one-line error."""
        name = "autoscaler-e2e-bad"
        environment = {
            **os.environ,
            "STACK_NAME": name,
            "MIN_REPLICAS": "5",
            "MAX_REPLICAS": "3",
            "PUBLISHED_PORT": "18180",
            "AUTOSCALER_PORT": "18181",
            "COLLECTOR_PORT": "18190",
            "CONVERGE_TIMEOUT": "120",
        }
        script = str(ROOT / "deploy-autoscaling.sh")
        try:
            result = subprocess.run(
                [script], env=environment, capture_output=True, text=True, timeout=300, check=False
            )
        finally:
            subprocess.run([script, "--down"], env=environment, capture_output=True, timeout=180, check=False)
        assert result.returncode != 0, result.stderr
        assert "is up" not in result.stdout
        lines = [line for line in result.stderr.splitlines() if "invalid configuration" in line]
        assert lines, result.stderr
        logged = json.loads(lines[-1].split(": ", 1)[1])
        assert (logged["variable"], logged["value"]) == ("MIN_REPLICAS", "5")
        assert "MAX_REPLICAS=3" in logged["problem"]
