"""What a run leaves: its summary, one row per second, and a picture of both (``--out DIR``)."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtest.profiles import ReplicaSample
from loadtest.senders import Outcome, succeeded

PER_SECOND_FILE, SUMMARY_FILE, PLOT_FILE = "per_second.csv", "summary.json", "load.png"


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Summary:
    requests: int
    errors: int
    duration_seconds: float
    requests_per_second: float
    latency_ms: dict[str, float]
    statuses: dict[str, int]


def summarize(outcomes: Sequence[Outcome], duration: float) -> Summary:
    latencies = sorted(o.latency * 1000 for o in outcomes)
    statuses = Counter(o.status for o in outcomes)
    return Summary(
        requests=len(outcomes),
        errors=sum(count for status, count in statuses.items() if not succeeded(status)),
        duration_seconds=round(duration, 3),
        requests_per_second=round(len(outcomes) / duration, 2) if duration > 0 else 0.0,
        latency_ms={
            name: round(percentile(latencies, fraction), 2)
            for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        },
        statuses=dict(sorted(statuses.items())),
    )


@dataclass(frozen=True)
class Second:
    """The requests sent in one second of the run, and the replicas at its end."""

    second: int
    scheduled: float | None
    """Open loop: the requests per second the schedule asked for; None in closed loop."""
    sent: int
    ok: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    replicas: int | None
    """The replicas running and healthy."""
    desired_replicas: int | None
    """The replicas the autoscaler set."""


def per_second(
    outcomes: Sequence[Outcome],
    seconds: int,
    replicas: Sequence[ReplicaSample],
    scheduled: Callable[[float], float] | None = None,
) -> list[Second]:
    """One row for each of the run's first ``seconds`` seconds, by when requests were sent."""
    latencies: dict[int, list[float]] = defaultdict(list)
    failed: Counter[int] = Counter()
    for outcome in outcomes:
        second = math.floor(outcome.sent_at)
        latencies[second].append(outcome.latency * 1000)
        failed[second] += not succeeded(outcome.status)
    rows, index, latest = [], 0, None
    for second in range(seconds):
        while index < len(replicas) and replicas[index].elapsed < second + 1:
            latest, index = replicas[index], index + 1
        values = sorted(latencies.get(second, []))

        def at(fraction: float, values: list[float] = values) -> float | None:
            return round(percentile(values, fraction), 2) if values else None

        rows.append(
            Second(
                second=second,
                scheduled=None if scheduled is None else round(scheduled(second + 0.5), 3),
                sent=len(values),
                ok=len(values) - failed[second],
                errors=failed[second],
                p50_ms=at(0.50),
                p95_ms=at(0.95),
                p99_ms=at(0.99),
                replicas=latest.ready if latest else None,
                desired_replicas=latest.desired if latest else None,
            )
        )
    return rows


SLOW_P95_MS = 1000.0
"""A second whose requests' p95 is above this was served badly: the autoscaler's default latency threshold."""


@dataclass(frozen=True)
class SlowSeconds:
    """The seconds of a run in which users were served badly."""

    count: int
    """Seconds whose requests' p95 latency was above ``SLOW_P95_MS``."""
    first: int | None
    """The first such second from the start of the run; None if there was none."""
    last: int | None


def slow_seconds(rows: Sequence[Second], threshold_ms: float = SLOW_P95_MS) -> SlowSeconds:
    """How many seconds' requests had a p95 above the threshold, and the first and last of them."""
    slow = [row.second for row in rows if row.p95_ms is not None and row.p95_ms > threshold_ms]
    return SlowSeconds(len(slow), slow[0] if slow else None, slow[-1] if slow else None)


def write_per_second(path: Path, rows: Sequence[Second]) -> None:
    fields = list(Second.__dataclass_fields__)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(fields)
        for row in rows:
            writer.writerow("" if value is None else value for value in asdict(row).values())


def write_summary(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n")


def plot(path: Path, rows: Sequence[Second], title: str) -> None:
    """Load, latency and replicas on one time axis."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 - an optional extra, imported only when asked for

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415 - as above
        from matplotlib import ticker  # noqa: PLC0415 - as above
    except ImportError:
        raise SystemExit("a picture needs matplotlib: pip install 'swarm-autoscaler[plot]'") from None

    def column(name: str) -> list[float]:
        return [math.nan if getattr(row, name) is None else float(getattr(row, name)) for row in rows]

    seconds = column("second")
    figure, (load, latency, replicas) = plt.subplots(3, 1, figsize=(12, 7.5), sharex=True)
    if any(row.scheduled is not None for row in rows):
        load.plot(seconds, column("scheduled"), color="tab:gray", linewidth=0.8, label="scheduled")
    load.plot(seconds, column("sent"), color="tab:blue", linewidth=0.8, label="sent")
    load.plot(seconds, column("errors"), color="tab:red", linewidth=0.8, label="errors")
    load.set_ylabel("requests / s")
    load.legend(loc="upper left", fontsize="small")
    load.set_title(title)
    # Drawn from the highest down, so that a percentile equal to the one above it still shows.
    for name, color in (("p99_ms", "tab:red"), ("p95_ms", "tab:orange"), ("p50_ms", "tab:green")):
        latency.plot(seconds, column(name), color=color, linewidth=0.8, label=name.removesuffix("_ms"))
    latency.set_yscale("log")
    latency.yaxis.set_major_formatter(ticker.ScalarFormatter())
    latency.yaxis.set_minor_formatter(ticker.NullFormatter())
    latency.set_ylabel("latency (ms), per second")
    latency.legend(loc="upper left", fontsize="small")
    ready, desired = column("replicas"), column("desired_replicas")
    replicas.step(seconds, ready, where="post", color="tab:blue", linewidth=2.5, label="ready")
    replicas.step(seconds, desired, where="post", color="black", linestyle="--", label="set")
    replicas.set_ylim(bottom=0, top=max([1.0, *(n for n in ready + desired if not math.isnan(n))]) + 1)
    replicas.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    replicas.set_ylabel("replicas")
    replicas.set_xlabel("seconds")
    replicas.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
