"""Reading the entry point's request counters: every nginx instance, found through ``tasks.<service>`` DNS.

Each instance's counters are kept for one window (the history, which the caller keeps
between reads), so that each check sees what the instance counted over the last
``METRICS_WINDOW`` seconds (see ``autoscaler.traffic``).
An answer that is not the counters counts as that instance not answering; a service
whose counters are inconsistent is left out. Either way the problem is named.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from autoscaler import traffic
from autoscaler.collectors import Resolver
from autoscaler.entrypoint_page import PageReader
from autoscaler.settings import EntryPointSettings

METRICS_PATH = "/metrics"
MOST_CHARACTERS = 64_000_000
"""A counters page longer than this is not read further: about 6,000 services of 10 tasks.

The page is read line by line and only what is kept stays in memory; this bounds the
time an instance that never stops answering can take. An instance over it counts as
unread, which holds every scale-down that request metrics could decide, and is named
(``too_large``): never a silent loss of metrics.
"""


class CountersTooLargeError(ValueError):
    """An instance's page of counters is longer than MOST_CHARACTERS."""


@dataclass(frozen=True)
class RequestReading:
    """What one round of asking the entry point instances gave."""

    windows: dict[str, traffic.Window]
    """Per service name as the entry point counts it (the name in its stack)."""
    read_at: float
    instances_answered: int
    recent: dict[str, traffic.Window] = field(default_factory=dict)
    """The same over the surge window: from the reading before this one, when that is recent."""
    counted: frozenset[str] = frozenset()
    """Services some instance counts, even with no window yet."""
    errors: dict[str, str] = field(default_factory=dict)
    """Per instance address: why it gave no counters (but for ``too_large``)."""
    too_large: dict[str, str] = field(default_factory=dict)
    """Per instance address: its page was longer than MOST_CHARACTERS, and was not read."""
    unread: int = 0
    """Instances found in DNS that gave no counters this time, for any reason."""
    entry_problems: dict[str, str] = field(default_factory=dict)
    """Per "service at address": why that service's counters were left out."""


async def _fetch(client: httpx.AsyncClient, url: str) -> traffic.Reading:
    """One instance's counters, read as the page arrives."""
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        reader, length, rest = PageReader(), 0, ""
        # Split on newlines only, the text format's line break: httpx's lines also break at
        # a carriage return and other characters, which a label's value may hold.
        async for text in response.aiter_text():
            length += len(text)
            if length > MOST_CHARACTERS:
                raise CountersTooLargeError(
                    f"counters longer than {MOST_CHARACTERS:,} characters: not read; "
                    "scale-downs that request metrics decide are held"
                )
            lines, newline, after = (rest + text).rpartition("\n")
            if newline:
                reader.feed(lines)
            rest = after
        reader.feed(rest)
        return reader.reading()


History = dict[str, list[tuple[float, traffic.Reading]]]
"""Per instance address: its readings (time read, counters), oldest first, one window's worth."""


def _remembered(
    history: History, address: str, now: float, reading: traffic.Reading, window: float
) -> list[tuple[float, traffic.Reading]]:
    """The instance's readings with this one, those before its window's start dropped."""
    readings = [*history.get(address, []), (now, reading)]
    start = max((index for index, (at, _) in enumerate(readings) if at <= now - window), default=0)
    return readings[start:]


async def read_entry_points(
    settings: EntryPointSettings,
    client: httpx.AsyncClient,
    resolve: Resolver,
    history: History,
    clock: Callable[[], float],
) -> tuple[RequestReading, History]:
    """Every instance's counters over the last window, merged; and the history to pass next time.

    An instance that does not answer counts for nothing this time; instances no longer in
    DNS are forgotten, and so is everything when the name does not resolve.
    """
    try:
        addresses = await resolve(settings.address, settings.port)
    except OSError as error:
        return RequestReading({}, clock(), 0, errors={settings.address: f"cannot resolve: {error}"}), {}
    results = await asyncio.gather(
        *(_fetch(client, f"http://{address}:{settings.port}{METRICS_PATH}") for address in addresses),
        return_exceptions=True,
    )
    now = clock()
    errors: dict[str, str] = {}
    too_large: dict[str, str] = {}
    entry_problems: dict[str, str] = {}
    windows: list[dict[str, tuple[traffic.Counters, float]]] = []
    steps: list[dict[str, tuple[traffic.Counters, float]]] = []
    counted: set[str] = set()
    kept: History = {}
    for address, result in zip(addresses, results, strict=True):
        if isinstance(result, BaseException):
            if isinstance(result, CountersTooLargeError):
                too_large[address] = str(result)
            else:
                errors[address] = str(result) if isinstance(result, ValueError) else repr(result)
            if address in history:
                kept[address] = history[address]  # its next answer still has a window
            continue
        for service, problem in result.malformed.items():
            entry_problems[f"{service} at {address}"] = problem
        counted.update(result.services)
        kept[address] = _remembered(history, address, now, result, settings.window)
        windows.append(traffic.since(kept[address], now, settings.window))
        # A step of up to twice the surge window still shows a surge; a longer one (the
        # reading before the check failed) would be only another long window.
        steps.append(traffic.last_step(kept[address], 2 * settings.surge_window))
    merged, unmerged = traffic.merged(windows)
    recent, _ = traffic.merged(steps)
    for service in unmerged:
        entry_problems[f"{service} at every instance"] = "instances count with other buckets; some left out"
    unread = len(errors) + len(too_large)
    reading = RequestReading(
        merged,
        now,
        len(addresses) - unread,
        recent,
        frozenset(counted),
        errors,
        too_large,
        unread,
        entry_problems,
    )
    return reading, kept
