"""The clock a service's schedules read while a trace is replayed against it: the trace's own.

``./stress-test.sh --replay`` labels the service it loads with ``autoscaler.replay_clock``:
the replayed window of the trace, when the replay began and how many times it compresses
time. While the replay runs, the service's schedules are read at the trace's time, so a
``9:00`` schedule starts when the replay reaches 9:00 in the trace, and lasts its duration
compressed as the trace is. Before the replay and after its end the label is inert and
the wall clock applies, so a label left behind by a replay that was killed does no harm.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.backtest.trace import TraceError, parse_time
from autoscaler.labels import REPLAY_CLOCK_LABEL
from common.config import ConfigError, parse_float

MOST_SPEEDUP = 1_000_000.0
"""Highest time compression accepted."""
LATEST_START = 4_102_444_800.0
"""2100-01-01 UTC: the latest wall time a replay may begin at, in seconds since the epoch."""
FORM = "TRACE_START,TRACE_END,STARTED_AT,SPEEDUP"
"""The label's value: two times as the trace writes them (UTC), seconds since the epoch, a factor."""


@dataclass(frozen=True)
class ReplayClock:
    trace_start: float
    """The replayed window's first moment in the trace, in seconds since the epoch."""
    trace_end: float
    started_at: float
    """When the replay began on the wall clock, in seconds since the epoch."""
    speedup: float
    """Seconds of trace per second of replay."""

    @property
    def ends_at(self) -> float:
        """When the replay ends on the wall clock."""
        return self.started_at + (self.trace_end - self.trace_start) / self.speedup

    def schedule_time(self, now: float) -> float | None:
        """The trace's time at ``now`` while the replay runs; None before and after it."""
        if not self.started_at <= now < self.ends_at:
            return None
        return self.trace_start + (now - self.started_at) * self.speedup


def parse_replay_clock(value: str) -> ReplayClock:
    """The label's clock; a ConfigError naming the label when the value cannot be one."""
    fields = value.split(",")
    if len(fields) != len(FORM.split(",")):
        raise ConfigError(REPLAY_CLOCK_LABEL, value, f"expected {FORM}")
    start_text, end_text, started_text, speedup_text = (part.strip() for part in fields)
    try:
        trace_start, trace_end = parse_time(start_text), parse_time(end_text)
    except TraceError as error:
        raise ConfigError(REPLAY_CLOCK_LABEL, value, str(error)) from None
    if not trace_start < trace_end:
        raise ConfigError(REPLAY_CLOCK_LABEL, value, "the trace's end must come after its start")
    started_at = parse_float(REPLAY_CLOCK_LABEL, started_text, minimum=0.0, maximum=LATEST_START)
    speedup = parse_float(REPLAY_CLOCK_LABEL, speedup_text, minimum=1e-6, maximum=MOST_SPEEDUP)
    return ReplayClock(trace_start, trace_end, started_at, speedup)
