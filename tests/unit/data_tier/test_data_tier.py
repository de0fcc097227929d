import asyncio
from typing import ClassVar

import pytest
from prometheus_client import CollectorRegistry

from common.config import ConfigError
from data_tier.__main__ import parse_arguments
from data_tier.agent import Agent, AgentCollector, Probed
from data_tier.health import DRAINING, Health, PostgresReading, parse_lsn, postgres_health, redis_health
from data_tier.postgres import pooled_clients, pooler_files, reading_from
from data_tier.redis import operations
from data_tier.settings import postgres_settings

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


class TestParseLsn:
    def test_a_wal_location_is_a_byte_position(self):
        """A WAL location 'X/Y' is the byte position X × 2³² + Y, so lag is a subtraction."""
        assert parse_lsn("0/0") == 0
        assert parse_lsn("16/B374D848") == (0x16 << 32) + 0xB374D848

    @pytest.mark.parametrize("text", ["", "B374D848", "x/1"])
    def test_anything_else_is_refused(self, text):
        """Anything but two hexadecimal halves is refused, not read as zero."""
        with pytest.raises(ValueError, match=r"WAL location|invalid literal"):
            parse_lsn(text)


class TestPostgresReading:
    def test_connection_load_is_of_what_clients_may_open(self):
        """postgres_exporter's mixin: connections ÷ (max_connections − superuser_reserved_connections)."""
        assert PRIMARY.connection_load_percent == pytest.approx(100.0)
        assert standby(connections=4).connection_load_percent == pytest.approx(100 * 4 / 17)

    def test_lag_is_what_the_standby_knows_of_and_has_not_replayed(self):
        """A standby's lag is the WAL it has received and not yet replayed; a primary has none."""
        assert standby(primary_end=5 * MIB, replayed=4 * MIB).lag_bytes == MIB
        assert PRIMARY.lag_bytes is None

    def test_a_row_from_the_server_is_checked(self):
        """A row from the server is checked field by field before it becomes a reading."""
        row = (True, 3, 20, 3, True, "0/3000148", "0/3000100")
        assert reading_from(row) == standby(primary_end=0x3000148, replayed=0x3000100, connections=3)
        with pytest.raises(ValueError, match="unexpected reading"):
            reading_from((None, 3, 20, 3, True, None, None))
        with pytest.raises(ValueError, match="not a WAL location"):
            reading_from((True, 3, 20, 3, True, "garbage", None))


class TestPostgresHealth:
    """Who takes clients: the rules the data router follows."""

    def test_a_primary_serves_unless_in_recovery(self):
        """A primary serves writes unless it is in recovery, which makes it a standby."""
        assert postgres_health("primary", PRIMARY, None, MIB, served_before=False).serving
        assert not postgres_health("primary", standby(), None, MIB, served_before=True).serving

    def test_a_standby_serves_once_it_streams_within_the_lag_bound(self):
        """A standby joins the reads once it streams and is within the lag bound."""
        assert postgres_health("replica", standby(), None, MIB, served_before=False) == Health(
            serving=True, reason="streaming, 0 bytes behind"
        )

    def test_a_standby_too_far_behind_leaves_rotation(self):
        """A standby that falls further behind than the bound leaves the reads."""
        behind = standby(primary_end=3 * MIB, replayed=MIB)
        health = postgres_health("replica", behind, None, MIB, served_before=True)
        assert not health.serving
        assert "bytes behind the primary" in health.reason

    def test_one_that_never_caught_up_stays_out_when_the_primary_is_away(self):
        """A standby that never streamed stays out while the primary is away: it may be empty."""
        health = postgres_health("replica", standby(streaming=False), None, MIB, served_before=False)
        assert health == Health(serving=False, reason="not streaming from the primary yet")

    def test_one_that_served_goes_on_serving_reads_when_the_primary_is_away(self):
        """Reads survive the primary: the standby serves what it has."""
        health = postgres_health("replica", standby(streaming=False), None, MIB, served_before=True)
        assert health.serving

    def test_a_primary_is_no_standby_and_silence_is_no_service(self):
        """A primary answering as a replica, or a server that does not answer, serves no reads."""
        assert not postgres_health("replica", PRIMARY, None, MIB, served_before=True).serving
        health = postgres_health("replica", None, "connection refused", MIB, served_before=True)
        assert health == Health(serving=False, reason="not answering: connection refused")


class TestRedisHealth:
    LINKED: ClassVar[dict[str, str]] = {
        "role": "slave",
        "master_link_status": "up",
        "master_sync_in_progress": "0",
    }

    def test_a_replica_serves_once_linked_and_synced(self):
        """A Redis replica serves once its link is up and its first sync is done."""
        assert redis_health("replica", self.LINKED, None, served_before=False).serving
        syncing = {**self.LINKED, "master_sync_in_progress": "1"}
        assert not redis_health("replica", syncing, None, served_before=False).serving

    def test_a_lost_link_keeps_only_a_replica_that_served(self):
        """When the link is lost, a replica that served keeps serving its data; a new one does not start."""
        down = {**self.LINKED, "master_link_status": "down"}
        assert not redis_health("replica", down, None, served_before=False).serving
        assert redis_health("replica", down, None, served_before=True).serving

    def test_roles_must_match(self):
        """An instance serves only in the role it was deployed for."""
        assert redis_health("primary", {"role": "master"}, None, served_before=False).serving
        assert not redis_health("primary", self.LINKED, None, served_before=True).serving
        assert not redis_health("replica", {"role": "master"}, None, served_before=True).serving
        assert not redis_health("replica", None, "timeout", served_before=True).serving

    def test_operations_are_exported_only_as_a_number(self):
        """Redis' operations a second are exported only when they are a finite count."""
        assert operations({"instantaneous_ops_per_sec": 250}) == {"redis_instantaneous_ops_per_sec": 250.0}
        for bad in ("many", None, float("nan"), -1, True):
            assert operations({"instantaneous_ops_per_sec": bad}) == {}


class TestAgent:
    def answer(self, agent, path):
        response = agent.routes(CollectorRegistry())[path]()
        return response.status

    def test_answers_200_only_for_its_role_while_serving(self):
        """The agent answers 200 on its role's path while it serves, and 503 on the other's."""
        agent = Agent("postgres", "replica")
        agent.record(Probed(Health(serving=True, reason="streaming")))
        assert (self.answer(agent, "/replica"), self.answer(agent, "/primary")) == (200, 503)
        assert (self.answer(agent, "/reads"), self.answer(agent, "/built")) == (200, 200)

    def test_built_stays_once_served_while_rotation_follows_the_probe(self):
        """The task's health check must not restart a replica that only falls behind."""
        agent = Agent("postgres", "replica")
        assert self.answer(agent, "/built") == 503
        agent.record(Probed(Health(serving=True, reason="streaming")))
        agent.record(Probed(Health(serving=False, reason="far behind")))
        assert (self.answer(agent, "/replica"), self.answer(agent, "/built")) == (503, 200)

    def test_draining_leaves_rotation_at_once_and_stays_out(self):
        """Once draining, the agent answers 503 whatever the next probe says."""
        agent = Agent("postgres", "replica")
        agent.record(Probed(Health(serving=True, reason="streaming")))
        asyncio.run(agent.drain(0))
        agent.record(Probed(Health(serving=True, reason="streaming")))
        assert agent.health == DRAINING
        assert self.answer(agent, "/replica") == 503

    def test_metrics_are_the_last_probe(self):
        """The agent's metrics are those of its last probe, computed at scrape time."""
        agent = Agent("postgres", "primary")
        agent.record(
            Probed(Health(serving=True, reason="primary"), {"postgres_connection_load_percent": 40.0})
        )
        registry = CollectorRegistry()
        registry.register(AgentCollector(agent))
        assert registry.get_sample_value("postgres_connection_load_percent") == 40.0
        assert registry.get_sample_value("datatier_serving", {"kind": "postgres", "role": "primary"}) == 1.0


class TestSettings:
    def test_bad_values_are_named(self):
        """A bad setting is named at start, and a password is never shown."""
        with pytest.raises(ConfigError) as raised:
            postgres_settings({"MAX_CONNECTIONS": "3"}, "replica")
        assert raised.value.name == "MAX_CONNECTIONS"
        with pytest.raises(ConfigError) as raised:
            postgres_settings({"DATABASE_PASSWORD": "it's"}, "primary")
        assert (raised.value.name, raised.value.value) == ("DATABASE_PASSWORD", "(hidden)")

    def test_arguments_name_the_kind_and_role(self):
        """The agent's arguments are a kind and a role it knows, nothing else."""
        assert parse_arguments(["postgres", "replica"]) == ("postgres", "replica")
        with pytest.raises(ConfigError):
            parse_arguments(["mysql", "primary"])


class TestPooler:
    def test_the_pool_is_what_clients_may_open_less_the_agents_own(self):
        """20 connections less 3 reserved and the agent's and exporter's 2: 3 for writes, 12 for reads."""
        configuration, users = pooler_files(postgres_settings({"DATABASE_PASSWORD": "secret"}, "replica"))
        assert "pool_mode = transaction" in configuration
        assert "app = host=127.0.0.1 port=5432 dbname=app pool_size=3\n" in configuration
        assert "app_read = host=127.0.0.1 port=5432 dbname=app pool_size=12\n" in configuration
        assert users == '"app" "secret"\n"postgres" "secret"\n'

    def test_waiting_clients_come_from_show_pools(self):
        """PgBouncer's console answers SHOW POOLS with a row per pool; the clients add up over them."""
        columns = ["database", "user", "cl_active", "cl_waiting", "sv_active"]
        rows = [("app", "app", 3, 0, 3), ("app_read", "app", 12, 5, 12), ("pgbouncer", "pgbouncer", 1, 0, 0)]
        assert pooled_clients(columns, rows) == {
            "pgbouncer_clients_active": 16.0,
            "pgbouncer_clients_waiting": 5.0,
        }

    def test_an_answer_of_another_shape_gives_no_figures(self):
        """A pooler answer whose columns or values are not as expected gives no figures rather than wrong
        ones."""
        assert pooled_clients(["database", "cl_active"], [("app", 3)]) == {}
        assert pooled_clients(["cl_active", "cl_waiting"], [("3", None)]) == {}
