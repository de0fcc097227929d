"""``python -m autoscaler simulate``: what each algorithm would have done on a real trace."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoscaler.backtest.elasticity import Elasticity, elastic_speedup, elasticity
from autoscaler.backtest.replay import Model, Replay, replay, static_supply
from autoscaler.backtest.trace import Trace, TraceError, read
from autoscaler.core.algorithms import ALGORITHMS
from autoscaler.policy import parse_policy, policy_environment
from autoscaler.policy_file import Applied, PolicyFileError
from autoscaler.policy_source import read_policy_file
from common.config import ConfigError
from common.lifecycle import CONFIG_ERROR_EXIT

ORDER = ("linear", "exponential", "target", "predictive")


@dataclass(frozen=True)
class Result:
    replay: Replay
    scores: Elasticity
    speedup: float
    replica_minutes: float

    def as_json(self) -> dict[str, Any]:
        scores = self.scores
        return {
            "algorithm": self.replay.algorithm,
            "under_provisioning_accuracy_pct": round(scores.under_accuracy, 4),
            "over_provisioning_accuracy_pct": round(scores.over_accuracy, 4),
            "under_provisioning_timeshare_pct": round(scores.under_timeshare, 4),
            "over_provisioning_timeshare_pct": round(scores.over_timeshare, 4),
            "jitter_per_min": round(scores.jitter_per_min, 6),
            "instability_pct": round(scores.instability, 4),
            "elastic_speedup": round(self.speedup, 4),
            "replica_minutes": round(self.replica_minutes, 1),
            "unserved_requests": round(self.replay.unserved_requests),
            "scale_events": self.replay.scale_events,
        }


def simulate(
    trace: Trace,
    algorithms: Sequence[str],
    model: Model,
    environ: Mapping[str, str],
    applied: Applied | None = None,
) -> list[Result]:
    """Replay ``trace`` for each algorithm, with the daemon's policy variables from ``environ``.

    The model observes CPU only, so every algorithm is scaled on CPU; the check
    interval is the model's, and the replica start-up time defaults to its
    provisioning delay. ``applied``: a policy file's settings and schedules for the service.
    """
    applied = applied or Applied()
    results = []
    for algorithm in algorithms:
        variables = {
            "REPLICA_STARTUP_TIME": f"{model.provisioning_delay:g}",
            **environ,
            **applied.settings,
            "SCALING_ALGORITHM": algorithm,
            "SCALING_METRICS": "cpu",
            "CHECK_INTERVAL": f"{model.check_interval:g}",
        }
        outcome = replay(trace, parse_policy(variables), model, applied.schedules)
        scores = outcome.elasticity(model.check_interval)
        static = elasticity(outcome.demand, static_supply(outcome.demand), model.check_interval)
        results.append(
            Result(
                outcome,
                scores,
                elastic_speedup(scores, static),
                outcome.replica_minutes(model.check_interval),
            )
        )
    return results


def table(results: Sequence[Result]) -> str:
    header = (
        "algorithm",
        "θ_U %",
        "θ_O %",
        "τ_U %",
        "τ_O %",
        "jitter/min",
        "instab. %",
        "speedup",
        "replica-min",
        "unserved",
        "events",
    )
    rows = [header]
    for result in results:
        s = result.scores
        rows.append(
            (
                result.replay.algorithm,
                f"{s.under_accuracy:.2f}",
                f"{s.over_accuracy:.2f}",
                f"{s.under_timeshare:.2f}",
                f"{s.over_timeshare:.2f}",
                f"{s.jitter_per_min:.4f}",
                f"{s.instability:.2f}",
                f"{result.speedup:.2f}",
                f"{result.replica_minutes:.0f}",
                f"{result.replay.unserved_requests:.0f}",
                str(result.replay.scale_events),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def write_series(path: Path, trace: Trace, results: Sequence[Result]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["algorithm", "timestamp", "load", "demand", "supply"])
        for result in results:
            r = result.replay
            for at, load, demand, supply in zip(r.times, r.load, r.demand, r.supply, strict=True):
                writer.writerow([r.algorithm, trace.timestamp(at), f"{load:g}", demand, supply])


def plot(path: Path, results: Sequence[Result]) -> None:
    try:
        import matplotlib as mpl  # noqa: PLC0415 - an optional extra, imported only when asked for

        mpl.use("Agg")
        import matplotlib.dates as mdates  # noqa: PLC0415 - as above
        import matplotlib.pyplot as plt  # noqa: PLC0415 - as above
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'swarm-autoscaler[plot]'") from None
    from datetime import UTC, datetime  # noqa: PLC0415 - only the plot needs dates

    figure, axes = plt.subplots(len(results) + 1, 1, figsize=(14, 2.6 * (len(results) + 1)), sharex=True)
    first = results[0].replay
    dates = [datetime.fromtimestamp(at, UTC) for at in first.times]
    axes[0].plot(dates, first.load, linewidth=0.5, color="tab:gray")
    axes[0].set_ylabel("requests / step")
    axes[0].set_title("load")
    for axis, result in zip(axes[1:], results, strict=False):
        r = result.replay
        axis.step(dates, r.demand, where="post", linewidth=0.6, color="black", label="demand")
        axis.step(dates, r.supply, where="post", linewidth=0.6, color="tab:blue", label="supply")
        axis.set_ylabel("replicas")
        axis.set_title(
            f"{r.algorithm}: τ_U {result.scores.under_timeshare:.2f} %, "
            f"{result.replica_minutes:.0f} replica-minutes"
        )
        axis.legend(loc="upper left", fontsize="small")
    # Hours matter on a window of a day or two; dates on a longer one.
    short = first.times[-1] - first.times[0] <= 2 * 86400
    date_format = mdates.DateFormatter("%m-%d %H:%M" if short else "%m-%d")  # type: ignore[no-untyped-call]
    axes[-1].xaxis.set_major_formatter(date_format)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m autoscaler simulate", description=__doc__)
    parser.add_argument("--trace", type=Path, required=True, help="CSV of timestamp,count per step")
    parser.add_argument("--start", help="first step, as in the file (YYYY-MM-DD HH:MM:SS)")
    parser.add_argument("--end", help="end of the window (exclusive), as in the file")
    parser.add_argument(
        "--capacity",
        type=float,
        required=True,
        help="requests one replica serves per trace step at 100%% CPU",
    )
    parser.add_argument(
        "--provisioning-delay",
        type=float,
        default=60.0,
        help="seconds until a new replica serves (default %(default)s)",
    )
    parser.add_argument(
        "--check-interval", type=float, default=30.0, help="seconds between decisions (default %(default)s)"
    )
    parser.add_argument("--algorithm", default="all", choices=[*ORDER, "all"], help="default %(default)s")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per algorithm")
    parser.add_argument(
        "--series-out", type=Path, help="CSV: algorithm,timestamp,load,demand,supply per check step"
    )
    parser.add_argument("--plot", type=Path, help="PNG of the load, the demand and every algorithm's supply")
    parser.add_argument(
        "--policy-file", type=Path, help="a policy file (POLICY_FILE): its entries for --service apply"
    )
    parser.add_argument(
        "--service", default="simulated", help="the service's name in the policy file (default %(default)s)"
    )
    arguments = parser.parse_args(argv)
    if arguments.capacity <= 0 or arguments.check_interval <= 0 or arguments.provisioning_delay < 0:
        parser.error("--capacity and --check-interval must be positive, --provisioning-delay not negative")
    return arguments


def main(argv: Sequence[str]) -> None:
    arguments = parse_arguments(argv)
    algorithms = ORDER if arguments.algorithm == "all" else (arguments.algorithm,)
    assert set(algorithms) <= set(ALGORITHMS)  # noqa: S101 - ORDER lists the core's algorithms
    model = Model(arguments.capacity, arguments.provisioning_delay, arguments.check_interval)
    try:
        trace = read(arguments.trace, arguments.start, arguments.end)
        applied = None
        if arguments.policy_file:
            entries = read_policy_file(arguments.policy_file, policy_environment(os.environ))
            applied = entries.for_service(arguments.service, {})
        results = simulate(trace, algorithms, model, os.environ, applied)
    except PolicyFileError as error:
        sys.stderr.write(f"invalid configuration: --policy-file {arguments.policy_file}: {error}\n")
        sys.exit(CONFIG_ERROR_EXIT)
    except (TraceError, OSError) as error:
        sys.exit(f"error: {error}")
    except ConfigError as error:
        sys.stderr.write(f"invalid configuration: {error}\n")
        sys.exit(CONFIG_ERROR_EXIT)
    if arguments.series_out:
        write_series(arguments.series_out, trace, results)
    if arguments.plot:
        plot(arguments.plot, results)
    if arguments.json:
        sys.stdout.write(json.dumps([result.as_json() for result in results], indent=2) + "\n")
    else:
        sys.stdout.write(table(results) + "\n")
