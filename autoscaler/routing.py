"""Where the entry point sends a service's requests, from the service's labels.

A service labelled ``entrypoint.path=/shop/`` (and ``entrypoint.port=8000``, the port
its tasks listen on) gets its own location at the entry point. The labels are held to
the same rules as the entry point's own variables: nothing in them can add a directive
to nginx's configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from autoscaler.labels import BALANCE_LABEL, PATH_LABEL, PORT_LABEL, STICKY_LABEL
from common.bounds import BALANCING_POLICIES, STICKY_MODES
from common.config import read_choice, read_port, read_url_prefix

DEFAULT_PORT = 80


@dataclass(frozen=True)
class Route:
    path: str
    """URL prefix sent to the service's tasks."""
    port: int
    """Port the tasks listen on."""
    balance: str = "round_robin"
    """How the entry point spreads the requests over the tasks: one of ``BALANCING_POLICIES``."""
    sticky: str = "none"
    """Whether a client keeps its task: one of ``STICKY_MODES``."""


def route_of(labels: Mapping[str, str]) -> Route | None:
    """The service's route; None without ``entrypoint.path``. Raises ConfigError naming the label."""
    if PATH_LABEL not in labels:
        return None
    return Route(
        path=read_url_prefix(labels, PATH_LABEL, ""),
        port=read_port(labels, PORT_LABEL, DEFAULT_PORT),
        balance=read_choice(labels, BALANCE_LABEL, "round_robin", BALANCING_POLICIES),
        sticky=read_choice(labels, STICKY_LABEL, "none", STICKY_MODES),
    )


@dataclass(frozen=True)
class RoutedService:
    name_in_stack: str
    route: Route
