"""What the agent exports of Redis."""

from data_tier.redis import operations


class TestOperations:
    def test_operations_are_exported_only_as_a_number(self):
        """Redis' operations a second are exported only when they are a finite count."""
        assert operations({"instantaneous_ops_per_sec": 250}) == {"redis_instantaneous_ops_per_sec": 250.0}
        for bad in ("many", None, float("nan"), -1, True):
            assert operations({"instantaneous_ops_per_sec": bad}) == {}
