"""What the agent pushes to nginx, from what it read: pure functions of the routing table and the tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nginx.routes import Capacity, Route, RoutesError, capacity_of, limit_lines


def wanted_routes(
    own: Route, table_routes: Sequence[Route], left_out: Mapping[str, str]
) -> tuple[list[Route], dict[str, str]]:
    """The variables' route, then the table's by path; and per service, why its route is left out.

    A route whose path or name is another's already is left out, beside those the table
    itself could not give (``left_out``).
    """
    wanted, why = [own], dict(left_out)
    for route in sorted(table_routes, key=lambda route: (route.path, route.service)):
        taken = next(
            (w for w in wanted if {w.path, w.counted_as, w.service} & {route.path, route.counted_as}),
            None,
        )
        if taken is not None:
            why[repr(route.service)] = f"its path or name is {taken.service}'s already"
            continue
        wanted.append(route)
    return wanted, why


def routes_while_reloading(current: Sequence[Route], wanted: Sequence[Route]) -> list[Route]:
    """The routes whose tasks are pushed before a reload: the old and the new ones, each once.

    The new workers start with the list pushed last (a reload keeps it), so a new route
    has its tasks from its first request, while the old workers pass over a service they
    do not route.
    """
    return list(dict.fromkeys([*current, *wanted]))


@dataclass(frozen=True)
class Limits:
    lines: list[str]
    """The rate limits as nginx takes them, one line a limited route."""
    capacities: dict[str, Capacity | None]
    """Per route: one task's capacity, the table's or, where it is malformed, the last one read."""
    malformed: dict[str, str]
    """Per route: why the table's rate limit of it cannot be read."""


def rate_limits(
    routes: Sequence[Route],
    table: object,
    tasks: Mapping[str, Sequence[str]],
    last: Mapping[str, Capacity | None],
) -> Limits:
    """Every route's rate limit: one task's capacity times the tasks nginx has."""
    capacities, malformed, lines = dict(last), {}, []
    for route in routes:
        try:
            capacities[route.counted_as] = capacity_of(table, (route.service, route.counted_as))
        except RoutesError as error:
            malformed[route.counted_as] = str(error)
        count = len(tasks.get(route.counted_as, []))
        lines += limit_lines(route.counted_as, capacities.get(route.counted_as), count)
    return Limits(lines, capacities, malformed)


@dataclass(frozen=True)
class UpstreamChange:
    service: str
    servers: list[str]
    added: list[str]
    removed: list[str]


def upstream_changes(
    before: Mapping[str, Sequence[str]], after: Mapping[str, Sequence[str]]
) -> list[UpstreamChange]:
    """Every route whose tasks changed, with those that came and went."""
    changes = []
    for service, addresses in after.items():
        previous = before.get(service, [])
        if list(addresses) != list(previous):
            changes.append(
                UpstreamChange(
                    service,
                    list(addresses),
                    sorted(set(addresses) - set(previous)),
                    sorted(set(previous) - set(addresses)),
                )
            )
    return changes
