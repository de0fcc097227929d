"""End to end on a real Swarm: schedules in the policy file raise the demo API's minimum, then lower it.

One schedule runs on the wall clock; another on a trace's, while ./stress-test.sh replays
it. The stack is deployed again with POLICY_FILE, as the README says, so this runs with the
tests that redeploy, after the others.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.e2e.support import DEPLOY, ROOT, SETTINGS, Stack, deploy_environment, keep, wait_until

STRESS = ROOT / "stress-test.sh"

pytestmark = [pytest.mark.e2e, pytest.mark.redeploys]

LEAD = 60
"""Seconds from writing the file to the window's start: the redeploy takes 30 to 50."""
WINDOW = 30
SCHEDULED_MINIMUM = int(SETTINGS["MIN_REPLICAS"]) + 3
TRACE_WINDOW = ("1998-06-22 08:55:00", "1998-06-22 09:25:00")
"""Replayed 30 times faster: 60 s, the trace's 09:00 to 09:15 from the 10th to the 40th second."""
SPEEDUP = 30


def replicas(stack: Stack) -> int:
    service = stack.docker.services.get(stack.service("demo-api"))
    return int(service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"])


def schedule_of(stack: Stack) -> dict[str, Any] | None:
    try:
        status = httpx.get(stack.autoscaler + "/status", timeout=5).json()
    except httpx.HTTPError:
        return None  # the autoscaler restarting with the file
    entry = status["services"].get(stack.service("demo-api"))
    return None if entry is None else dict(entry["schedule"])


@pytest.fixture(scope="class")
def window_start(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> int:
    """The stack deployed with a policy file of two schedules; when the wall clock's starts.

    ``e2e-peak`` starts LEAD seconds from now, on the wall clock; ``trace-nine`` at 09:00
    on 22 June, which only a replay of that day of the trace reaches.
    """
    start = math.ceil(time.time()) + LEAD
    at = datetime.fromtimestamp(start, UTC)
    policies = tmp_path_factory.mktemp("schedules") / "policies.yml"
    policies.write_text(
        "services:\n"
        f"  - name: {stack.service('demo-api')}\n"
        "    schedules:\n"
        "      - name: e2e-peak\n"
        f'        cron: "{at.minute} {at.hour} {at.day} {at.month} * {at.second}"\n'
        f"        duration: {WINDOW}\n"
        f"        min_replicas: {SCHEDULED_MINIMUM}\n"
        "      - name: trace-nine\n"
        '        cron: "0 9 22 6 *"\n'
        "        duration: 15m\n"
        f"        min_replicas: {SCHEDULED_MINIMUM}\n"
    )
    environment = {**deploy_environment(), "POLICY_FILE": str(policies)}
    subprocess.run([str(DEPLOY), "--with-monitoring"], env=environment, cwd=ROOT, check=True, timeout=600)
    return start


def running_tasks(stack: Stack) -> set[str]:
    service = stack.docker.services.get(stack.service("demo-api"))
    return {task["ID"] for task in service.tasks({"desired-state": "running"})}


class TestSchedules:
    def test_a_schedule_raises_the_minimum_for_its_window_and_lowers_it_after(
        self, stack: Stack, window_start: int
    ) -> None:
        """The replicas reach the schedule's minimum in its window; after it the minimum is the policy's."""
        start = window_start
        at = datetime.fromtimestamp(start, UTC)
        deployed_at = time.time()
        assert deployed_at < start + WINDOW / 2, f"the redeploy took {deployed_at - start + LEAD:.0f}s"
        before = wait_until("the autoscaler to read the file", lambda: schedule_of(stack), bool, 60)
        if time.time() < start:
            assert (before["next"], before["next_start"]) == ("e2e-peak", at.isoformat())
            assert replicas(stack) < SCHEDULED_MINIMUM
        raised = wait_until(
            f"{SCHEDULED_MINIMUM} replicas in the window",
            lambda: replicas(stack),
            lambda count: count >= SCHEDULED_MINIMUM,
            start + WINDOW - time.time(),
        )
        raised_after = time.time() - start
        during = schedule_of(stack)
        assert during is not None
        assert (during["active"], during["min_replicas"]) == (["e2e-peak"], SCHEDULED_MINIMUM)
        time.sleep(max(0.0, start + WINDOW - time.time()))
        after = wait_until(
            "the window to end", lambda: schedule_of(stack), lambda seen: seen["active"] == [], 30
        )
        assert after["min_replicas"] is None
        lowered = wait_until(
            "the replicas to come down from the schedule's minimum",
            lambda: replicas(stack),
            lambda count: count < SCHEDULED_MINIMUM,
            120,
        )
        keep(
            ROOT / "build" / "e2e-operations.json",
            schedule_raised_replicas=raised,
            schedule_raised_after_window_start_s=round(raised_after, 1),
            schedule_lowered_after_window_end_s=round(time.time() - start - WINDOW, 1),
            schedule_replicas_after=lowered,
        )

    @pytest.mark.usefixtures("window_start")
    def test_a_replay_runs_the_schedules_on_the_traces_clock(self, stack: Stack) -> None:
        """./stress-test.sh replays 08:55 to 09:25 of the trace's 22 June: the service's replicas
        reach trace-nine's minimum while the replay is in the trace's 09:00 to 09:15, /status
        gives the trace's time, no task restarts for the label, and the label is gone after."""
        wait_until(
            "the wall clock's window to end", lambda: schedule_of(stack), lambda s: s["active"] == [], 120
        )
        wait_until("the replicas to come down", lambda: replicas(stack), lambda n: n < SCHEDULED_MINIMUM, 120)
        before = running_tasks(stack)
        command = [str(STRESS), "--replay", "traces/wc98_per_minute.csv.gz", "--start", TRACE_WINDOW[0]]
        command += [
            "--end",
            TRACE_WINDOW[1],
            "--speedup",
            str(SPEEDUP),
            "--peak-rps",
            "4",
            "--quiet",
            "--json",
        ]
        replay = subprocess.Popen(
            command, cwd=ROOT, env=deploy_environment(), stdout=subprocess.PIPE, text=True
        )
        try:
            during = wait_until(
                "trace-nine in the replay",
                lambda: schedule_of(stack),
                lambda seen: seen["active"] == ["trace-nine"],
                60,
            )
            raised = wait_until(
                f"{SCHEDULED_MINIMUM} replicas in the trace's window",
                lambda: replicas(stack),
                lambda count: count >= SCHEDULED_MINIMUM,
                40,
            )
            kept = before <= running_tasks(stack)
            output, _ = replay.communicate(timeout=120)
        finally:
            if replay.poll() is None:
                replay.kill()
        assert replay.returncode == 0
        assert during["trace_time"].startswith("1998-06-22T09:"), during
        assert kept, "a task was replaced when the service was labelled"
        assert json.loads(output)["errors"] == 0
        labels = stack.docker.services.get(stack.service("demo-api")).attrs["Spec"]["Labels"]
        assert "autoscaler.replay_clock" not in labels
        after = wait_until(
            "the wall clock again", lambda: schedule_of(stack), lambda s: s["trace_time"] is None, 30
        )
        assert after["active"] == []
        keep(ROOT / "build" / "e2e-operations.json", replay_schedule_raised_replicas=raised)
