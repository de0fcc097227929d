"""The routing table the autoscaler publishes (``GET /routes``), as the entry point reads it. Pure.

The autoscaler reads every service's labels through the Docker API; the entry point has
no Docker socket and reads what it needs from this table over the overlay network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from common.bounds import BALANCING_POLICIES, RATE_LIMIT_BURST_SECONDS, REPLICA_RPS, STICKY_MODES
from common.config import HIGHEST_PORT, NAME, URL_PREFIX
from common.numbers import finite


class RoutesError(ValueError):
    """The table, or the service's entry in it, is not what the autoscaler publishes."""


@dataclass(frozen=True)
class Capacity:
    replica_rps: float
    """Requests per second one task serves."""
    burst_seconds: float
    """Seconds' worth of the limit that may arrive at once above it."""


def _number(entry: Mapping[str, object], key: str, bounds: tuple[float, float]) -> float:
    lowest, highest = bounds
    value = entry.get(key)
    number = finite(value)
    if number is None:
        raise RoutesError(f"{key} is not a finite number: {value!r}")
    if not lowest <= number <= highest:
        raise RoutesError(f"{key} is out of range: {value!r}")
    return number


def _capacity(entry: Mapping[str, object]) -> Capacity | None:
    limit = entry.get("rate_limit")
    if limit is None:
        return None
    if not isinstance(limit, Mapping):
        raise RoutesError(f"rate_limit is not an object: {limit!r}")
    return Capacity(
        replica_rps=_number(limit, "replica_rps", REPLICA_RPS),
        burst_seconds=_number(limit, "burst_seconds", RATE_LIMIT_BURST_SECONDS),
    )


def _entries(table: object) -> list[object]:
    entries = table.get("services") if isinstance(table, Mapping) else None
    if not isinstance(entries, list):
        raise RoutesError("not a routing table: no list of services")
    return entries


def capacity_of(table: object, names: Sequence[str]) -> Capacity | None:
    """The capacity of one task of the service known by ``names``; None: no limit.

    A service is found by its name or its name in its stack. A service the table does
    not list has no limit. Raises RoutesError for a table that is not one, or for a
    malformed entry of the service.
    """
    for entry in _entries(table):
        if isinstance(entry, Mapping) and {entry.get("service"), entry.get("name_in_stack")} & set(names):
            return _capacity(entry)
    return None


@dataclass(frozen=True)
class Route:
    """A location of the entry point and the service it sends requests to."""

    service: str
    """Whose tasks get the requests: ``tasks.<service>`` in DNS."""
    counted_as: str
    """The name its requests are counted, balanced and limited under."""
    path: str
    """URL prefix."""
    port: int
    """Port the tasks listen on."""
    balance: str = "round_robin"
    """How requests are spread over the tasks: one of ``BALANCING_POLICIES``."""
    sticky: str = "none"
    """Whether a client keeps its task: one of ``STICKY_MODES``."""


def _name(entry: Mapping[str, object], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise RoutesError(f"{key} is not a service name: {value!r}")
    return value


def _route(entry: Mapping[str, object]) -> Route:
    route = entry.get("route")
    if not isinstance(route, Mapping):
        raise RoutesError(f"route is not an object: {route!r}")
    path, port = route.get("path"), route.get("port")
    if not isinstance(path, str) or not URL_PREFIX.fullmatch(path):
        raise RoutesError(f"path is not a URL prefix: {path!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= HIGHEST_PORT:
        raise RoutesError(f"port is not a port: {port!r}")
    # A table of a version before these has neither: round robin and no stickiness, as then.
    balance = _choice(route, "balance", BALANCING_POLICIES)
    sticky = _choice(route, "sticky", STICKY_MODES)
    return Route(_name(entry, "service"), _name(entry, "name_in_stack"), path, port, balance, sticky)


def _choice(route: Mapping[str, object], key: str, choices: tuple[str, ...]) -> str:
    """The route's ``key``, one of ``choices``; the first when the table has none."""
    value = route.get(key, choices[0])
    if not isinstance(value, str) or value not in choices:
        raise RoutesError(f"{key} is not one of {', '.join(choices)}: {value!r:.60}")
    return value


def routes_of(table: object) -> tuple[list[Route], dict[str, str]]:
    """The routes the table lists, and per entry left out, why (by the entry's service).

    Raises RoutesError for a table that is not one.
    """
    routes, problems = [], {}
    for index, entry in enumerate(_entries(table)):
        if not isinstance(entry, Mapping):
            problems[f"entry {index}"] = f"not an object: {entry!r:.100}"
            continue
        if entry.get("route") is None:
            continue
        try:
            routes.append(_route(entry))
        except RoutesError as error:
            problems[f"{entry.get('service')!r:.100}"] = str(error)
    return routes, problems


def limit_lines(service: str, capacity: Capacity | None, tasks: int) -> list[str]:
    """The limit as nginx takes it (``<service> <rate> <burst>``): one task's capacity times the tasks.

    No limit without a capacity, or without tasks (nginx refuses every request then).
    The burst is at least one request, or nothing could pass.
    """
    if capacity is None or tasks == 0:
        return []
    rate = capacity.replica_rps * tasks
    return [f"{service} {rate:.6g} {max(1.0, rate * capacity.burst_seconds):.6g}"]
