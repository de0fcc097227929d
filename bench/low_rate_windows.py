"""predictive against target on the trace's low-rate weeks and on the benchmark window.

    .venv/bin/python bench/low_rate_windows.py [--trace PATH]

A low-rate week: every week of the trace from Monday 1998-05-04, at the capacity at which
its busiest minute needs PEAK_REPLICAS replicas at the 70 % CPU target, whose median
minute needs 1 or 2 replicas. These run with MIN_REPLICAS=1, so that a median of one
replica can be reached; every other setting is at its default. The benchmark window runs
as in docs/benchmark.md (its own capacity, MIN_REPLICAS=2).

target is the baseline, replayed in the same run on the same window. The goals it prints
against: predictive's under-provisioning timeshare (τ_U) at most half of target's, at
most 1.10 × its replica-minutes, and no more scale events; on the benchmark window, τ_U at
most a tenth of target's at most 1.05 × its replica-minutes.
"""

from __future__ import annotations

import argparse
import math
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from autoscaler.backtest.cli import Result, simulate
from autoscaler.backtest.replay import Model, demand_for
from autoscaler.backtest.trace import TIME_FORMAT, Trace, read
from autoscaler.policy import parse_policy

ROOT = Path(__file__).resolve().parents[1]
PEAK_REPLICAS = 7
DEFAULTS = parse_policy({})
"""The default policy, whose CPU target (70 %) the demand is counted at, as the backtest counts it."""
FIRST_MONDAY = datetime(1998, 5, 4, tzinfo=UTC)
WEEK = timedelta(days=7)
BENCHMARK = ("1998-06-22 00:00:00", "1998-07-06 00:00:00", 32000.0)


def model_of(capacity: float) -> Model:
    """The backtest's model at the default provisioning delay (60 s) and check interval (30 s)."""
    return Model(capacity=capacity, provisioning_delay=60, check_interval=30)


@dataclass(frozen=True)
class Window:
    start: str
    end: str
    capacity: float
    environ: dict[str, str]
    low_rate: bool


def low_rate_weeks(trace: Trace) -> list[Window]:
    """The weeks whose median minute needs 1 or 2 replicas when the busiest needs PEAK_REPLICAS."""
    weeks = []
    start = FIRST_MONDAY
    while (start + WEEK).timestamp() <= trace.end:
        first = int((start.timestamp() - trace.start) // trace.step)
        counts = trace.counts[first : first + int(WEEK.total_seconds() // trace.step)]
        capacity = round(max(counts) / (PEAK_REPLICAS * DEFAULTS.thresholds.cpu.up / 100))
        model = model_of(capacity)
        if 1 <= statistics.median(demand_for(count, model, DEFAULTS) for count in counts) <= 2:
            weeks.append(
                Window(
                    start.strftime(TIME_FORMAT),
                    (start + WEEK).strftime(TIME_FORMAT),
                    capacity,
                    {"MIN_REPLICAS": "1"},
                    low_rate=True,
                )
            )
        start += WEEK
    return weeks


def row(window: Window, target: Result, predictive: Result) -> str:
    under_target = target.scores.under_timeshare
    under_predictive = predictive.scores.under_timeshare
    ratio = under_predictive / under_target if under_target > 0 else math.nan
    cost = predictive.replica_minutes / target.replica_minutes
    events = (target.replay.scale_events, predictive.replay.scale_events)
    if window.low_rate:
        met = [ratio <= 0.5, cost <= 1.10, events[1] <= events[0]]
    else:
        met = [ratio <= 0.1, cost <= 1.05]
    verdict = (
        "all"
        if all(met)
        else "not "
        + ", ".join(name for name, ok in zip(("τ_U", "cost", "events"), met, strict=False) if not ok)
    )
    return (
        f"| {window.start[:10]} \N{EN DASH} {window.end[5:10]} | {window.capacity:,.0f} | {under_target:.3f} "
        f"| {under_predictive:.3f} | {ratio:.3f} | {cost:.3f} | {events[0]} / {events[1]} | {verdict} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", type=Path, default=ROOT / "traces" / "wc98_per_minute.csv.gz")
    arguments = parser.parse_args()

    whole = read(arguments.trace)
    windows = [*low_rate_weeks(whole), Window(*BENCHMARK, environ={}, low_rate=False)]
    print(
        "| window | capacity | τ_U target % | τ_U predictive % | ratio | replica-minutes "
        "predictive / target | scale events target / predictive | goals met |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for window in windows:
        trace = read(arguments.trace, window.start, window.end)
        model = model_of(window.capacity)
        target, predictive = simulate(trace, ("target", "predictive"), model, window.environ)
        print(row(window, target, predictive), flush=True)


if __name__ == "__main__":
    main()
