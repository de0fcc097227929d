"""The entry point's counters page, read in pieces as it arrives. Pure.

The page (``nginx/lua/metrics.lua``) is Prometheus text with about 135 lines per service
at 10 tasks; the autoscaler keeps three families of it, about 56 of those lines. Only
lines of those families are parsed; every other line is checked to start like a sample
or a comment, which is what tells a page of counters from an error page, and is skipped.
Both are found by a regular expression over a whole piece, so a skipped line costs no
Python step at all.

Why not ``prometheus_client.parser``: it parses every line of the page into samples, at
18 to 20 µs a line here, which at 500 services was most of a check (bench/decision_loop.py).
Reading only the kept lines, in the form metrics.lua writes them, costs about 3 µs a line;
a line of a kept family in any other form goes to the general reading of the sample
syntax, and what that cannot take to ``prometheus_client``'s parser, so that the format's
exotic forms still read as they always did.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from autoscaler.traffic import DURATION, IN_FLIGHT_SECONDS, REQUESTS, SERVER_ERROR, Counters, Reading

BUCKET = f"{DURATION}_bucket"
REQUESTS_TOTAL = f"{REQUESTS}_total"
IN_FLIGHT_TOTAL = f"{IN_FLIGHT_SECONDS}_total"
_KEPT_NAMES = "|".join(re.escape(name) for name in (BUCKET, REQUESTS_TOTAL, IN_FLIGHT_TOTAL))
# Both patterns start at a newline, which the regular expression engine looks for as a
# literal, instead of trying the pattern at every character of the page: the page is fed
# with a newline before its first line.
_KEPT_LINE = re.compile(rf"\n((?:{_KEPT_NAMES})\{{[^\n]*)")
"""A line of a kept family, found without a Python step per line."""
_NOT_TEXT_LINE = re.compile(r"\n(?![#a-zA-Z_:\n]|[^\S\n]+[a-zA-Z_:]|\Z)([^\n]*)")
"""A line that is neither empty, a comment nor a sample: it starts without a metric name."""
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_ESCAPE = re.compile(r"\\(.)")


def _unescaped(value: str) -> str:
    return _ESCAPE.sub(lambda found: "\n" if found[1] == "n" else found[1], value) if "\\" in value else value


def _labels(text: str) -> dict[str, str] | None:
    """The labels between a sample's braces; None when they are not plain ``name="value"`` pairs."""
    labels, position, end = {}, 0, len(text.rstrip())
    while position < end:
        found = _LABEL.match(text, position)
        if found is None:
            return None
        labels[found[1]] = _unescaped(found[2])
        position = found.end()
    return labels


# The form metrics.lua writes a kept sample in: the service, then at most one label (a
# bucket's edge or a status code), no escapes, the value, and no timestamp: one match
# reads it, where the general reading below takes a match per label.
_AS_WRITTEN = re.compile(r'([^{]+)\{service="([^"\\]*)"(?:,(le|code)="([^"\\]*)")?\} (\S+)')


def _sample(line: str) -> tuple[str, dict[str, str], float]:
    """A sample line's name, labels and value; ValueError when it is not a sample."""
    written = _AS_WRITTEN.fullmatch(line)
    if written is not None:
        name, service, label, label_value, value = written.groups()
        written_labels = {"service": service, label: label_value} if label else {"service": service}
        try:
            return name, written_labels, float(value)
        except ValueError:
            pass  # a value Python does not read as a float: the general reading decides
    name, _, rest = line.partition("{")
    inside, brace, after = rest.rpartition("}")
    labels = _labels(inside) if brace else None
    fields = after.split()
    if labels is not None and 1 <= len(fields) <= 2:  # the value, and maybe a timestamp
        try:
            return name, labels, float(fields[0])
        except ValueError:
            pass
    # Not the plain form: what the library's parser makes of it, or its error.
    ((sample, *_),) = [family.samples for family in text_string_to_metric_families(line + "\n")]
    return sample.name, dict(sample.labels), float(sample.value)


def _finite_count(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"count {value!r} is not a finite number ≥ 0")
    return value


@functools.lru_cache(maxsize=1024)  # every service's buckets have the same few edges
def _edge(text: str) -> float:
    edge = float(text)
    if math.isnan(edge) or edge <= 0:
        raise ValueError(f"bucket edge {text!r} is not a positive number")
    return edge


class PageReader:
    """The counters of one page, fed a line at a time.

    A service whose own samples are inconsistent (no +Inf bucket, decreasing bucket
    counts, a count that is negative or not finite, a status that is not one) is left
    out and named in ``malformed``; the other services are read as usual. A line that
    is not Prometheus text at all raises ValueError: the page is not the counters.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, dict[float, float]] = defaultdict(dict)
        self._codes: dict[str, dict[str, float]] = defaultdict(dict)
        self._in_flight: dict[str, float] = {}
        self._broken: dict[str, str] = {}

    def feed(self, lines: str) -> None:
        """Whole lines of the page, separated by newlines (the text format's only line break).

        A page may be fed in pieces as it arrives, each cut at a newline.
        """
        lines = "\n" + lines
        wrong = _NOT_TEXT_LINE.search(lines)
        if wrong is not None:
            raise ValueError(f"not Prometheus text: a line starts without a metric name: {wrong[1][:80]!r}")
        for kept in _KEPT_LINE.finditer(lines):
            self._keep(*_sample(kept[1]))

    def _keep(self, name: str, labels: dict[str, str], value: float) -> None:
        service = labels.get("service")
        if not service:
            return
        try:
            if name == BUCKET:
                self._buckets[service][_edge(labels.get("le", ""))] = _finite_count(value)
            elif name == REQUESTS_TOTAL:
                self._codes[service][labels.get("code", "")] = _finite_count(value)
            elif name == IN_FLIGHT_TOTAL:
                self._in_flight[service] = _finite_count(value)
        except ValueError as error:
            self._broken.setdefault(service, str(error))

    def reading(self) -> Reading:
        broken = dict(self._broken)
        services: dict[str, Counters] = {}
        for service in sorted(set(self._buckets) | set(self._codes)):
            if service in broken:
                continue
            try:
                services[service] = _counters(
                    self._buckets.get(service, {}), self._codes.get(service, {}), self._in_flight.get(service)
                )
            except ValueError as error:
                broken[service] = str(error)
        return Reading(services, broken)


def _counters(
    buckets: dict[float, float], codes: dict[str, float], in_flight_seconds: float | None
) -> Counters:
    edges = tuple(sorted(buckets))
    if not edges or not math.isinf(edges[-1]):
        raise ValueError("no +Inf bucket")
    cumulative = tuple(buckets[edge] for edge in edges)
    if any(later < earlier for earlier, later in itertools.pairwise(cumulative)):
        raise ValueError("bucket counts decrease")
    errors = 0.0
    for code, count in codes.items():
        if not (code.isascii() and code.isdigit() and len(code) == 3):
            raise ValueError(f"status code {code!r}")
        errors += count if int(code) >= SERVER_ERROR else 0.0
    return Counters(edges, cumulative, sum(codes.values()), errors, in_flight_seconds)


def parse(text: str) -> Reading:
    """The counters in an entry point's Prometheus text; ValueError if it is not that text at all."""
    reader = PageReader()
    reader.feed(text)
    return reader.reading()
