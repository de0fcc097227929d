"""Requests seen by the entry point: its counters, and what they say over a window. Pure.

Every entry point instance (nginx) keeps cumulative counters per service since it
started: a histogram of request durations and the requests by status code. A window's
figures are the difference of two readings of one instance; instances are merged by
adding their differences, which is why latency is kept as a histogram and never as a
percentile (percentiles of two instances cannot be combined, bucket counts can). A
percentile is then read from the merged buckets as Prometheus' ``histogram_quantile``
does: by linear interpolation inside the bucket that holds it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

DURATION = "entrypoint_request_duration_seconds"
"""Histogram of the time from a request's first byte read to its last byte sent, in seconds."""
REQUESTS = "entrypoint_requests"
"""Counter of the requests answered, by service and status code."""
IN_FLIGHT_SECONDS = "entrypoint_requests_in_flight_seconds"
"""Counter of request-seconds in flight: its increase over a window, divided by the window, is concurrency."""
REPORTED_QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
"""The latency percentiles /status and /metrics show, by name."""
SERVER_ERROR = 500
"""Status codes from this one up count as errors: the service's or the entry point's, not the client's."""


def _either_none(a: float | None, b: float | None, combine: Callable[[float, float], float]) -> float | None:
    """``combine(a, b)``, or None when either is unknown: a part left out would understate the whole."""
    return None if a is None or b is None else combine(a, b)


@dataclass(frozen=True)
class Counters:
    """Counts of one service's requests: cumulative since an instance started, or over a window."""

    edges: tuple[float, ...]
    """Upper edges of the duration buckets in seconds, ascending, the last one infinite."""
    cumulative: tuple[float, ...]
    """Requests that took at most each edge."""
    requests: float
    errors: float
    """Requests answered with a status code of 500 or more."""
    in_flight_seconds: float | None = None
    """Request-seconds spent in flight; None from an entry point that does not count them."""

    def _totals(self) -> tuple[float, ...]:
        return (*self.cumulative, self.requests, self.errors, self.in_flight_seconds or 0.0)

    def minus(self, older: Counters) -> Counters:
        """What was counted since ``older``; all of this if the instance restarted in between."""
        if older.edges != self.edges or any(
            new < old for new, old in zip(self._totals(), older._totals(), strict=True)
        ):
            return self
        return Counters(
            self.edges,
            tuple(new - old for new, old in zip(self.cumulative, older.cumulative, strict=True)),
            self.requests - older.requests,
            self.errors - older.errors,
            _either_none(self.in_flight_seconds, older.in_flight_seconds, lambda a, b: a - b),
        )

    def plus(self, other: Counters) -> Counters:
        """Both counts added; the buckets must be the same."""
        return Counters(
            self.edges,
            tuple(a + b for a, b in zip(self.cumulative, other.cumulative, strict=True)),
            self.requests + other.requests,
            self.errors + other.errors,
            _either_none(self.in_flight_seconds, other.in_flight_seconds, lambda a, b: a + b),
        )

    def quantile(self, q: float) -> float | None:
        """The duration in seconds below which a fraction ``q`` of the requests took; None with none."""
        total = self.cumulative[-1]
        if total <= 0:
            return None
        rank = q * total
        lower, below = 0.0, 0.0
        for edge, count in zip(self.edges, self.cumulative, strict=True):
            if count >= rank:
                if math.isinf(edge):
                    # Beyond the last finite edge nothing is known but that edge.
                    return lower
                inside = count - below
                return lower + (edge - lower) * ((rank - below) / inside if inside > 0 else 1.0)
            lower, below = edge, count
        return lower


@dataclass(frozen=True)
class Reading:
    """One instance's counters of every service it proxies, and the services it could not report."""

    services: dict[str, Counters]
    malformed: dict[str, str] = field(default_factory=dict)
    """Service: what was wrong with its counters (they are left out)."""


@dataclass(frozen=True)
class Window:
    """One service's requests over a window, merged over every entry point instance."""

    counters: Counters
    rate: float
    """Requests per second: the sum of every instance's count divided by its own window's length."""
    seconds: float
    """The longest of the instances' windows, in seconds."""
    concurrency: float | None = None
    """Mean requests in flight, all instances together (each one's request-seconds over its own window)."""

    @property
    def error_percent(self) -> float | None:
        return 100 * self.counters.errors / self.counters.requests if self.counters.requests > 0 else None

    def latency_ms(self, q: float) -> float | None:
        seconds = self.counters.quantile(q)
        return None if seconds is None else 1000 * seconds


History = Sequence[tuple[float, Reading]]
"""(time read, reading) of one instance, oldest first."""


def since(history: History, now: float, seconds: float) -> dict[str, tuple[Counters, float]]:
    """Per service, what one instance counted over the last ``seconds`` and over how long.

    The window runs from the newest reading at least ``seconds`` old (the oldest one, if
    the instance has not been read that long) to the newest reading. A service that
    first appears within the window counts from zero.
    """
    if not history:
        return {}
    newest_at, newest = history[-1]
    start_at, start = history[0]
    for at, reading in history:
        if at <= now - seconds:
            start_at, start = at, reading
    if start_at >= newest_at:
        return {}
    return _between(start, newest, newest_at - start_at)


def _between(start: Reading, newest: Reading, span: float) -> dict[str, tuple[Counters, float]]:
    """Per service, what was counted from ``start`` to ``newest``; a service new since counts from zero."""
    return {
        service: (counters.minus(start.services[service]) if service in start.services else counters, span)
        for service, counters in newest.services.items()
    }


def merged(instances: Iterable[dict[str, tuple[Counters, float]]]) -> tuple[dict[str, Window], set[str]]:
    """Every instance's windows added up per service, and the services some of whose could not be.

    Histograms with other bucket edges (instances of two versions, during an update)
    cannot be added: the first instance's edges are kept, the others' counts left out.
    """
    totals: dict[str, Window] = {}
    unmerged: set[str] = set()
    for windows in instances:
        for service, (counters, seconds) in windows.items():
            rate = counters.requests / seconds
            busy = counters.in_flight_seconds
            concurrency = None if busy is None else busy / seconds
            known = totals.get(service)
            if known is None:
                totals[service] = Window(counters, rate, seconds, concurrency)
            elif known.counters.edges == counters.edges:
                totals[service] = Window(
                    known.counters.plus(counters),
                    known.rate + rate,
                    max(known.seconds, seconds),
                    _either_none(known.concurrency, concurrency, lambda a, b: a + b),
                )
            else:
                unmerged.add(service)
    return totals, unmerged


def last_step(history: History, longest: float) -> dict[str, tuple[Counters, float]]:
    """Per service, what one instance counted between its two newest readings, if at most ``longest`` apart.

    The surge window: the autoscaler reads the entry points once more a short while
    before each check, so that the newest step is a recent, short one.
    """
    if len(history) < 2:
        return {}
    (before_at, before), (newest_at, newest) = history[-2], history[-1]
    span = newest_at - before_at
    return _between(before, newest, span) if 0 < span <= longest else {}
