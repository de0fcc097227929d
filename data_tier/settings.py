"""The agent's settings, read once from the environment at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from common.config import ConfigError, read_int, read_name, read_port, read_str
from data_tier.health import Role

MIB = 1024 * 1024


@dataclass(frozen=True)
class AgentSettings:
    """What every instance's agent needs, PostgreSQL or Redis."""

    role: Role
    primary_host: str
    """Where a replica finds its primary (a Swarm DNS name); unused on a primary."""
    health_port: int
    """The port of /primary, /replica, /health and /metrics, which the data router probes."""
    drain_seconds: int
    """Seconds between answering "draining" and stopping the server: the router moves clients meanwhile."""


@dataclass(frozen=True)
class PostgresSettings:
    agent: AgentSettings
    password: str
    """The password of the ``postgres`` superuser and of the ``app`` role; replicas copy with it."""
    max_connections: int
    max_lag_bytes: int
    """A standby at most this many bytes of WAL behind its primary serves; further behind, it is left out."""
    backup_retry_max: int
    """The longest wait, in seconds, between two failed base backups (the wait doubles from 1 s)."""


@dataclass(frozen=True)
class RedisSettings:
    agent: AgentSettings
    maxmemory_mb: int
    """Redis' maxmemory, in MiB: past it, the least recently used keys are evicted (the tier is a cache)."""


def _agent(environ: Mapping[str, str], role: Role, default_primary: str) -> AgentSettings:
    return AgentSettings(
        role=role,
        primary_host=read_name(environ, "PRIMARY_HOST", default_primary),
        health_port=read_port(environ, "HEALTH_PORT", 8008),
        drain_seconds=read_int(environ, "DRAIN_SECONDS", 3, minimum=0, maximum=300),
    )


def postgres_settings(environ: Mapping[str, str], role: Role) -> PostgresSettings:
    password = read_str(environ, "DATABASE_PASSWORD", "autoscaler-demo")
    if not password or any(character in password for character in "'\"\\\n"):
        raise ConfigError(
            "DATABASE_PASSWORD", "(hidden)", "must be non-empty, without quotes, backslash or newline"
        )
    return PostgresSettings(
        agent=_agent(environ, role, "tasks.postgres"),
        password=password,
        max_connections=read_int(environ, "MAX_CONNECTIONS", 20, minimum=10, maximum=10_000),
        max_lag_bytes=read_int(environ, "REPLICA_MAX_LAG_BYTES", MIB, minimum=0, maximum=1 << 40),
        backup_retry_max=read_int(environ, "BASE_BACKUP_RETRY_MAX", 30, minimum=1, maximum=3600),
    )


def redis_settings(environ: Mapping[str, str], role: Role) -> RedisSettings:
    return RedisSettings(
        agent=_agent(environ, role, "tasks.redis"),
        maxmemory_mb=read_int(environ, "REDIS_MAXMEMORY_MB", 64, minimum=1, maximum=1 << 20),
    )
