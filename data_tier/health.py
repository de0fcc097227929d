"""Whether a database instance serves: pure judgements on what was read from it.

The data router sends clients to an instance only while its agent answers 200 for the
instance's role, so these rules decide what clients see when a replica starts, falls
behind, loses its primary or is removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Role = Literal["primary", "replica"]


@dataclass(frozen=True)
class Health:
    serving: bool
    reason: str


DRAINING = Health(serving=False, reason="draining: the task is stopping")


def parse_lsn(text: str) -> int:
    """A PostgreSQL WAL location ("16/B374D848") as a byte position."""
    high, separator, low = text.partition("/")
    if not separator:
        raise ValueError(f"not a WAL location: {text!r}")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class PostgresReading:
    """What one PostgreSQL instance said of itself at one probe."""

    in_recovery: bool
    connections: int
    """Client connections, in every state (as postgres_exporter's pg_stat_activity_count sums them)."""
    max_connections: int
    reserved_connections: int
    """superuser_reserved_connections: slots ordinary clients cannot take."""
    streaming: bool = False
    """A standby's WAL receiver is connected to its primary and streaming."""
    primary_end: int | None = None
    """The primary's end of WAL as last reported to this standby (bytes); None on a primary."""
    replayed: int | None = None
    """The WAL position this standby has replayed (bytes); None on a primary."""

    @property
    def connection_load_percent(self) -> float:
        """Connections ÷ (max_connections − reserved), in percent: the share of what clients may open."""
        usable = max(self.max_connections - self.reserved_connections, 1)
        return 100.0 * self.connections / usable

    @property
    def lag_bytes(self) -> int | None:
        """WAL the standby has received word of but not replayed yet; None on a primary."""
        if self.primary_end is None or self.replayed is None:
            return None
        return max(self.primary_end - self.replayed, 0)


def postgres_health(  # noqa: PLR0911 - one return per rule reads as the rules' list
    role: Role, reading: PostgresReading | None, error: str | None, max_lag_bytes: int, served_before: bool
) -> Health:
    """Whether a PostgreSQL instance takes clients in its role.

    A standby serves once it streams and has replayed to within ``max_lag_bytes`` of the
    primary. One that served before and then lost its primary goes on serving reads of
    what it has, so that reads survive the primary; one that never caught up stays out.
    """
    if reading is None:
        return Health(serving=False, reason=f"not answering: {error or 'not started'}")
    if role == "primary":
        if reading.in_recovery:
            return Health(serving=False, reason="in recovery: not a primary")
        return Health(serving=True, reason="primary")
    if not reading.in_recovery:
        return Health(serving=False, reason="not in recovery: not a standby")
    lag = reading.lag_bytes
    if not reading.streaming or lag is None:
        if served_before:
            return Health(serving=True, reason="not streaming from the primary: serving what it has")
        return Health(serving=False, reason="not streaming from the primary yet")
    if lag > max_lag_bytes:
        return Health(serving=False, reason=f"{lag} bytes behind the primary (at most {max_lag_bytes})")
    return Health(serving=True, reason=f"streaming, {lag} bytes behind")


def redis_health(  # noqa: PLR0911 - one return per rule reads as the rules' list
    role: Role, replication: Mapping[str, str] | None, error: str | None, served_before: bool
) -> Health:
    """Whether a Redis instance takes clients in its role, from its INFO replication section.

    A replica serves once its first full sync has finished and its link to the primary is
    up; as a PostgreSQL standby, one that served before goes on serving reads when the
    link drops.
    """
    if replication is None:
        return Health(serving=False, reason=f"not answering: {error or 'not started'}")
    actual = replication.get("role")
    if role == "primary":
        if actual != "master":
            return Health(serving=False, reason=f"role is {actual}: not a primary")
        return Health(serving=True, reason="primary")
    if actual != "slave":
        return Health(serving=False, reason=f"role is {actual}: not a replica")
    if replication.get("master_sync_in_progress") == "1":
        return Health(serving=False, reason="first sync from the primary in progress")
    if replication.get("master_link_status") != "up":
        if served_before:
            return Health(serving=True, reason="link to the primary down: serving what it has")
        return Health(serving=False, reason="not linked to the primary yet")
    return Health(serving=True, reason="linked to the primary")
