"""End to end: not one request lost while the demo API is scaled up and down, or loses a task;
and above its rate limit, a fast refusal instead of a queue.

The autoscaler is paused for the demo API here: the replicas are changed by hand, on a
schedule, so that ten whole cycles fit in a few minutes whatever the load.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.e2e.support import ROOT, Background, Stack, keep, wait_until
from tests.e2e.test_stack import running_task_addresses, spec_replicas, upstream
from tests.e2e.test_stack_operations import label

pytestmark = pytest.mark.e2e

REPORT = ROOT / "build" / "e2e-zero-drop.json"
CYCLES = 10
LOW, HIGH = 2, 4
GET_USERS, POST_USERS = 4, 2
WORK = "/api/work?ms=2"
REPLICA_RPS = 15
TIMEOUT = 10.0
"""Seconds a request may take before it counts as failed."""


@dataclass(frozen=True)
class Outcome:
    started: float
    """time.monotonic() when it was sent."""
    seconds: float
    failure: str | None
    """None for a 2xx; the status or the error otherwise."""


@dataclass
class Load(Background):
    """Users sending requests one after the other on their own keep-alive connection."""

    url: str
    users: int
    method: str = "GET"
    outcomes: list[Outcome] = field(default_factory=list)
    join_timeout = TIMEOUT + 5

    def loops(self) -> list[Callable[[], None]]:
        return [self._user] * self.users

    def _user(self) -> None:
        with httpx.Client(timeout=TIMEOUT) as client:
            while not self.stopped.is_set():
                started = time.monotonic()
                try:
                    response = client.request(
                        self.method, self.url, content=b"order=1" if self.method == "POST" else None
                    )
                    failure = None if response.is_success else str(response.status_code)
                except httpx.HTTPError as error:
                    failure = type(error).__name__
                self.outcomes.append(Outcome(started, time.monotonic() - started, failure))

    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.failure is not None]

    def p99_ms(self, start: float, end: float) -> float:
        latencies = sorted(o.seconds for o in self.outcomes if start <= o.started < end)
        return round(1000 * latencies[math.ceil(0.99 * len(latencies)) - 1], 1)


def scale(stack: Stack, replicas: int) -> None:
    command = ["docker", "service", "scale", "--detach", f"{stack.service('demo-api')}={replicas}"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def settled_at(stack: Stack, replicas: int) -> None:
    """Until the replicas run and nginx sends requests to exactly them."""

    def look() -> tuple[int, frozenset[str], frozenset[str]]:
        return spec_replicas(stack), running_task_addresses(stack), upstream(stack)

    wait_until(
        f"{replicas} replicas running and in nginx",
        look,
        lambda seen: seen[0] == replicas and len(seen[1]) == replicas and seen[1] == seen[2],
        120,
    )


@pytest.fixture
def paused(stack: Stack) -> Iterator[Stack]:
    """The demo API at LOW replicas with the autoscaler keeping its hands off; resumed after."""
    label(stack, add={"autoscaler.paused": "true"})
    scale(stack, LOW)
    settled_at(stack, LOW)
    yield stack
    label(stack, remove=("autoscaler.paused",))
    scale(stack, LOW)
    settled_at(stack, LOW)


def summary(load: Load, steady: tuple[float, float], scaling: tuple[float, float]) -> dict[str, object]:
    return {
        "requests": len(load.outcomes),
        "failures": [f"{o.failure} after {o.seconds:.2f}s" for o in load.failures()],
        "p99_ms_steady": load.p99_ms(*steady),
        "p99_ms_scaling": load.p99_ms(*scaling),
    }


def report(**figures: object) -> None:
    keep(REPORT, **figures)


class TestZeroDrop:
    def test_ten_scale_cycles_under_get_and_post_load_fail_no_request(self, paused: Stack) -> None:
        """Ten scale-ups and scale-downs under GET and POST load fail no request."""
        stack = paused
        url = stack.entry + WORK
        with Load(url, GET_USERS) as gets, Load(url, POST_USERS, "POST") as posts:
            steady_start = time.monotonic()
            time.sleep(10)
            scaling_start = time.monotonic()
            for _ in range(CYCLES):
                scale(stack, HIGH)
                settled_at(stack, HIGH)
                scale(stack, LOW)
                settled_at(stack, LOW)
            scaling_end = time.monotonic()
            time.sleep(2)  # requests sent during the last change are answered
        steady, scaling = (steady_start, scaling_start), (scaling_start, scaling_end)
        report(
            cycles=CYCLES,
            scaling_seconds=round(scaling_end - scaling_start, 1),
            get=summary(gets, steady, scaling),
            post=summary(posts, steady, scaling),
        )
        assert len(gets.outcomes) > 0
        assert len(posts.outcomes) > 0
        assert gets.failures() == []
        assert posts.failures() == []

    def test_a_killed_task_fails_no_get(self, paused: Stack) -> None:
        """Every GET is routed around the killed task, save one it was writing the answer of.

        A task killed between writing an answer's header and its body leaves nginx with a
        header it has passed on already: it cannot retry, and closes the connection, as
        any proxy that streams answers must. Such a request was in flight at the kill, ends
        as a RemoteProtocolError, and there is at most one per user. Anything else (a 5xx,
        a refused connection, a timeout) is a routing failure, and there must be none.
        """
        stack = paused
        with Load(stack.entry + WORK, GET_USERS) as gets:
            time.sleep(3)
            (victim, *_) = stack.docker.containers.list(
                filters={"label": f"com.docker.swarm.service.name={stack.service('demo-api')}"}
            )
            killed_at = time.monotonic()
            victim.kill()
            wait_until(
                "the killed task replaced",
                lambda: running_task_addresses(stack),
                lambda running: (
                    len(running) == LOW and victim.id not in {c.id for c in stack.docker.containers.list()}
                ),
                120,
            )
            settled_at(stack, LOW)
            time.sleep(2)
        cut = [o for o in gets.failures() if o.failure == "RemoteProtocolError" and in_flight(o, killed_at)]
        routing = [o for o in gets.failures() if o not in cut]
        report(
            killed_task={
                "requests": len(gets.outcomes),
                "cut_while_written": len(cut),
                "routing_failures": [o.failure for o in routing],
            }
        )
        assert len(gets.outcomes) > 0
        assert routing == []
        assert len(cut) <= GET_USERS


def in_flight(outcome: Outcome, moment: float) -> bool:
    return outcome.started <= moment <= outcome.started + outcome.seconds


@dataclass(frozen=True)
class Answer:
    seconds: float
    status: int | None
    """None: no answer (the error says why)."""
    error: str | None = None
    retry_after: str | None = None


async def _open_loop(url: str, rate: float, seconds: float) -> list[Answer]:
    """GETs sent on schedule, ``rate`` a second, whether or not earlier ones were answered."""
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as client:

        async def one(due: float) -> Answer:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            sent = time.monotonic()
            try:
                response = await client.get(url)
            except httpx.HTTPError as error:
                return Answer(time.monotonic() - sent, None, type(error).__name__)
            return Answer(
                time.monotonic() - sent, response.status_code, None, response.headers.get("Retry-After")
            )

        start = time.monotonic() + 0.5
        return await asyncio.gather(*(one(start + index / rate) for index in range(round(rate * seconds))))


def open_loop(url: str, rate: float, seconds: float) -> list[Answer]:
    return asyncio.run(_open_loop(url, rate, seconds))


def entry_status(stack: Stack) -> dict[str, object]:
    status = httpx.get(stack.entry_metrics.replace("/metrics", "/nginx/status"), timeout=5).json()
    return dict(status["services"]["demo-api"])


def limit_of(stack: Stack) -> float | None:
    limit = entry_status(stack)["rate_limit"]
    return float(limit["requests_per_second"]) if isinstance(limit, dict) else None


def refused_so_far(stack: Stack) -> int:
    limit = entry_status(stack)["rate_limit"]
    return int(limit["refused"]) if isinstance(limit, dict) else 0


def milliseconds(answers: list[Answer], quantile: float) -> float | None:
    latencies = sorted(answer.seconds for answer in answers)
    return round(1000 * latencies[math.ceil(quantile * len(latencies)) - 1], 1) if latencies else None


@pytest.fixture
def limited(paused: Stack) -> Iterator[Stack]:
    """The demo API at LOW replicas, each able to serve REPLICA_RPS, and the entry point limiting it."""
    label(paused, add={"autoscaler.replica_rps": str(REPLICA_RPS)})
    wait_until(
        "the entry point's rate limit", lambda: limit_of(paused), lambda rate: rate == REPLICA_RPS * LOW, 60
    )
    yield paused
    label(paused, remove=("autoscaler.replica_rps",))
    wait_until("the rate limit lifted", lambda: entry_status(paused)["rate_limit"] is None, bool, 60)


class TestRateLimit:
    def test_above_the_limit_requests_are_refused_at_once_within_it_they_pass(self, limited: Stack) -> None:
        """Above the limit requests are refused at once; within it they all pass."""
        stack, url, seconds = limited, limited.entry + WORK, 10
        limit = REPLICA_RPS * LOW
        within = open_loop(url, limit / 3, seconds)
        refused_before = refused_so_far(stack)
        sending = time.monotonic()
        above = open_loop(url, limit * 3, seconds)
        sent_for = time.monotonic() - sending
        admitted = [answer for answer in above if answer.status == httpx.codes.OK]
        refused = [answer for answer in above if answer.status != httpx.codes.OK]
        report(
            rate_limit={
                "limit_rps": limit,
                "within": {"requests": len(within), "failures": sum(a.status != 200 for a in within)},
                "above": {
                    "requests": len(above),
                    "admitted": len(admitted),
                    "refused": len(refused),
                    "admitted_p99_ms": milliseconds(admitted, 0.99),
                    "refused_p50_ms": milliseconds(refused, 0.5),
                    "refused_p99_ms": milliseconds(refused, 0.99),
                },
            }
        )
        assert [answer for answer in within if answer.status != httpx.codes.OK] == []
        # Refused: a 503 from the limit itself (counted by it, no task tried), never a timeout.
        assert {(answer.status, answer.error) for answer in refused} == {(503, None)}
        assert all(answer.retry_after and int(answer.retry_after) >= 1 for answer in refused)
        assert refused_so_far(stack) - refused_before == len(refused)
        # Admitted: the limit's rate over the time the requests were sent, plus at most its burst.
        burst = limit  # RATE_LIMIT_BURST_SECONDS: one second's worth by default
        assert 0.8 * limit * seconds <= len(admitted) <= 1.1 * limit * sent_for + burst

    def test_the_limit_follows_the_replicas(self, limited: Stack) -> None:
        """The limit follows the replicas that run, up and down."""
        scale(limited, HIGH)
        settled_at(limited, HIGH)
        wait_until(
            "the limit at the new replicas", lambda: limit_of(limited), lambda r: r == REPLICA_RPS * HIGH, 30
        )
