"""``python -m data_tier {postgres|redis} {primary|replica}``: one instance of the data tier in a task.

The agent runs the server as its child, with the server's standard exporter beside it,
and serves its judgement of the instance on HEALTH_PORT: ``/primary`` and ``/replica``
answer 200 only while the instance takes clients in that role (the data router and the
task's health check probe them), ``/metrics`` has the agent's gauges. At SIGTERM a
replica answers "draining" for DRAIN_SECONDS before its server stops, so that the router
has moved its clients away.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from common import http
from common.config import ConfigError
from common.lifecycle import Worker, http_worker, load_or_exit, run_workers
from data_tier import postgres, redis
from data_tier.agent import Agent, AgentCollector, Probe, probe_until_stopped
from data_tier.health import Role
from data_tier.settings import AgentSettings, postgres_settings, redis_settings

KINDS = ("postgres", "redis")
ROLES: tuple[Role, ...] = ("primary", "replica")


def parse_arguments(arguments: Sequence[str]) -> tuple[str, Role]:
    if len(arguments) != 2 or arguments[0] not in KINDS or arguments[1] not in ROLES:
        raise ConfigError("arguments", " ".join(arguments), "must be {postgres|redis} {primary|replica}")
    role: Role = "primary" if arguments[1] == "primary" else "replica"
    return arguments[0], role


@dataclass(frozen=True)
class Plan:
    """What one task runs: the agent, its settings and probe, the server and the processes beside it."""

    agent: Agent
    settings: AgentSettings
    probe: Probe
    server: Worker
    beside: Mapping[str, Worker]
    """The exporter, and for PostgreSQL its pooler."""


def plan(environ: Mapping[str, str], arguments: Sequence[str]) -> Plan:
    kind, role = parse_arguments(arguments)
    agent = Agent(kind, role)
    if kind == "postgres":
        database = postgres_settings(environ, role)
        beside = {"exporter": postgres.exporter_worker(), "pooler": postgres.pooler_worker(database)}
        return Plan(agent, database.agent, postgres.PostgresProbe(database),
                    postgres.server_worker(database, agent), beside)  # fmt: skip
    cache = redis_settings(environ, role)
    return Plan(agent, cache.agent, redis.RedisProbe(cache), redis.server_worker(cache, agent),
                {"exporter": redis.exporter_worker()})  # fmt: skip


async def run(chosen: Plan) -> None:
    registry = CollectorRegistry()
    registry.register(AgentCollector(chosen.agent))
    endpoints = await http.serve(chosen.agent.routes(registry), "0.0.0.0", chosen.settings.health_port)  # noqa: S104 - in a container

    async def probing(stop: asyncio.Event) -> None:
        await probe_until_stopped(chosen.agent, chosen.probe, stop)

    await run_workers(
        {
            "server": chosen.server,
            **chosen.beside,
            "probe": probing,
            "endpoints": http_worker(endpoints),
        }
    )


def main() -> None:
    asyncio.run(run(load_or_exit(lambda environ: plan(environ, sys.argv[1:]))))


if __name__ == "__main__":
    main()
