from autoscaler.records import snapshot
from tests.unit.autoscaler.test_daemon import Harness, web


class TestSnapshot:
    def test_the_checks_after_a_snapshot_change_nothing_in_it(self):
        """What the endpoints read in a worker thread stays as it was when the check ended."""
        harness = Harness([web()], {"s_web": 95.0})
        published = snapshot(harness.check())
        points = len(published.services["s_web"].timeline.points)
        events = dict(published.scale_events)
        for _ in range(3):
            harness.now += 61
            harness.api.reachable = not harness.api.reachable  # problems come and go
            harness.check()
        assert len(published.services["s_web"].timeline.points) == points
        assert dict(published.scale_events) == events
        assert published.problems.active == {}
        assert len(harness.daemon_state.services["s_web"].timeline.points) > points

    def test_what_only_the_loop_reads_is_left_out(self):
        """The saved state and the entry points' history are the loop's alone."""
        harness = Harness([web()], {"s_web": 95.0})
        published = snapshot(harness.check())
        assert (published.memory, published.request_history) == ({}, {})
        assert published.services["s_web"].decision == harness.daemon_state.services["s_web"].decision
