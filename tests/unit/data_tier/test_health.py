"""Whether an instance serves, from what its server says."""

from typing import ClassVar

import pytest

from data_tier.health import Health, parse_lsn, postgres_health, redis_health
from tests.unit.data_tier.readings import MIB, PRIMARY, standby


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
