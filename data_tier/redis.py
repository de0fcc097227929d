"""Redis in a task: the primary with append-only persistence on its volume, or a replica of it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

import redis.asyncio
import redis.exceptions
import structlog

from common.lifecycle import Worker
from common.numbers import finite
from data_tier.agent import Agent, Probed
from data_tier.health import redis_health
from data_tier.processes import run_child
from data_tier.settings import RedisSettings

log = structlog.get_logger(__name__)

PORT = 6379


DATA = Path("/data")
"""The primary's volume."""


def restoring(data: Path = DATA) -> bool:
    """The volume holds an RDB file and no append-only files: a restored backup to load.

    With append-only persistence on, Redis reads only its append-only files and would
    start empty: the primary starts without it, loads the RDB, then turns it on.
    """
    return (data / "dump.rdb").exists() and not (data / "appendonlydir").exists()


def server_argv(settings: RedisSettings, from_rdb: bool = False) -> list[str]:
    argv = ["redis-server", "--port", str(PORT), "--bind", "0.0.0.0",  # noqa: S104 - in a container, on the overlay network
            "--protected-mode", "no",
            "--maxmemory", f"{settings.maxmemory_mb}mb", "--maxmemory-policy", "allkeys-lru"]  # fmt: skip
    if settings.agent.role == "primary":
        return [*argv, "--dir", str(DATA), "--appendonly", "no" if from_rdb else "yes"]
    # A replica keeps nothing: it copies the primary at start, and its copy goes with the task.
    return [*argv, "--dir", "/tmp",  # noqa: S108 - the container's own, discarded with the task
            "--appendonly", "no", "--save", "",
            "--replicaof", settings.agent.primary_host, str(PORT), "--replica-read-only", "yes"]  # fmt: skip


def local_client() -> redis.asyncio.Redis:
    """A client of this task's own Redis, with the agent's short timeouts."""
    return redis.asyncio.Redis(port=PORT, socket_timeout=2, socket_connect_timeout=2)


class RedisProbe:
    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self.client = local_client()

    async def __call__(self, served_before: bool) -> Probed:
        replication, error, gauges = None, None, {}
        try:
            info = await self.client.info("replication")
            replication = {str(key): str(value) for key, value in info.items()}
            gauges = operations(await self.client.info("stats"))
        except (redis.exceptions.RedisError, OSError) as failure:
            error = str(failure) or type(failure).__name__
        return Probed(redis_health(self.settings.agent.role, replication, error, served_before), gauges)


def operations(stats: Mapping[str, object]) -> dict[str, float]:
    """Redis' own moving average of the commands it serves a second (INFO stats), if it is a number.

    redis_exporter exports the commands as a counter only; the autoscaler's metric source
    reads a value as it is, so the agent exports Redis' rate beside it.
    """
    value = finite(stats.get("instantaneous_ops_per_sec"))
    if value is not None and value >= 0:
        return {"redis_instantaneous_ops_per_sec": value}
    return {}


async def persist_after_load(stop: asyncio.Event) -> None:
    """Turn append-only persistence on once Redis has loaded the RDB file (it writes the AOF from memory)."""
    client = local_client()
    async with client:
        while not stop.is_set():
            try:
                if (await client.info("persistence")).get("loading") == 0:
                    await client.config_set("appendonly", "yes")
                    log.info("loaded the RDB file; append-only persistence on", keys=await client.dbsize())
                    return
            except (redis.exceptions.RedisError, OSError):
                pass  # not up yet
            await asyncio.sleep(0.5)


def server_worker(settings: RedisSettings, agent: Agent) -> Worker:
    async def serve(stop: asyncio.Event) -> None:
        drain = settings.agent.drain_seconds if settings.agent.role == "replica" else 0
        from_rdb = settings.agent.role == "primary" and restoring()
        argv = server_argv(settings, from_rdb)
        server = asyncio.create_task(
            run_child("redis", argv, stop, before_stop=lambda: agent.drain(drain)), name="redis-server"
        )
        if from_rdb:
            await persist_after_load(stop)
        await server

    return serve


def exporter_worker() -> Worker:
    """Debian's redis_exporter for this instance, on 9121."""

    async def export(stop: asyncio.Event) -> None:
        await run_child(
            "redis-exporter",
            [
                "prometheus-redis-exporter",
                f"--redis.addr=redis://127.0.0.1:{PORT}",
                "--web.listen-address=:9121",
            ],
            stop,
            environment=dict(os.environ),
        )

    return export
