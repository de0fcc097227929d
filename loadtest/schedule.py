"""A request-rate trace turned into send times: the arrival schedule of ``--replay``.

The trace is the one the backtest reads (``timestamp,count`` per step). Time is
compressed by ``speedup`` and the counts scaled so that the window's busiest step is
sent at ``peak_rps``. Within a step requests are spaced evenly at that step's rate;
the fraction of a request left at a step's end is carried into the next step, so the
number sent before any moment is the integral of the rate up to it, rounded up.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from autoscaler.backtest.trace import Trace, TraceError

MOST_RPS = 10_000.0
"""Highest peak rate accepted, in requests per second."""


@dataclass(frozen=True)
class Replay:
    step_seconds: float
    """Seconds of replay per trace step."""
    rates: tuple[float, ...]
    """Requests per second to send in each step."""

    @property
    def duration(self) -> float:
        """Seconds the replay lasts."""
        return self.step_seconds * len(self.rates)

    def rate_at(self, elapsed: float) -> float:
        """The rate to send at ``elapsed`` seconds from the start; 0 outside the replay."""
        index = math.floor(elapsed / self.step_seconds)
        return self.rates[index] if 0 <= index < len(self.rates) else 0.0

    def total(self) -> int:
        """Requests the whole replay sends."""
        return math.ceil(sum(rate * self.step_seconds for rate in self.rates) - 1e-9)


def replay_of(trace: Trace, speedup: float, peak_rps: float) -> Replay:
    """The trace compressed ``speedup`` times, its busiest step sent at ``peak_rps``."""
    if not (math.isfinite(speedup) and speedup > 0):
        raise TraceError(f"--speedup must be a positive number, not {speedup}")
    if not (math.isfinite(peak_rps) and 0 < peak_rps <= MOST_RPS):
        raise TraceError(f"--peak-rps must be in (0, {MOST_RPS:g}], not {peak_rps}")
    peak = max(trace.counts)
    if peak <= 0:
        raise TraceError("the window has no requests")
    return Replay(
        step_seconds=trace.step / speedup,
        rates=tuple(count / peak * peak_rps for count in trace.counts),
    )


def arrival_times(replay: Replay) -> Iterator[float]:
    """When to send each request, in seconds from the start, in order.

    Request j (from 0) is sent when the integral of the rate reaches j: a second at
    rate r sends r requests, the first at its start.
    """
    sent_by = 0.0  # the integral of the rate up to the current step's start
    for index, rate in enumerate(replay.rates):
        start = index * replay.step_seconds
        sent_by_end = sent_by + rate * replay.step_seconds
        j = math.ceil(sent_by - 1e-9)
        while j < sent_by_end - 1e-9:
            yield start + max(0.0, j - sent_by) / rate
            j += 1
        sent_by = sent_by_end
