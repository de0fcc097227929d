"""PostgreSQL in a task: the primary on its volume, or a standby copied from it at start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

import psycopg
import structlog
from psycopg import sql
from psycopg.conninfo import make_conninfo

from common.lifecycle import Worker, sleep_unless_stopped
from data_tier.agent import Agent, Probed
from data_tier.health import PostgresReading, parse_lsn, postgres_health
from data_tier.processes import run_child, run_once
from data_tier.settings import PostgresSettings

log = structlog.get_logger(__name__)

BIN = Path("/usr/lib/postgresql/15/bin")
SOCKET_DIR = "/var/run/postgresql"
PRIMARY_DATA = Path("/var/lib/postgresql/data")
"""The primary's data: the named volume."""
REPLICA_DATA = Path("/var/lib/postgresql/replica")
"""A standby's copy: in the task's own file system, so it goes with the task."""
APP_ROLE = "app"
"""The role and database the demo API uses."""
RESERVED_CONNECTIONS = 3
AGENT_CONNECTIONS = 2
"""The agent's own connection and postgres_exporter's, beside PgBouncer's pool."""
LOCAL_DSN = (
    f"host={SOCKET_DIR} dbname=postgres user=postgres connect_timeout=2 application_name=datatier-agent"
)

HBA = """\
# Written by the agent at every start.
local   all          all                peer
host    all          all          all   scram-sha-256
host    replication  all          all   scram-sha-256
"""


def server_argv(settings: PostgresSettings, data: Path) -> list[str]:
    options = {
        "listen_addresses": "*",
        "unix_socket_directories": SOCKET_DIR,
        "max_connections": str(settings.max_connections),
        "superuser_reserved_connections": str(RESERVED_CONNECTIONS),
        "wal_level": "replica",
        "max_wal_senders": "10",
        # A standby that restarts or falls behind finds the WAL it needs for this long.
        "wal_keep_size": "256MB",
        "hot_standby": "on",
        "hot_standby_feedback": "on",
        "shared_buffers": "64MB",
        "password_encryption": "scram-sha-256",
    }
    argv = [str(BIN / "postgres"), "-D", str(data)]
    for name, value in options.items():
        argv += ["-c", f"{name}={value}"]
    return argv


async def initialise_primary(settings: PostgresSettings) -> None:
    """Make a new cluster on an empty volume; keep the one a volume already holds."""
    if not (PRIMARY_DATA / "PG_VERSION").exists():
        log.info("initialising a new database cluster", data=str(PRIMARY_DATA))
        with tempfile.NamedTemporaryFile("w", dir=SOCKET_DIR) as password_file:
            password_file.write(settings.password + "\n")
            password_file.flush()
            status, error = await run_once(
                [str(BIN / "initdb"), "-D", str(PRIMARY_DATA), "-U", "postgres", "-E", "UTF8",
                 "--pwfile", password_file.name, "--auth-local=peer", "--auth-host=scram-sha-256"]
            )  # fmt: skip
        if status != 0:
            raise RuntimeError(f"initdb failed: {error}")
    (PRIMARY_DATA / "pg_hba.conf").write_text(HBA)


async def take_base_backup(settings: PostgresSettings, stop: asyncio.Event) -> bool:
    """Copy the primary into REPLICA_DATA, retrying with backoff; False if stopped first."""
    environment = {**os.environ, "PGPASSWORD": settings.password, "PGCONNECT_TIMEOUT": "5"}
    wait = 1.0
    attempt = 1
    while True:
        shutil.rmtree(REPLICA_DATA, ignore_errors=True)
        status, error = await run_once(
            [str(BIN / "pg_basebackup"), "-h", settings.agent.primary_host, "-U", "postgres",
             "-D", str(REPLICA_DATA), "-X", "stream", "-R", "--checkpoint=fast", "--no-password"],
            environment,
        )  # fmt: skip
        if status == 0:
            log.info("base backup taken", primary=settings.agent.primary_host, attempts=attempt)
            return True
        log.warning("base backup failed", primary=settings.agent.primary_host, error=error, retry_in=wait)
        if await sleep_unless_stopped(stop, wait):
            return False
        wait = min(wait * 2, settings.backup_retry_max)
        attempt += 1


async def wait_accepting(stop: asyncio.Event) -> psycopg.AsyncConnection[tuple[object, ...]] | None:
    """A connection to the local server, once it accepts one; None if stopped first."""
    while not stop.is_set():
        try:
            return await psycopg.AsyncConnection.connect(LOCAL_DSN, autocommit=True)
        except psycopg.OperationalError:
            await sleep_unless_stopped(stop, 0.5)
    return None


async def ensure_app_database(connection: psycopg.AsyncConnection[tuple[object, ...]], password: str) -> None:
    """The app role and its database, with the passwords of the settings (idempotent)."""
    role = sql.Identifier(APP_ROLE)
    if (
        await (await connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE])).fetchone()
        is None
    ):
        await connection.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
    for name in (APP_ROLE, "postgres"):
        # ALTER ROLE takes no parameters: the password goes in as a quoted literal.
        statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
        await connection.execute(statement)
    # No query of the app's runs longer: a database that is stuck answers with an error, not never.
    await connection.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = '5s'").format(role))
    exists = await connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [APP_ROLE])
    if await exists.fetchone() is None:
        await connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))


READING = """
SELECT pg_is_in_recovery(),
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
       current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false),
       (SELECT latest_end_lsn::text FROM pg_stat_wal_receiver),
       pg_last_wal_replay_lsn()::text
"""


def reading_from(row: tuple[object, ...]) -> PostgresReading:
    """A reading from the row READING returns; ValueError if it is not what was asked."""
    in_recovery, connections, max_connections, reserved, streaming, primary_end, replayed = row
    flags_ok = isinstance(in_recovery, bool) and isinstance(streaming, bool)
    if not flags_ok or not all(
        isinstance(number, int) for number in (connections, max_connections, reserved)
    ):
        raise ValueError(f"unexpected reading {row!r}")
    return PostgresReading(
        in_recovery=in_recovery is True,
        connections=int(str(connections)),
        max_connections=int(str(max_connections)),
        reserved_connections=int(str(reserved)),
        streaming=streaming is True,
        primary_end=parse_lsn(primary_end) if isinstance(primary_end, str) else None,
        replayed=parse_lsn(replayed) if isinstance(replayed, str) else None,
    )


class Reconnecting:
    """One connection, opened at first use and again after any failure."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.connection: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def rows(self, query: str) -> tuple[list[str], list[tuple[object, ...]]]:
        """The column names and rows of ``query`` (no parameters: the simple query protocol)."""
        try:
            if self.connection is None or self.connection.closed:
                # Never prepared: PgBouncer's console takes the simple query protocol only.
                self.connection = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, prepare_threshold=None
                )
            cursor = await self.connection.execute(query)
            return [column.name for column in cursor.description or ()], await cursor.fetchall()
        except psycopg.Error:
            if self.connection is not None:
                await self.connection.close()
            self.connection = None
            raise


def pooled_clients(columns: list[str], rows: list[tuple[object, ...]]) -> dict[str, float]:
    """PgBouncer's clients in a transaction and waiting for a server connection, from SHOW POOLS."""
    totals = {"pgbouncer_clients_active": 0.0, "pgbouncer_clients_waiting": 0.0}
    for name, column in (
        ("pgbouncer_clients_active", "cl_active"),
        ("pgbouncer_clients_waiting", "cl_waiting"),
    ):
        if column not in columns:
            return {}
        index = columns.index(column)
        values = [row[index] for row in rows]
        if not all(isinstance(value, int) for value in values):
            return {}
        totals[name] = float(sum(int(str(value)) for value in values))
    return totals


class PostgresProbe:
    """Reads the local server, and its PgBouncer's console, each on a connection of its own."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self.server = Reconnecting(LOCAL_DSN)
        self.pooler = Reconnecting(
            make_conninfo(
                host="127.0.0.1",
                port=POOLER_PORT,
                dbname="pgbouncer",
                user="postgres",
                password=settings.password,
                connect_timeout=2,
            )
        )

    async def __call__(self, served_before: bool) -> Probed:
        reading, error, pool = None, None, {}
        try:
            _, rows = await self.server.rows(READING)
            reading = reading_from(rows[0]) if rows else None
        except (psycopg.Error, ValueError) as failure:
            error = str(failure).strip() or type(failure).__name__
        with contextlib.suppress(psycopg.Error):  # no pooler's figures: only they are missing
            pool = pooled_clients(*await self.pooler.rows("SHOW POOLS"))
        settings = self.settings
        health = postgres_health(settings.agent.role, reading, error, settings.max_lag_bytes, served_before)
        return Probed(health, {**gauges(reading), **pool})


def gauges(reading: PostgresReading | None) -> dict[str, float]:
    if reading is None:
        return {}
    values = {
        "postgres_connection_load_percent": reading.connection_load_percent,
        "postgres_client_connections": float(reading.connections),
    }
    if reading.lag_bytes is not None:
        values["postgres_replication_lag_bytes"] = float(reading.lag_bytes)
    return values


def server_worker(settings: PostgresSettings, agent: Agent) -> Worker:
    """The server: prepared for its role, run until the stop, drained, then stopped fast."""

    async def serve(stop: asyncio.Event) -> None:
        if settings.agent.role == "primary":
            await initialise_primary(settings)
            data = PRIMARY_DATA
        else:
            if not await take_base_backup(settings, stop):
                return
            data = REPLICA_DATA

        async def prepare_and_drain() -> None:
            await agent.drain(settings.agent.drain_seconds if settings.agent.role == "replica" else 0)

        server = asyncio.create_task(
            run_child(
                "postgres",
                server_argv(settings, data),
                stop,
                # SIGINT is PostgreSQL's fast shutdown: sessions end, the server checkpoints and exits.
                stop_signal=signal.SIGINT,
                before_stop=prepare_and_drain,
            ),
            name="postgres-server",
        )
        if settings.agent.role == "primary":
            connection = await wait_accepting(stop)
            if connection is not None:
                async with connection:
                    await ensure_app_database(connection, settings.password)
        await server

    return serve


POOLER_PORT = 6432
POOLER_DIRECTORY = Path("/tmp/pgbouncer")  # noqa: S108 - the container's own, made at start


def pooler_files(settings: PostgresSettings) -> tuple[str, str]:
    """PgBouncer's configuration and its list of users, for an instance of ``settings``.

    Transaction pooling: a client holds a server connection only while a transaction runs,
    so that the clients' own pools, idle or not, cost the server nothing; clients beyond
    the pool wait in PgBouncer (its waiting clients) for up to 5 s, then fail. Writes
    (database ``app``) and reads (``app_read``, the same database) have pools of their
    own, so that a flood of reads on the primary never holds a write back.
    """
    pool = settings.max_connections - RESERVED_CONNECTIONS - AGENT_CONNECTIONS
    writes = max(1, pool // 4)
    configuration = f"""\
[databases]
{APP_ROLE} = host=127.0.0.1 port=5432 dbname={APP_ROLE} pool_size={writes}
{APP_ROLE}_read = host=127.0.0.1 port=5432 dbname={APP_ROLE} pool_size={pool - writes}
* = host=127.0.0.1 port=5432 pool_size=2

[pgbouncer]
listen_addr = *
listen_port = {POOLER_PORT}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {POOLER_DIRECTORY}/users.txt
admin_users = postgres
pool_mode = transaction
max_client_conn = 1000
query_wait_timeout = 5
server_idle_timeout = 10
server_lifetime = 300
ignore_startup_parameters = extra_float_digits
logfile =
syslog = 0
log_connections = 0
log_disconnections = 0
pidfile =
"""
    users = "".join(f'"{name}" "{settings.password}"\n' for name in (APP_ROLE, "postgres"))
    return configuration, users


def pooler_worker(settings: PostgresSettings) -> Worker:
    """PgBouncer in front of this instance, on 6432: what the data router sends clients to."""

    def write_files() -> None:
        POOLER_DIRECTORY.mkdir(mode=0o700, exist_ok=True)
        configuration, users = pooler_files(settings)
        (POOLER_DIRECTORY / "pgbouncer.ini").write_text(configuration)
        users_file = POOLER_DIRECTORY / "users.txt"
        users_file.write_text(users)
        users_file.chmod(0o600)

    async def pool(stop: asyncio.Event) -> None:
        write_files()  # a few hundred bytes, once, before anything else runs
        await run_child("pgbouncer", ["pgbouncer", str(POOLER_DIRECTORY / "pgbouncer.ini")], stop)

    return pool


def exporter_worker() -> Worker:
    """Debian's postgres_exporter for this instance, on 9187, over the local socket."""

    async def export(stop: asyncio.Event) -> None:
        dsn = f"postgresql://postgres@:5432/postgres?host={SOCKET_DIR}&sslmode=disable"
        environment = {**os.environ, "DATA_SOURCE_NAME": dsn}
        await run_child(
            "postgres-exporter",
            ["prometheus-postgres-exporter", "--web.listen-address=:9187", "--log.level=warn"],
            stop,
            environment=environment,
        )

    return export
