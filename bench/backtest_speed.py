"""How long the backtest takes on the benchmark window, beside the replay loop's own cost.

    .venv/bin/python bench/backtest_speed.py [--trace PATH] [--repeat N]

The baseline replays the same window with a decision that holds the replicas: what the
loop, the observation model and the bookkeeping cost without the decision core. The
difference is the core's own cost per decision. Both are measured in this run, best of
``--repeat``, so a busy machine shows in both.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from autoscaler import core
from autoscaler.backtest.cli import ORDER, simulate
from autoscaler.backtest.replay import Model
from autoscaler.backtest.trace import read
from autoscaler.core import Decision, Observation, Policy, Reason, ServiceState

ROOT = Path(__file__).resolve().parents[1]
WINDOW = ("1998-06-22 00:00:00", "1998-07-06 00:00:00")
MODEL = Model(capacity=32000, provisioning_delay=60, check_interval=30)


def hold(observation: Observation, policy: Policy, state: ServiceState, now: float) -> Decision:
    replicas = observation.current_replicas
    return Decision(replicas, replicas, Reason(policy.algorithm, "none", "baseline"), state)


def best_of(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--trace", type=Path, default=ROOT.parent / "shared" / "traces" / "wc98_per_minute.csv"
    )
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()

    read_seconds = best_of(arguments.repeat, lambda: read(arguments.trace, *WINDOW))
    trace = read(arguments.trace, *WINDOW)
    decisions = int((trace.end - trace.start) // MODEL.check_interval) * len(ORDER)
    real = core.decide
    core.decide = hold  # type: ignore[assignment]
    try:
        baseline = best_of(arguments.repeat, lambda: simulate(trace, ORDER, MODEL, {}))
    finally:
        core.decide = real
    full = best_of(arguments.repeat, lambda: simulate(trace, ORDER, MODEL, {}))

    print(
        f"window {WINDOW[0]} .. {WINDOW[1]}, {len(ORDER)} algorithms, {decisions} decisions, "
        f"best of {arguments.repeat}"
    )
    print(f"{'phase':36} {'seconds':>8} {'µs/decision':>12}")
    print(f"{'read the trace (whole file)':36} {read_seconds:8.2f}")
    print(f"{'baseline: replay, decisions held':36} {baseline:8.2f} {1e6 * baseline / decisions:12.1f}")
    print(f"{'replay through the decision core':36} {full:8.2f} {1e6 * full / decisions:12.1f}")
    core_alone = full - baseline
    print(f"{'the decision core alone':36} {core_alone:8.2f} {1e6 * core_alone / decisions:12.1f}")
    print(f"{'total: read + replay':36} {read_seconds + full:8.2f}")


if __name__ == "__main__":
    main()
