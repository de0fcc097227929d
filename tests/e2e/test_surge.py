"""End to end: a surge of requests in flight is met in one step at the first check that sees it.

A service made here from the demo API's image takes /api/wait at the entry point, with
2 replicas, the target algorithm and a concurrency target of 2 requests in flight per
replica. Closed-loop users that never think keep exactly USERS requests in flight, so
the count that brings concurrency to its target is ceil(USERS / 2). The first check
whose surge window (SURGE_WINDOW seconds before the check) lies within the surge must
ask for that count, within one, in one step.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.support import ROOT, Stack, keep, start_load, stop_load, wait_until
from tests.e2e.test_routing import routed_service

pytestmark = pytest.mark.e2e

REPORT = ROOT / "build" / "e2e-surge.json"
SURGE = "surge"
USERS = 12
TARGET = 2
NEEDED = math.ceil(USERS / TARGET)


@dataclass(frozen=True)
class Seen:
    """One decision of the autoscaler for the service, as /status showed it."""

    decided_at: float
    current: int
    desired: int
    message: str
    window_start: float | None
    """When the decision's surge window began (the early read), by the autoscaler's clock."""


def in_flight(stack: Stack) -> float:
    """Requests in flight for the service at the entry point now, as nginx counts them."""
    text = httpx.get(stack.entry_metrics, timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "entrypoint_requests_in_flight" and sample.labels.get("service") == SURGE
    )


class Watch:
    """The service's decisions, and when the entry point first had the surge in flight."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.decisions: dict[float, Seen] = {}
        self.surge_seen_at: float | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        while not self.stopped.is_set():
            with contextlib.suppress(httpx.HTTPError, KeyError):  # the next look tries again
                self.look()
            time.sleep(0.25)

    def look(self) -> None:
        if self.surge_seen_at is None and in_flight(self.stack) >= USERS:
            self.surge_seen_at = time.time()
        status = httpx.get(self.stack.autoscaler + "/status", timeout=5).json()
        entry = status["services"][self.stack.service(SURGE)]
        if "decided_at" not in entry:
            return
        surge_window = (entry.get("requests") or {}).get("surge_window_seconds")
        read_at = status["requests_read_at"]
        self.decisions[entry["decided_at"]] = Seen(
            entry["decided_at"],
            entry["current_replicas"],
            entry["desired_replicas"],
            entry["reason"]["message"],
            None if surge_window is None or read_at is None else read_at - surge_window,
        )


@pytest.fixture
def surging(stack: Stack) -> Iterator[Stack]:
    labels = {
        "autoscaler.enable": "true",
        "autoscaler.scaling_algorithm": "target",
        "autoscaler.target_concurrency": str(TARGET),
        "autoscaler.min_replicas": "2",
        "autoscaler.max_replicas": "10",
        "autoscaler.scale_up_cooldown": "0",
        "entrypoint.path": "/api/wait",
        "entrypoint.port": "8000",
    }
    with routed_service(stack, SURGE, labels, replicas=2):
        yield stack


class TestSurge:
    def test_the_first_check_that_sees_a_surge_asks_for_what_it_needs_in_one_step(
        self, surging: Stack
    ) -> None:
        """The first check that sees a surge of requests in flight asks for all it needs at once."""
        stack = surging
        service = stack.service(SURGE)

        def settled() -> dict | None:
            entry = httpx.get(stack.autoscaler + "/status", timeout=5).json()["services"].get(service)
            return entry if entry and entry.get("ready_replicas") == 2 and "requests" in entry else None

        wait_until("the service measured at 2 replicas", settled, bool, 120)
        watch = Watch(stack)
        watch.thread.start()
        load = start_load(stack, USERS, "/api/wait?ms=400", duration=90)
        try:
            wait_until(
                f"a decision for at least {NEEDED - 1} replicas",
                lambda: max((seen.desired for seen in watch.decisions.values()), default=0),
                lambda most: most >= NEEDED - 1,
                60,
            )
        finally:
            stop_load(load)
            watch.stopped.set()
            watch.thread.join(timeout=10)
        seen_at = watch.surge_seen_at
        assert seen_at is not None, "the entry point never had the surge in flight"
        decisions = sorted(watch.decisions.values(), key=lambda seen: seen.decided_at)
        within = next(
            (seen for seen in decisions if seen.window_start is not None and seen.window_start >= seen_at),
            None,
        )
        assert within is not None, f"no check with its surge window after {seen_at}: {decisions}"
        steps_up = [
            seen for seen in decisions if seen.desired > seen.current and seen.decided_at <= within.decided_at
        ]
        keep(
            REPORT,
            surge_seen_to_decision_s=round(within.decided_at - seen_at, 1),
            replicas_before=within.current,
            replicas_asked=within.desired,
            needed=NEEDED,
            scale_up_steps=len(steps_up),
            message=within.message,
        )
        assert abs(within.desired - NEEDED) <= 1, within
        assert "concurrency (surge)" in within.message, within
        # One step: at most one smaller step (a check whose window held only part of the surge) before it.
        assert len(steps_up) <= 2, steps_up
        assert within.desired - min(seen.current for seen in steps_up) >= 2, steps_up
