"""End to end on a real Swarm: a schedule in the policy file raises the demo API's minimum, then lowers it.

The stack is deployed again with POLICY_FILE, as the README says, so this runs with the
tests that redeploy, after the others.
"""

from __future__ import annotations

import math
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.support import DEPLOY, ROOT, SETTINGS, Stack, deploy_environment, keep, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redeploys]

LEAD = 60
"""Seconds from writing the file to the window's start: the redeploy takes 30 to 50."""
WINDOW = 30
SCHEDULED_MINIMUM = int(SETTINGS["MIN_REPLICAS"]) + 3


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


class TestSchedules:
    def test_a_schedule_raises_the_minimum_for_its_window_and_lowers_it_after(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        """The replicas reach the schedule's minimum in its window; after it the minimum is the policy's."""
        start = math.ceil(time.time()) + LEAD
        at = datetime.fromtimestamp(start, UTC)
        policies = tmp_path / "policies.yml"
        policies.write_text(
            "services:\n"
            f"  - name: {stack.service('demo-api')}\n"
            "    schedules:\n"
            "      - name: e2e-peak\n"
            f'        cron: "{at.minute} {at.hour} {at.day} {at.month} * {at.second}"\n'
            f"        duration: {WINDOW}\n"
            f"        min_replicas: {SCHEDULED_MINIMUM}\n"
        )
        environment = {**deploy_environment(), "POLICY_FILE": str(policies)}
        subprocess.run([str(DEPLOY), "--with-monitoring"], env=environment, cwd=ROOT, check=True, timeout=600)
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
