from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.core import Observation, ServiceState, decide
from autoscaler.policy import parse_policy

NOW = 1_000_000.0
POLICY = parse_policy({"MIN_REPLICAS": "2", "MAX_REPLICAS": "10", "COOLDOWN_PERIOD": "120"})


def observe(replicas, cpu=None, memory=None, age=5.0):
    return Observation(
        current_replicas=replicas, cpu_percent=cpu, memory_percent=memory, sampled_at=NOW - age
    )


NEVER_SCALED = ServiceState()


class TestLinear:
    @pytest.mark.parametrize(
        ("name", "observation", "desired", "action", "metric"),
        [
            ("cpu above its up threshold", observe(3, cpu=75, memory=50), 4, "scale_up", "cpu"),
            ("memory above its up threshold", observe(3, cpu=50, memory=85), 4, "scale_up", "memory"),
            ("the metric furthest above decides", observe(3, cpu=90, memory=85), 4, "scale_up", "cpu"),
            ("up on cpu with memory missing", observe(3, cpu=75), 4, "scale_up", "cpu"),
            ("both low", observe(3, cpu=10, memory=30), 2, "scale_down", "memory"),
            ("cpu low, memory between", observe(3, cpu=10, memory=60), 3, "none", None),
            ("exactly at the up threshold", observe(3, cpu=70, memory=50), 3, "none", None),
            ("exactly at the down thresholds", observe(3, cpu=20, memory=40), 3, "none", None),
            ("cpu low, memory missing", observe(3, cpu=10), 3, "none", None),
            ("no metrics at all", observe(3), 3, "none", None),
        ],
    )
    def test_thresholds(self, name, observation, desired, action, metric):
        decision = decide(observation, POLICY, NEVER_SCALED, NOW)
        assert decision.desired_replicas == desired, name
        assert decision.reason.action == action
        assert decision.reason.metric == metric
        assert decision.reason.algorithm == "linear"

    def test_reason_gives_value_threshold_and_recommendation(self):
        reason = decide(observe(3, cpu=75.123, memory=50), POLICY, NEVER_SCALED, NOW).reason
        assert (reason.value, reason.threshold, reason.recommendation) == (75.12, 70, 4)
        assert reason.metrics == {"cpu": 75.12, "memory": 50}
        assert reason.message == "cpu 75.1% > 70%"


class TestStaleness:
    def test_stale_metrics_count_as_missing(self):
        decision = decide(
            observe(3, cpu=5, memory=5, age=POLICY.metrics_max_age + 1), POLICY, NEVER_SCALED, NOW
        )
        assert decision.desired_replicas == 3
        assert decision.reason.metrics == {}
        assert "no fresh metrics" in decision.reason.message

    def test_never_sampled_holds(self):
        observation = Observation(current_replicas=3, cpu_percent=95, memory_percent=95, sampled_at=None)
        assert decide(observation, POLICY, NEVER_SCALED, NOW).desired_replicas == 3


class TestBounds:
    @pytest.mark.parametrize(
        ("observation", "desired", "limit"),
        [
            (observe(10, cpu=95, memory=50), 10, "max_replicas"),
            (observe(2, cpu=5, memory=5), 2, "min_replicas"),
            (observe(1, cpu=50, memory=50), 2, "min_replicas"),
            (observe(14, cpu=50, memory=50), 10, "max_replicas"),
        ],
    )
    def test_bounds(self, observation, desired, limit):
        decision = decide(observation, POLICY, NEVER_SCALED, NOW)
        assert decision.desired_replicas == desired
        assert decision.reason.limited_by == limit

    def test_a_service_outside_its_bounds_is_corrected_despite_the_cooldown(self):
        decision = decide(observe(1, cpu=50, memory=50), POLICY, ServiceState(last_scaled_at=NOW - 1), NOW)
        assert decision.desired_replicas == 2


class TestCooldown:
    def test_holds_a_change_within_the_cooldown(self):
        decision = decide(observe(3, cpu=95, memory=50), POLICY, ServiceState(last_scaled_at=NOW - 100), NOW)
        assert decision.desired_replicas == 3
        assert decision.reason.limited_by == "cooldown"
        assert decision.reason.cooldown_remaining == 20
        assert decision.reason.recommendation == 4

    def test_allows_a_change_once_it_has_passed(self):
        decision = decide(observe(3, cpu=95, memory=50), POLICY, ServiceState(last_scaled_at=NOW - 120), NOW)
        assert decision.desired_replicas == 4

    def test_applies_to_scale_down_too(self):
        decision = decide(observe(3, cpu=5, memory=5), POLICY, ServiceState(last_scaled_at=NOW - 10), NOW)
        assert decision.desired_replicas == 3


class TestPaused:
    def test_a_service_scaled_to_zero_is_left_alone(self):
        decision = decide(observe(0, cpu=95, memory=95), POLICY, NEVER_SCALED, NOW)
        assert decision.desired_replicas == 0
        assert decision.reason.limited_by == "paused"


percent = st.one_of(st.none(), st.floats(min_value=0, max_value=400))


class TestProperties:
    @given(
        replicas=st.integers(min_value=1, max_value=30),
        cpu=percent,
        memory=percent,
        age=st.floats(min_value=0, max_value=500),
        since_change=st.one_of(st.none(), st.floats(min_value=0, max_value=1000)),
        minimum=st.integers(min_value=1, max_value=10),
        extra=st.integers(min_value=0, max_value=10),
    )
    def test_never_outside_bounds_and_never_down_on_missing_data(
        self, replicas, cpu, memory, age, since_change, minimum, extra
    ):
        policy = replace(POLICY, min_replicas=minimum, max_replicas=minimum + extra)
        state = ServiceState(None if since_change is None else NOW - since_change)
        observation = observe(replicas, cpu=cpu, memory=memory, age=age)
        decision = decide(observation, policy, state, NOW)
        inside = policy.min_replicas <= replicas <= policy.max_replicas
        if inside or decision.desired_replicas != replicas:
            assert policy.min_replicas <= decision.desired_replicas <= policy.max_replicas
        missing = cpu is None or memory is None or age > policy.metrics_max_age
        if missing and inside:
            assert decision.desired_replicas >= replicas
        assert abs(decision.desired_replicas - replicas) <= 1 or not inside
