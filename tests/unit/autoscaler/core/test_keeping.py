import pytest

from autoscaler.core import ServiceState
from autoscaler.core.keeping import matters_for_restart, stabilization_peak
from tests.unit.autoscaler.core.policies import SHIPPED

NOW = 1_800_000_000.0
POLICY = SHIPPED
SAVED = ServiceState(replicas=4, last_scaled_at=NOW - 100, recommendations=((NOW - 200, 6), (NOW - 30, 4)))


def later(*recommendations, **changes):
    """The saved state with more recommendations, or other fields changed."""
    fields = {
        "replicas": SAVED.replicas,
        "last_scaled_at": SAVED.last_scaled_at,
        "recommendations": (*SAVED.recommendations, *recommendations),
        **changes,
    }
    return ServiceState(**fields)


class TestStabilizationPeak:
    def test_the_highest_within_the_window(self):
        """A recommendation older than the window no longer counts."""
        assert stabilization_peak(SAVED, POLICY, NOW) == 6
        assert stabilization_peak(SAVED, POLICY, NOW + 101) == 4
        assert stabilization_peak(ServiceState(), POLICY, NOW) is None


class TestMattersForRestart:
    @pytest.mark.parametrize(
        ("state", "matters"),
        [
            (SAVED, False),
            (later((NOW, 5)), False),  # lower than the peak: a kill may lose it
            (later((NOW, 7)), True),  # a new peak
            (later(replicas=5, last_scaled_at=NOW), True),  # a change made
            (later(last_outside_change_at=NOW), True),  # a change seen
            (later(changes=((NOW, 1),)), True),
        ],
    )
    def test_a_change_or_a_new_peak_matters_a_lower_recommendation_does_not(self, state, matters):
        """Against what was saved, at the same time."""
        assert matters_for_restart(SAVED, state, POLICY, NOW) is matters

    def test_nothing_saved_always_matters(self):
        """A service never saved is saved."""
        assert matters_for_restart(None, SAVED, POLICY, NOW)

    def test_a_saved_peak_gone_from_the_window_matters_when_a_recommendation_is_left(self):
        """Once the saved peak has left the window, the recommendations since then are the peak."""
        state = later((NOW + 50, 5))
        saved_then = ServiceState(replicas=4, last_scaled_at=NOW - 100, recommendations=((NOW - 200, 6),))
        assert matters_for_restart(saved_then, state, POLICY, NOW + 101)
