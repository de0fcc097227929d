"""The replay clock label: its form, its checks, and the trace time it gives."""

from __future__ import annotations

import pytest

from autoscaler.backtest.trace import parse_time
from autoscaler.replay_clock import parse_replay_clock
from common.config import ConfigError

START = parse_time("1998-06-22 08:00:00")
WALL = 1_800_000_000.0


class TestReplayClock:
    def test_the_trace_time_runs_speedup_times_faster_from_the_replays_start(self):
        """30 s into a replay at 120 × the trace is an hour on from its window's start."""
        clock = parse_replay_clock(f"1998-06-22 08:00:00,1998-06-22 10:00:00,{WALL:.0f},120")
        assert clock.schedule_time(WALL) == START
        assert clock.schedule_time(WALL + 30) == START + 3600

    def test_before_and_after_the_replay_there_is_no_trace_time(self):
        """The label is inert outside the replay: two trace hours at 120 × last 60 s."""
        clock = parse_replay_clock(f"1998-06-22 08:00:00,1998-06-22 10:00:00,{WALL:.0f},120")
        assert clock.ends_at == WALL + 60
        assert clock.schedule_time(WALL - 1) is None
        assert clock.schedule_time(WALL + 60) is None

    @pytest.mark.parametrize(
        "value",
        [
            "1998-06-22 08:00:00,1800000000,120",
            "1998-06-22 08:00:00,1998-06-22 10:00:00,1800000000,120,1",
            "08:00,1998-06-22 10:00:00,1800000000,120",
            "1998-06-22 10:00:00,1998-06-22 08:00:00,1800000000,120",
            "1998-06-22 08:00:00,1998-06-22 10:00:00,soon,120",
            "1998-06-22 08:00:00,1998-06-22 10:00:00,1800000000,0",
            "1998-06-22 08:00:00,1998-06-22 10:00:00,1800000000,nan",
            "1998-06-22 08:00:00,1998-06-22 10:00:00,1800000000,inf",
            "1998-06-22 08:00:00,1998-06-22 10:00:00,-5,120",
            "1998-06-22 08:00:00,1998-06-22 10:00:00,99999999999,120",
        ],
    )
    def test_a_value_that_is_not_a_clock_names_the_label(self, value):
        """Wrong field count, a time not in the trace's form, an end before the start, a start or a
        speedup that is not a number in range: a ConfigError naming the label."""
        with pytest.raises(ConfigError) as raised:
            parse_replay_clock(value)
        assert raised.value.name == "autoscaler.replay_clock"
