from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.core import Observation, ServiceState, decide, record_change
from autoscaler.core.algorithms import far_above, forecast_horizon
from autoscaler.policy import parse_policy

NOW = 1_000_000.0
# Limits that are not under test are opened wide, so that each test sees one rule.
OPEN = {
    "COOLDOWN_PERIOD": "0",
    "SCALE_DOWN_STABILIZATION": "0",
    "SCALE_UP_LIMIT_REPLICAS": "100",
    "SCALE_DOWN_LIMIT_REPLICAS": "100",
    "SCALE_DOWN_LIMIT_PERCENT": "100",
}


def policy(algorithm="linear", **variables):
    return parse_policy(
        {"SCALING_ALGORITHM": algorithm, "MIN_REPLICAS": "1", "MAX_REPLICAS": "50", **OPEN, **variables}
    )


def observe(replicas, cpu=None, memory=None, age=5.0, ready=None, latency=None, errors=None):
    return Observation(
        current_replicas=replicas,
        ready_replicas=ready,
        cpu_percent=cpu,
        memory_percent=memory,
        latency_ms=latency,
        error_percent=errors,
        sampled_at=NOW - age,
    )


def decide_once(observation, chosen, state=None, now=NOW):
    return decide(observation, chosen, state or ServiceState(), now)


class TestLinear:
    @pytest.mark.parametrize(
        ("name", "observation", "desired", "metric"),
        [
            ("cpu above its up threshold", observe(3, cpu=75, memory=50), 4, "cpu"),
            ("memory above its up threshold", observe(3, cpu=50, memory=85), 4, "memory"),
            ("the metric furthest above decides", observe(3, cpu=90, memory=85), 4, "cpu"),
            ("up on cpu with memory missing", observe(3, cpu=75), 4, "cpu"),
            ("both low", observe(3, cpu=10, memory=30), 2, "memory"),
            ("cpu low, memory between", observe(3, cpu=10, memory=60), 3, None),
            ("exactly at the up threshold", observe(3, cpu=70, memory=50), 3, None),
            ("exactly at the down thresholds", observe(3, cpu=20, memory=40), 3, None),
            ("cpu low, memory missing: held", observe(3, cpu=10), 3, "cpu"),
            ("no metrics at all", observe(3), 3, None),
        ],
    )
    def test_thresholds(self, name, observation, desired, metric):
        decision = decide_once(observation, policy())
        assert decision.desired_replicas == desired, name
        assert decision.reason.metric == metric

    @pytest.mark.parametrize(
        ("observation", "desired"),
        [
            (observe(3, cpu=50, memory=50, latency=1500), 4),
            (observe(3, cpu=50, memory=50, errors=7), 4),
            (observe(3, cpu=10, memory=10, latency=150, errors=1), 2),
            (observe(3, cpu=10, memory=10, latency=500), 3),
        ],
    )
    def test_latency_and_errors_when_scaled_on(self, observation, desired):
        chosen = policy(SCALING_METRICS="cpu,memory,latency,errors")
        assert decide_once(observation, chosen).desired_replicas == desired

    def test_reason_gives_value_threshold_and_recommendation(self):
        reason = decide_once(observe(3, cpu=75.123, memory=50), policy()).reason
        assert (reason.action, reason.value, reason.threshold, reason.recommendation) == (
            "scale_up",
            75.12,
            70,
            4,
        )
        assert reason.metrics == {"cpu": 75.12, "memory": 50}
        assert reason.message == "cpu 75.1% > 70%"
        assert reason.limited_by == ()


class TestExponential:
    @pytest.mark.parametrize(
        ("cpu", "desired"),
        [(70.1, 16), (77.5, 18), (85, 20), (100, 20), (50, 10), (10, 9)],
    )
    def test_multiplies_by_1_5_near_the_threshold_up_to_2_far_above(self, cpu, desired):
        # 10 replicas; CPU up 70: far above is 85 (halfway to 100); memory quiet.
        assert decide_once(observe(10, cpu=cpu, memory=10), policy("exponential")).desired_replicas == desired

    def test_far_above(self):
        assert far_above("cpu", 70) == 85
        assert far_above("latency", 1000) == 2000

    def test_at_least_one_more(self):
        assert decide_once(observe(1, cpu=71, memory=10), policy("exponential")).desired_replicas == 2


class TestTarget:
    @pytest.mark.parametrize(
        ("observation", "desired", "name"),
        [
            (observe(4, cpu=105, memory=10), 6, "ceil(4 × 105/70)"),
            (observe(4, cpu=76, memory=10), 4, "within the 10 % tolerance"),
            (observe(4, cpu=64, memory=10), 4, "within the 10 % tolerance below"),
            (observe(4, cpu=35, memory=10), 2, "ceil(4 × 35/70)"),
            (observe(4, cpu=35, memory=100), 5, "the highest metric wins: memory 100/80"),
            (observe(6, cpu=140, memory=10, ready=4), 8, "only ready replicas carry the load"),
            (observe(6, cpu=80, memory=10, ready=4), 6, "starting replicas are not dropped on the way up"),
        ],
    )
    def test_proportional_rule(self, observation, desired, name):
        assert decide_once(observation, policy("target")).desired_replicas == desired, name


class TestPredictive:
    def feed(self, chosen, loads, replicas=4, step=30.0):
        """Observe a series of loads (replicas' worth of CPU); the decisions at every step."""
        state, decisions = ServiceState(), []
        for index, load in enumerate(loads):
            at = NOW + index * step
            cpu = 100 * load / replicas
            observation = Observation(
                current_replicas=replicas, cpu_percent=cpu, memory_percent=10, sampled_at=at
            )
            decisions.append(decide(observation, chosen, state, at))
            state = decisions[-1].state
        return decisions

    def test_falls_back_to_target_while_warming_up(self):
        first = self.feed(policy("predictive"), [2.0])[0]
        assert "warming up" in first.reason.message
        assert (
            first.desired_replicas
            == decide_once(observe(4, cpu=50, memory=10), policy("target")).desired_replicas
        )

    def test_provides_ahead_of_a_steady_rise(self):
        rising = [1.0 + 0.05 * step for step in range(60)]  # +0.1 replica of CPU a minute
        predicted = self.feed(policy("predictive"), rising)[-1]
        reactive = self.feed(policy("target"), rising)[-1]
        assert predicted.reason.forecast > rising[-1]
        assert predicted.desired_replicas > reactive.desired_replicas

    def test_never_below_the_reactive_rule(self):
        falling = [4.0 - 0.05 * step for step in range(60)]
        for predicted, reactive in zip(
            self.feed(policy("predictive"), falling), self.feed(policy("target"), falling), strict=True
        ):
            assert predicted.reason.recommendation >= reactive.reason.recommendation

    def test_falls_back_when_forecasts_have_been_bad(self):
        erratic = [1.0 if step % 2 else 3.0 for step in range(80)]
        last = self.feed(policy("predictive", PREDICTIVE_MAX_ERROR="0.1"), erratic)[-1]
        assert "reactive" in last.reason.message

    def test_horizon_covers_startup_and_the_next_chance_to_act(self):
        chosen = policy("predictive", REPLICA_STARTUP_TIME="60", CHECK_INTERVAL="30", SCALE_UP_COOLDOWN="120")
        assert forecast_horizon(chosen) == 180


class TestStaleness:
    def test_stale_metrics_count_as_missing(self):
        chosen = policy()
        decision = decide_once(observe(3, cpu=5, memory=5, age=chosen.metrics_max_age + 1), chosen)
        assert decision.desired_replicas == 3
        assert decision.reason.metrics == {}

    @pytest.mark.parametrize("algorithm", ["linear", "exponential", "target", "predictive"])
    def test_a_missing_metric_blocks_scale_down(self, algorithm):
        decision = decide_once(observe(6, cpu=5), policy(algorithm))
        assert decision.desired_replicas == 6
        assert decision.reason.limited_by in {("missing_metrics",), ()}

    @pytest.mark.parametrize("algorithm", ["linear", "exponential", "target", "predictive"])
    def test_a_present_metric_may_still_scale_up(self, algorithm):
        assert decide_once(observe(3, cpu=95), policy(algorithm)).desired_replicas > 3


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
        decision = decide_once(observation, policy(MIN_REPLICAS="2", MAX_REPLICAS="10"))
        assert decision.desired_replicas == desired
        assert decision.reason.limited_by == (limit,)

    def test_a_service_outside_its_bounds_is_corrected_despite_the_cooldown(self):
        chosen = policy(MIN_REPLICAS="2", COOLDOWN_PERIOD="120")
        decision = decide_once(observe(1, cpu=50, memory=50), chosen, ServiceState(last_scaled_at=NOW - 1))
        assert decision.desired_replicas == 2


class TestCooldown:
    @pytest.mark.parametrize(
        ("observation", "since", "desired", "remaining"),
        [
            (observe(3, cpu=95, memory=50), 100, 3, 20),
            (observe(3, cpu=95, memory=50), 120, 4, None),
            (observe(3, cpu=5, memory=5), 10, 3, 290),
            (observe(3, cpu=5, memory=5), 300, 2, None),
        ],
    )
    def test_separate_up_and_down_cooldowns(self, observation, since, desired, remaining):
        chosen = policy(SCALE_UP_COOLDOWN="120", SCALE_DOWN_COOLDOWN="300")
        decision = decide_once(observation, chosen, ServiceState(last_scaled_at=NOW - since))
        assert decision.desired_replicas == desired
        assert decision.reason.cooldown_remaining == remaining

    def test_cooldown_period_sets_both(self):
        chosen = parse_policy({"COOLDOWN_PERIOD": "45"})
        assert (chosen.behaviour.scale_up_cooldown, chosen.behaviour.scale_down_cooldown) == (45, 45)


class TestStabilization:
    def test_scale_down_goes_only_to_the_highest_recent_recommendation(self):
        chosen = policy(SCALE_DOWN_STABILIZATION="300")
        first = decide(observe(6, cpu=60, memory=10, age=0), chosen, ServiceState(), NOW)
        assert first.desired_replicas == 6
        # 2 minutes later CPU is low and linear asks for 5, but 6 was asked for within 5 minutes.
        low = decide(
            Observation(6, cpu_percent=10, memory_percent=10, sampled_at=NOW + 120),
            chosen,
            first.state,
            NOW + 120,
        )
        assert low.desired_replicas == 6
        assert low.reason.limited_by == ("stabilization",)
        later = decide(
            Observation(6, cpu_percent=10, memory_percent=10, sampled_at=NOW + 301),
            chosen,
            low.state,
            NOW + 301,
        )
        assert later.desired_replicas < 6

    def test_scale_up_is_not_stabilized(self):
        chosen = policy("target", SCALE_DOWN_STABILIZATION="300")
        state = decide(observe(4, cpu=10, memory=10, age=0), chosen, ServiceState(), NOW).state
        assert (
            decide(
                Observation(4, cpu_percent=140, memory_percent=10, sampled_at=NOW + 30),
                chosen,
                state,
                NOW + 30,
            ).desired_replicas
            == 8
        )


class TestRateLimits:
    @pytest.mark.parametrize(
        ("current", "cpu", "desired"),
        [
            (2, 700, 6),  # max(100 %, 4 replicas): 2 + 4
            (10, 700, 20),  # 10 + 100 %
        ],
    )
    def test_scale_up_by_the_larger_of_100_percent_and_4(self, current, cpu, desired):
        chosen = policy("target", SCALE_UP_LIMIT_REPLICAS="4", SCALE_UP_LIMIT_PERCENT="100")
        decision = decide_once(observe(current, cpu=cpu, memory=10), chosen)
        assert decision.desired_replicas == desired
        assert decision.reason.limited_by == ("rate_limit",)

    @pytest.mark.parametrize(("current", "desired"), [(10, 8), (3, 2)])
    def test_scale_down_by_the_smaller_of_50_percent_and_2(self, current, desired):
        chosen = policy("target", SCALE_DOWN_LIMIT_REPLICAS="2", SCALE_DOWN_LIMIT_PERCENT="50")
        assert decide_once(observe(current, cpu=1, memory=1), chosen).desired_replicas == desired

    def test_changes_within_the_period_count(self):
        chosen = policy("target", SCALE_UP_LIMIT_REPLICAS="4", SCALE_UP_LIMIT_PERCENT="100")
        state = record_change(ServiceState(replicas=2), NOW - 10, 2, 6)  # 2 → 6 ten seconds ago: began at 2
        assert decide_once(observe(6, cpu=700, memory=10), chosen, state).desired_replicas == 6
        assert decide_once(observe(6, cpu=700, memory=10), chosen, state, NOW + 25).desired_replicas == 12


class TestPaused:
    @pytest.mark.parametrize("algorithm", ["linear", "exponential", "target", "predictive"])
    def test_a_service_scaled_to_zero_is_left_alone(self, algorithm):
        decision = decide_once(observe(0, cpu=95, memory=95), policy(algorithm))
        assert decision.desired_replicas == 0
        assert decision.reason.limited_by == ("paused",)


percent = st.one_of(st.none(), st.floats(min_value=0, max_value=400))


class TestProperties:
    @settings(max_examples=300)
    @given(
        algorithm=st.sampled_from(["linear", "exponential", "target", "predictive"]),
        replicas=st.integers(min_value=1, max_value=30),
        cpu=percent,
        memory=percent,
        age=st.floats(min_value=0, max_value=500),
        since_change=st.one_of(st.none(), st.floats(min_value=0, max_value=1000)),
        minimum=st.integers(min_value=1, max_value=10),
        extra=st.integers(min_value=0, max_value=10),
    )
    def test_never_outside_bounds_and_never_down_on_missing_data(
        self, algorithm, replicas, cpu, memory, age, since_change, minimum, extra
    ):
        chosen = replace(
            parse_policy({"SCALING_ALGORITHM": algorithm}), min_replicas=minimum, max_replicas=minimum + extra
        )
        state = ServiceState(last_scaled_at=None if since_change is None else NOW - since_change)
        decision = decide(observe(replicas, cpu=cpu, memory=memory, age=age), chosen, state, NOW)
        assert chosen.min_replicas <= decision.desired_replicas <= chosen.max_replicas
        inside = chosen.min_replicas <= replicas <= chosen.max_replicas
        missing = cpu is None or memory is None or age > chosen.metrics_max_age
        if missing and inside:
            assert decision.desired_replicas >= replicas
