"""Request-count traces: a CSV of ``timestamp,count`` with one row per step, gzipped or not."""

from __future__ import annotations

import csv
import gzip
import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class TraceError(ValueError):
    """A trace that cannot be read or a window outside it."""


@dataclass(frozen=True)
class Trace:
    start: float
    """Time of the first step, in seconds since the epoch (UTC)."""
    step: float
    """Seconds per step."""
    counts: list[float]
    """Requests in each step; a step missing from the file counts 0."""

    def timestamp(self, at: float) -> str:
        return datetime.fromtimestamp(at, UTC).strftime(TIME_FORMAT)

    def count_at(self, at: float) -> float:
        """Requests in the step that contains time ``at``."""
        return self.counts[int((at - self.start) // self.step)]

    @property
    def end(self) -> float:
        return self.start + self.step * len(self.counts)


def parse_time(text: str) -> float:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, in seconds since the epoch."""
    try:
        # fromisoformat reads this form many times faster than strptime: it matters on long traces.
        return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise TraceError(f"time {text!r} is not in the form YYYY-MM-DD HH:MM:SS") from None


def from_rows(rows: Iterable[tuple[str, str]], start: str | None = None, end: str | None = None) -> Trace:
    """A trace from (timestamp, count) rows, cut to [start, end), with missing steps as 0."""
    points = sorted((parse_time(time), float(count)) for time, count in rows)
    if len(points) < 2:
        raise TraceError("a trace needs at least two rows")
    # The step is the most common spacing; a gap longer than it is missing steps.
    step = Counter(b[0] - a[0] for a, b in itertools.pairwise(points)).most_common(1)[0][0]
    first = parse_time(start) if start else points[0][0]
    last = parse_time(end) if end else points[-1][0] + step
    if first >= last:
        raise TraceError("--start must come before --end")
    if first < points[0][0] or last > points[-1][0] + step:
        raise TraceError("the window reaches outside the trace")
    steps = round((last - first) / step)
    counts = [0.0] * steps
    for at, count in points:
        index = round((at - first) / step)
        if 0 <= index < steps:
            counts[index] = count
    return Trace(start=first, step=step, counts=counts)


def read(path: Path, start: str | None = None, end: str | None = None) -> Trace:
    """The trace in a CSV file; one whose name ends in ``.gz`` is read through gzip."""
    with gzip.open(path, "rt", newline="") if path.suffix == ".gz" else path.open(newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None:
            raise TraceError(f"{path} is empty")
        rows = [(row[0], row[1]) for row in reader if len(row) >= 2]
        if header[1:2] and header[1].strip().replace(".", "", 1).isdigit():
            rows.insert(0, (header[0], header[1]))  # no header line: the first row is data
    return from_rows(rows, start, end)
