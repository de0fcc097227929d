"""Who sends the requests: closed-loop users, or an open-loop schedule.

Closed loop: each user sends a request, waits for its answer, thinks, and sends the
next, so an overloaded service slows the users down. Open loop: requests leave on
schedule whether or not earlier ones answered, so overload shows as latency and
errors; when the generator itself falls behind its schedule, that is counted.

Both take the request to send and a clock, so that a test can run them on a fake one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

Send = Callable[[], Awaitable[str]]
"""Sends one request and returns its HTTP status code, or the name of the error when none came."""


def succeeded(status: str) -> bool:
    """A 2xx or 3xx answer; anything else, an error status or no answer, is an error."""
    return status.startswith(("2", "3"))


LATE_SECONDS = 0.1
"""An open-loop request sent later than this after its time counts as late."""


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic clock."""

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Outcome:
    latency: float
    """Seconds from sending the request to the end of the response."""
    status: str
    """The HTTP status code, or the name of the error when none came."""
    finished_at: float = 0.0
    """When the response ended (or the request failed), in seconds since the epoch."""
    sent_at: float = 0.0
    """When the request was sent, in seconds from the start of the run."""


@dataclass
class Run:
    """What a run has sent so far; read while it runs by the live line."""

    clock: Clock
    started: float
    outcomes: list[Outcome] = field(default_factory=list)
    in_flight: int = 0
    late: int = 0
    """Open loop: requests sent more than LATE_SECONDS after their time."""
    most_behind: float = 0.0
    """Open loop: the most seconds a request was sent after its time."""
    not_sent: int = 0
    """Open loop: requests not sent because ``max_in_flight`` were still unanswered."""
    errors: int = 0
    """Outcomes so far that did not succeed."""

    def elapsed(self) -> float:
        return self.clock.now() - self.started

    def start(self) -> float:
        """Count a request in flight from now; returns when it was sent."""
        self.in_flight += 1
        return self.elapsed()

    async def complete(self, send: Send, sent_at: float) -> None:
        try:
            status = await send()
        finally:
            self.in_flight -= 1
        self.record(Outcome(self.elapsed() - sent_at, status, time.time(), sent_at))

    def record(self, outcome: Outcome) -> None:
        """Keep an outcome; outcomes are kept in the order they ended."""
        self.outcomes.append(outcome)
        self.errors += not succeeded(outcome.status)

    async def send(self, send: Send) -> None:
        await self.complete(send, self.start())


@dataclass(frozen=True)
class Users:
    """Closed-loop users: how many, for how long, how they pause and start."""

    count: int
    duration: float
    """Seconds of load."""
    think_time: float = 0.0
    """A user's mean seconds between an answer and its next request (uniformly ½ to 1½ times it)."""
    ramp_up: float = 0.0
    """Seconds over which the users start: user i at ramp_up × i / count."""


async def closed_loop(
    run: Run, send: Send, users: Users, *, max_requests: int, rng: random.Random | None = None
) -> None:
    """The users until their duration is over or ``max_requests`` requests were sent."""
    chance = rng or random.Random()  # noqa: S311 - think times need no cryptographic randomness

    async def user(index: int) -> None:
        await run.clock.sleep(users.ramp_up * index / users.count)
        while run.elapsed() < users.duration and len(run.outcomes) + run.in_flight < max_requests:
            await run.send(send)
            if users.think_time > 0:
                left = users.duration - run.elapsed()
                await run.clock.sleep(min(left, users.think_time * chance.uniform(0.5, 1.5)))

    await asyncio.gather(*(user(index) for index in range(users.count)))


async def open_loop(run: Run, send: Send, times: Iterable[float], *, max_in_flight: int) -> None:
    """One request at each of ``times`` (seconds from the start, ascending), answered or not."""
    pending: set[asyncio.Task[None]] = set()
    for due in times:
        wait = due - run.elapsed()
        if wait > 0:
            await run.clock.sleep(wait)
        behind = run.elapsed() - due
        run.most_behind = max(run.most_behind, behind)
        if behind > LATE_SECONDS:
            run.late += 1
        if run.in_flight >= max_in_flight:
            run.not_sent += 1
            continue
        task = asyncio.create_task(run.complete(send, run.start()))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
