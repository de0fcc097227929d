"""The agent's state and its endpoints: what the data router probes and Prometheus scrapes.

A probe (PostgreSQL's or Redis') runs once a second and judges the instance; the
endpoints only read the last judgement, so a probe from the router never waits on the
database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from common.http import Handler, Response
from common.lifecycle import sleep_unless_stopped
from data_tier.health import DRAINING, Health, Role

log = structlog.get_logger(__name__)

PROBE_INTERVAL = 1.0
"""Seconds between two probes of the instance."""


@dataclass(frozen=True)
class Probed:
    """One probe's outcome: the judgement and the gauges it read (name to value)."""

    health: Health
    gauges: Mapping[str, float] = field(default_factory=dict)


Probe = Callable[[bool], Awaitable[Probed]]
"""Reads the instance and judges it; its argument says whether the instance has served before."""


@dataclass
class Agent:
    kind: str
    """``postgres`` or ``redis``."""
    role: Role
    health: Health = field(default_factory=lambda: Health(serving=False, reason="starting"))
    gauges: Mapping[str, float] = field(default_factory=dict)
    served_before: bool = False
    draining: bool = False

    def record(self, probed: Probed) -> None:
        """Keep a probe's outcome; a change of judgement is logged once, as it happens."""
        health = DRAINING if self.draining else probed.health
        if health != self.health:
            event = "serving" if health.serving else "out of rotation"
            log.info(event, kind=self.kind, role=self.role, reason=health.reason)
        self.health = health
        self.gauges = probed.gauges
        self.served_before = self.served_before or health.serving

    async def drain(self, seconds: float) -> None:
        """Answer "draining" at once, then give the router ``seconds`` to move its clients."""
        self.draining = True
        self.record(Probed(DRAINING, self.gauges))
        await asyncio.sleep(seconds)

    def summary(self) -> dict[str, object]:
        health = self.health
        return {"kind": self.kind, "role": self.role, "serving": health.serving, "reason": health.reason}

    def routes(self, registry: CollectorRegistry) -> dict[str, Handler]:
        """/primary, /replica and /reads (either): 200 only while serving so; /health: always 200; /built."""

        def serving_as(*roles: Role) -> Handler:
            def answer() -> Response:
                serving = self.role in roles and self.health.serving
                status = HTTPStatus.OK if serving else HTTPStatus.SERVICE_UNAVAILABLE
                return Response.json(status, self.summary())

            return answer

        def metrics() -> Response:
            return Response(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)

        return {
            "/primary": serving_as("primary"),
            "/replica": serving_as("replica"),
            "/reads": serving_as("primary", "replica"),
            "/health": lambda: Response.json(HTTPStatus.OK, self.summary()),
            # The task's health check: built (it has served once), whatever it lags by now, so that
            # Swarm counts it running once it is built and never restarts one that only falls behind.
            "/built": lambda: Response.json(
                HTTPStatus.OK if self.served_before else HTTPStatus.SERVICE_UNAVAILABLE, self.summary()
            ),
            "/metrics": metrics,
        }


class AgentCollector(Collector):
    """The agent's gauges, computed at scrape time from the last probe."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[GaugeMetricFamily]:
        serving = GaugeMetricFamily(
            "datatier_serving", "1 while the instance takes clients in its role.", labels=["kind", "role"]
        )
        serving.add_metric([self.agent.kind, self.agent.role], 1.0 if self.agent.health.serving else 0.0)
        yield serving
        for name, value in sorted(self.agent.gauges.items()):
            yield GaugeMetricFamily(name, GAUGE_HELP.get(name, name), value=value)


GAUGE_HELP = {
    "postgres_connection_load_percent": (
        "Client connections / (max_connections - superuser_reserved_connections), percent."
    ),
    "postgres_client_connections": "Client connections, in every state.",
    "postgres_replication_lag_bytes": "WAL this standby knows of but has not replayed, in bytes.",
    "redis_instantaneous_ops_per_sec": "Commands Redis served a second, its own moving average (INFO stats).",
    "pgbouncer_clients_active": "PgBouncer's clients with a server connection (SHOW POOLS cl_active).",
    "pgbouncer_clients_waiting": "PgBouncer's clients waiting for a server (SHOW POOLS cl_waiting).",
}


async def probe_until_stopped(agent: Agent, probe: Probe, stop: asyncio.Event) -> None:
    while True:
        agent.record(await probe(agent.served_before))
        if await sleep_unless_stopped(stop, PROBE_INTERVAL):
            return
