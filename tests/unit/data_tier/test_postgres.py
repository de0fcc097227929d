"""What the agent reads of PostgreSQL and its pooler."""

import pytest

from data_tier.postgres import pooled_clients, pooler_files, reading_from
from data_tier.settings import postgres_settings
from tests.unit.data_tier.readings import MIB, PRIMARY, standby


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
