"""Readings of PostgreSQL that the data tier's tests share."""

from data_tier.health import PostgresReading

MIB = 1024 * 1024


def standby(streaming=True, primary_end=10 * MIB, replayed=10 * MIB, connections=4):
    return PostgresReading(
        in_recovery=True,
        connections=connections,
        max_connections=20,
        reserved_connections=3,
        streaming=streaming,
        primary_end=primary_end,
        replayed=replayed,
    )


PRIMARY = PostgresReading(in_recovery=False, connections=17, max_connections=20, reserved_connections=3)
