"""The demo API's items: rows in PostgreSQL, cached in Redis, all through the data router.

Writes go to the router's primary ports, reads to its read ports, which spread them
over the replicas (or send them to the primary while there are none). The client never
learns which tasks exist. Every wait is short: a database that is away makes a request
fail with 503 within a few seconds, never hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg
import psycopg.errors
import redis.asyncio
import redis.exceptions
import structlog
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = structlog.get_logger("demo_api")

CACHE_SECONDS = 300
ROUTER_MARKS_DOWN_SECONDS = 2.0
"""The data router marks an instance down after two failed checks a second apart (haproxy.cfg)."""
"""How long a cached item stays in Redis."""
MOST_VALUE_CHARACTERS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id bigserial PRIMARY KEY,
    value text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


class UnavailableError(RuntimeError):
    """The database cannot answer now: the request gets a 503."""


@dataclass(frozen=True)
class DataSettings:
    """Where the data router is, and how long the demo waits for it."""

    host: str
    """The data router's name (``tasks.data-router``: its tasks, tried in turn)."""
    password: str
    read_pool_size: int
    """Most connections a task holds to the read port at once."""
    write_pool_size: int
    timeout: float = 3.0
    """Seconds to wait for a connection or a cache answer; a query has 5 s (the role's statement_timeout)."""


Connection = psycopg.AsyncConnection[TupleRow]
T = TypeVar("T")


def _pool(settings: DataSettings, port: int, name: str, size: int) -> AsyncConnectionPool[Connection]:
    conninfo = psycopg.conninfo.make_conninfo(
        host=settings.host,
        port=port,
        # PgBouncer's pool for reads is app_read, the same database: reads never hold writes back.
        dbname="app_read" if name.endswith("read") else "app",
        user="app",
        password=settings.password,
        connect_timeout=int(settings.timeout),
        application_name=name,
    )
    return AsyncConnectionPool(
        conninfo,
        # Connections open as the load needs them and close when idle, so that the count of
        # connections an instance has is the load it takes (the autoscaler scales replicas on it).
        min_size=0,
        max_size=size,
        timeout=settings.timeout,
        max_idle=10,
        # Short lives: connections follow the replicas as they come and go.
        max_lifetime=60,
        open=False,
        # PgBouncer pools per transaction: no statement may stay prepared on a server connection.
        kwargs={"autocommit": True, "prepare_threshold": None},
    )


def _redis(settings: DataSettings, port: int) -> redis.asyncio.Redis:
    return redis.asyncio.Redis(
        host=settings.host,
        port=port,
        socket_timeout=settings.timeout,
        socket_connect_timeout=settings.timeout,
        # A command that loses its connection is sent once more, on a new one: elsewhere.
        retry=Retry(NoBackoff(), 1),
    )


class ItemStore:
    def __init__(self, settings: DataSettings) -> None:
        self.settings = settings
        self.writes = _pool(settings, 5432, "demo-api-write", settings.write_pool_size)
        self.reads = _pool(settings, 5433, "demo-api-read", settings.read_pool_size)
        self.cache = _redis(settings, 6379)
        self.cached = _redis(settings, 6380)
        self.schema_ready = False

    async def open(self) -> None:
        await self.writes.open(wait=False)
        await self.reads.open(wait=False)

    async def close(self) -> None:
        await self.writes.close()
        await self.reads.close()
        await self.cache.aclose()
        await self.cached.aclose()

    async def _on(
        self, pool: AsyncConnectionPool[Connection], work: Callable[[Connection], Awaitable[T]], retry: bool
    ) -> T:
        """``work`` on a pooled connection; with ``retry``, on others after a lost connection.

        The instance that went away may hold more of the pool's connections. The router closes
        them when it marks the instance down, and ``pool.check()`` then drops them: the second
        try follows at once (a replica that drained has been marked down already), the last one
        after the router has had the time to mark down one that died.
        """
        pauses = (0.0, ROUTER_MARKS_DOWN_SECONDS)
        for attempt in range(len(pauses) + 1):
            if attempt:
                await asyncio.sleep(pauses[attempt - 1])
                await pool.check()
            try:
                async with pool.connection() as connection:
                    return await work(connection)
            except PoolTimeout as error:
                raise UnavailableError(f"no connection within {self.settings.timeout:g} s") from error
            except psycopg.OperationalError as error:
                if not retry or attempt == len(pauses):
                    raise UnavailableError(str(error).strip()) from error
                log.info("read retried on another connection", error=str(error).strip())
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _schema(self, connection: Connection) -> None:
        if not self.schema_ready:
            await connection.execute(SCHEMA)
            self.schema_ready = True

    async def create(self, value: str) -> int:
        async def insert(connection: Connection) -> int:
            await self._schema(connection)
            row = await (
                await connection.execute("INSERT INTO items (value) VALUES (%s) RETURNING id", [value])
            ).fetchone()
            assert row is not None  # noqa: S101 - INSERT ... RETURNING returns its row
            return int(row[0])

        # A write is not retried: it may have been committed before the connection was lost.
        item = await self._on(self.writes, insert, retry=False)
        await self._cache(item, value)
        return item

    async def _cache(self, item: int, value: str) -> None:
        try:
            await self.cache.set(f"item:{item}", value, ex=CACHE_SECONDS)
        except (redis.exceptions.RedisError, OSError) as error:
            log.info("cache not written", item=item, error=str(error))

    async def get(self, item: int) -> tuple[str, str] | None:
        """The item's value and where it came from ("cache" or the database's address); None if none."""
        try:
            cached = await self.cached.get(f"item:{item}")
        except (redis.exceptions.RedisError, OSError) as error:
            log.info("cache not read", item=item, error=str(error))
            cached = None
        if isinstance(cached, bytes):
            return cached.decode(), "cache"

        async def select(connection: Connection) -> tuple[str, str] | None:
            query = "SELECT value, host(inet_server_addr()) FROM items WHERE id = %s"
            try:
                row = await (await connection.execute(query, [item])).fetchone()
            except psycopg.errors.UndefinedTable:
                return None
            return (str(row[0]), str(row[1])) if row else None

        found = await self._on(self.reads, select, retry=True)
        if found is None:
            # Not on a replica yet, perhaps: the primary has every committed row.
            found = await self._on(self.writes, select, retry=False)
        if found is not None:
            await self._cache(item, found[0])
        return found

    async def search(self, text: str) -> tuple[int, str]:
        """How many items' values contain ``text``, and the database that counted: a whole-table read."""

        async def count(connection: Connection) -> tuple[int, str]:
            query = "SELECT count(*), host(inet_server_addr()) FROM items WHERE value LIKE %s"
            try:
                row = await (await connection.execute(query, [f"%{text}%"])).fetchone()
            except psycopg.errors.UndefinedTable:
                return 0, ""
            assert row is not None  # noqa: S101 - an aggregate returns one row
            return int(row[0]), str(row[1])

        return await self._on(self.reads, count, retry=True)
