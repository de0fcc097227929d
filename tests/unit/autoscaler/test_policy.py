import pytest

from autoscaler.core import Thresholds
from autoscaler.core.model import AdmissionLimit, RateLimit
from autoscaler.policy import POLICY_VARIABLES, parse_policy, service_policy
from autoscaler.settings import load
from common.config import ConfigError, read_bool, read_float, read_int
from tests.unit.autoscaler.core.policies import CONCURRENCY_2, OPEN, SHIPPED, policy
from tests.unit.paths import ROOT


class TestReadNumbers:
    def test_empty_value_counts_as_unset(self):
        """A variable set to blanks is unset: the default applies."""
        assert read_float({"X": "  "}, "X", 3.0, minimum=0, maximum=10) == 3.0

    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            ("abc", "not a number"),
            ("nan", "not a number"),
            ("inf", "not a number"),
            ("1_000", "not a number"),
            ("\u0661\u0662", "not a number"),  # Arabic-Indic digits, which float() accepts
            ("0x10", "not a number"),
            ("-1", "must be at least 0"),
            ("11", "must be at most 10"),
            ("1e400", "must be at most 10"),
        ],
    )
    def test_only_plain_ascii_numbers_within_bounds(self, value, problem):
        """Only plain ASCII decimals within the bounds are read; each refusal names the variable, the value
        and why."""
        with pytest.raises(ConfigError) as caught:
            read_float({"X": value}, "X", 1.0, minimum=0, maximum=10)
        assert (caught.value.name, caught.value.value, caught.value.problem) == ("X", value, problem)

    @pytest.mark.parametrize(("value", "expected"), [("7", 7.0), ("+2.5", 2.5), (".5", 0.5), ("1e1", 10.0)])
    def test_plain_numbers(self, value, expected):
        """Signs, decimals and exponents as people write them are read."""
        assert read_float({"X": value}, "X", 1.0, minimum=0, maximum=10) == expected

    @pytest.mark.parametrize("value", ["\uff13", "3.0", "99999999999999999999"])
    def test_whole_numbers_are_ascii_digits(self, value):
        """A whole number is ASCII digits only: no fraction, separator or other script's digits."""
        with pytest.raises(ConfigError):
            read_int({"X": value}, "X", 1, minimum=0, maximum=10**6)

    @pytest.mark.parametrize(
        ("value", "expected"), [("true", True), ("Yes", True), ("0", False), ("off", False)]
    )
    def test_booleans(self, value, expected):
        """true/yes/1/on and false/no/0/off, in any case, are booleans."""
        assert read_bool({"X": value}, "X", default=not expected) is expected

    def test_a_word_that_is_not_a_boolean_is_refused(self):
        """Any other word is refused rather than taken as false."""
        with pytest.raises(ConfigError):
            read_bool({"X": "maybe"}, "X", default=False)


class TestParsePolicy:
    def test_cooldown_period_is_the_way_down_and_the_way_up_has_none_unless_set(self):
        """COOLDOWN_PERIOD is the scale-down cooldown; a scale-up cooldown is only one set explicitly."""
        chosen = parse_policy({"COOLDOWN_PERIOD": "45"})
        assert (chosen.behaviour.scale_up_cooldown, chosen.behaviour.scale_down_cooldown) == (0, 45)
        explicit = parse_policy({"COOLDOWN_PERIOD": "45", "SCALE_UP_COOLDOWN": "20"})
        assert explicit.behaviour.scale_up_cooldown == 20

    def test_the_defaults_are_those_the_core_tests_build_without_the_parser(self):
        """The core tests build their policies directly; these are what the variables give, kept in step."""
        assert parse_policy({}) == SHIPPED
        opened = {
            "MIN_REPLICAS": "1",
            "MAX_REPLICAS": "50",
            "COOLDOWN_PERIOD": "0",
            "SCALE_DOWN_STABILIZATION": "0",
            "SCALE_UP_LIMIT_REPLICAS": "100",
            "SCALE_DOWN_LIMIT_REPLICAS": "100",
            "SCALE_DOWN_LIMIT_PERCENT": "100",
        }
        assert parse_policy(opened) == OPEN
        assert parse_policy({**opened, "TARGET_CONCURRENCY_PER_REPLICA": "2"}) == policy(**CONCURRENCY_2)

    def test_defaults_are_the_seed_systems(self):
        """Without variables the policy is the replaced system's: linear, 2 to 10, its thresholds."""
        policy = parse_policy({})
        assert (policy.algorithm, policy.min_replicas, policy.max_replicas) == ("linear", 2, 10)
        assert (policy.metrics, policy.metrics_by_default) == (("cpu", "memory", "latency", "errors"), True)
        assert policy.thresholds.cpu == Thresholds(up=70, down=20)
        assert policy.thresholds.memory == Thresholds(up=80, down=40)
        assert policy.thresholds.latency == Thresholds(up=1000, down=200)
        assert policy.thresholds.errors == Thresholds(up=5, down=None)
        assert (policy.latency_percentile, policy.min_requests, policy.thresholds.rps) == (95, 20, None)

    def test_a_requests_per_replica_target_adds_rps_to_the_default_metrics(self):
        """A requests-per-replica target adds rps to the default metrics, down at half the target."""
        policy = parse_policy({"TARGET_RPS_PER_REPLICA": "40"})
        assert policy.metrics == ("cpu", "memory", "latency", "errors", "rps")
        assert policy.thresholds.rps == Thresholds(up=40, down=20)

    def test_metrics_named_are_not_the_default(self):
        """Metrics an operator names are exactly those, and apply whether or not an entry point is in
        front."""
        policy = parse_policy({"SCALING_METRICS": "latency, cpu"})
        assert (policy.metrics, policy.metrics_by_default) == (("latency", "cpu"), False)

    def test_concurrency_without_a_target_is_refused(self):
        """Concurrency named without its target is refused: there is nothing to compare it with."""
        with pytest.raises(ConfigError) as raised:
            parse_policy({"SCALING_METRICS": "cpu,concurrency"})
        assert raised.value.problem == "concurrency needs TARGET_CONCURRENCY_PER_REPLICA"

    def test_rps_without_a_target_is_refused(self):
        """rps named without its target is refused, naming SCALING_METRICS."""
        with pytest.raises(ConfigError) as raised:
            parse_policy({"SCALING_METRICS": "cpu,rps"})
        assert (raised.value.name, raised.value.problem) == (
            "SCALING_METRICS",
            "rps needs TARGET_RPS_PER_REPLICA",
        )

    def test_behaviour_defaults_are_hpas(self):
        """Cooldowns, stabilization, rates and tolerance default to the HPA's behaviour."""
        behaviour = parse_policy({}).behaviour
        # No scale-up cooldown, as HPA: a scale-up waits for the replicas it added instead.
        assert (behaviour.scale_up_cooldown, behaviour.scale_down_cooldown) == (0, 120)
        assert behaviour.scale_down_stabilization == 300
        assert behaviour.scale_up_rate == RateLimit(replicas=4, percent=100, period=30)
        assert behaviour.scale_down_rate == RateLimit(replicas=2, percent=50, period=60)
        assert behaviour.tolerance == 0.1

    def test_generic_thresholds_apply_where_a_metric_has_none_of_its_own(self):
        """SCALE_UP_THRESHOLD and SCALE_DOWN_THRESHOLD apply to CPU and memory where no own threshold is
        set."""
        policy = parse_policy(
            {"SCALE_UP_THRESHOLD": "60", "SCALE_DOWN_THRESHOLD": "10", "MEMORY_SCALE_UP_THRESHOLD": "90"}
        )
        assert policy.thresholds.cpu == Thresholds(up=60, down=10)
        assert policy.thresholds.memory == Thresholds(up=90, down=10)

    @pytest.mark.parametrize(
        ("environment", "variable", "value"),
        [
            ({"MIN_REPLICAS": "5", "MAX_REPLICAS": "3"}, "MIN_REPLICAS", "5"),
            ({"MIN_REPLICAS": "two"}, "MIN_REPLICAS", "two"),
            ({"MAX_REPLICAS": "0"}, "MAX_REPLICAS", "0"),
            ({"COOLDOWN_PERIOD": "-5"}, "COOLDOWN_PERIOD", "-5"),
            ({"SCALING_ALGORITHM": "magic"}, "SCALING_ALGORITHM", "magic"),
            ({"CPU_SCALE_UP_THRESHOLD": "150"}, "CPU_SCALE_UP_THRESHOLD", "150"),
            ({"CPU_SCALE_DOWN_THRESHOLD": "75"}, "CPU_SCALE_DOWN_THRESHOLD", "75"),
            ({"SCALING_METRICS": "cpu,disk"}, "SCALING_METRICS", "cpu,disk"),
            ({"RESPONSE_TIME_SCALE_DOWN_MS": "2000"}, "RESPONSE_TIME_SCALE_DOWN_MS", "2000"),
            ({"SCALE_UP_COOLDOWN": "-1"}, "SCALE_UP_COOLDOWN", "-1"),
            ({"TARGET_TOLERANCE": "2"}, "TARGET_TOLERANCE", "2"),
        ],
    )
    def test_bad_values_name_the_variable_and_value(self, environment, variable, value):
        """Each bad or contradictory value is refused naming the variable and the value."""
        with pytest.raises(ConfigError) as caught:
            parse_policy(environment)
        assert (caught.value.name, caught.value.value) == (variable, value)


class TestServicePolicy:
    def test_labels_override_the_environment(self):
        """A service's autoscaler.* labels override the environment; other labels are ignored."""
        policy = service_policy(
            {"MAX_REPLICAS": "10"},
            {
                "autoscaler.enable": "true",
                "autoscaler.max_replicas": "4",
                "autoscaler.cpu_scale_up_threshold": "50",
                "com.example.other": "x",
            },
        )
        assert policy.max_replicas == 4
        assert policy.thresholds.cpu.up == 50

    def test_the_concurrency_target_has_a_short_label(self):
        """autoscaler.target_concurrency sets TARGET_CONCURRENCY_PER_REPLICA; a bad value names that label."""
        policy = service_policy({}, {"autoscaler.target_concurrency": "3"})
        assert policy.thresholds.concurrency == Thresholds(up=3, down=1.5)
        assert "concurrency" in policy.metrics
        with pytest.raises(ConfigError) as caught:
            service_policy({}, {"autoscaler.target_concurrency": "0"})
        assert caught.value.name == "autoscaler.target_concurrency"
        with pytest.raises(ConfigError):
            service_policy({}, {"autoscaler.target_concurrency_per_replica": "3"})

    def test_a_bad_label_is_named_by_the_label(self):
        """A label whose value breaks the policy is named as the label, with the value it conflicts with."""
        with pytest.raises(ConfigError) as caught:
            service_policy({}, {"autoscaler.min_replicas": "20"})
        assert caught.value.name == "autoscaler.min_replicas"
        assert "MAX_REPLICAS=10" in caught.value.problem

    def test_an_unknown_label_is_an_error(self):
        """A misspelt autoscaler.* label is refused rather than silently ignored."""
        with pytest.raises(ConfigError, match="unknown autoscaler label"):
            service_policy({}, {"autoscaler.max_replica": "4"})

    def test_an_environment_error_keeps_the_variable_name(self):
        """A contradiction that is the environment's own is named by its variable, not by a label."""
        with pytest.raises(ConfigError) as caught:
            service_policy(
                {"MIN_REPLICAS": "9", "MAX_REPLICAS": "5"}, {"autoscaler.cpu_scale_up_threshold": "60"}
            )
        assert caught.value.name == "MIN_REPLICAS"

    @pytest.mark.parametrize(
        ("environment", "labels", "touched", "blamed"),
        [
            (
                {},
                {"autoscaler.max_replicas": "1"},
                None,
                ("autoscaler.max_replicas", "1", "is less than MIN_REPLICAS=2"),
            ),
            (
                {"MIN_REPLICAS": "9"},
                {"autoscaler.max_replicas": "5"},
                None,
                ("autoscaler.max_replicas", "5", "is less than MIN_REPLICAS=9"),
            ),
            (
                {},
                {"autoscaler.min_replicas": "12"},
                None,
                ("autoscaler.min_replicas", "12", "is greater than MAX_REPLICAS=10"),
            ),
            # Both are labels: the one changed since the last check is blamed.
            (
                {},
                {"autoscaler.min_replicas": "2", "autoscaler.max_replicas": "1"},
                {"autoscaler.max_replicas"},
                ("autoscaler.max_replicas", "1", "is less than MIN_REPLICAS=2"),
            ),
            (
                {},
                {"autoscaler.cpu_scale_up_threshold": "10"},
                None,
                (
                    "autoscaler.cpu_scale_up_threshold",
                    "10",
                    "must be above CPU_SCALE_DOWN_THRESHOLD=20, or the service would flap",
                ),
            ),
        ],
    )
    def test_a_contradiction_blames_the_value_the_operator_touched(
        self, environment, labels, touched, blamed
    ):
        """Of two values that contradict each other, the one the operator changed last is blamed."""
        with pytest.raises(ConfigError) as caught:
            service_policy(environment, {"autoscaler.enable": "true", **labels}, touched)
        assert (caught.value.name, caught.value.value, caught.value.problem) == blamed

    @pytest.mark.parametrize(
        ("label", "value"),
        [
            ("autoscaler.predictive_season", "1e13"),
            ("autoscaler.max_replicas", "1000000"),
            ("autoscaler.scale_down_stabilization", "90000"),
            ("autoscaler.check_interval", "5"),
            ("autoscaler.paused", "perhaps"),
        ],
    )
    def test_every_label_is_bounded(self, label, value):
        """Every numeric label has the bounds of its variable."""
        with pytest.raises(ConfigError) as caught:
            service_policy({}, {label: value})
        assert caught.value.name == label

    def test_a_replica_capacity_label_sets_the_entry_point_limit(self):
        """autoscaler.replica_rps gives the service a rate limit at the entry point; none without it."""
        assert service_policy({}, {}).admission is None
        chosen = service_policy({"RATE_LIMIT_BURST_SECONDS": "2"}, {"autoscaler.replica_rps": "25"})
        assert chosen.admission == AdmissionLimit(replica_rps=25, burst_seconds=2)

    @pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "lots", "1e10"])
    def test_a_bad_replica_capacity_is_named_by_its_label(self, value):
        """A replica capacity that is not a positive number within bounds is named by its label."""
        with pytest.raises(ConfigError) as caught:
            service_policy({}, {"autoscaler.replica_rps": value})
        assert (caught.value.name, caught.value.value) == ("autoscaler.replica_rps", value)

    def test_pause_and_dry_run_labels(self):
        """Pause and dry run can be set per service by label, and dry run for all by the environment."""
        chosen = service_policy({}, {"autoscaler.paused": "true", "autoscaler.dry_run": "yes"})
        assert (chosen.paused, chosen.dry_run) == (True, True)
        assert service_policy({"DRY_RUN": "true"}, {}).dry_run


class TestLoadSettings:
    def test_defaults(self):
        """The daemon's defaults: a check every 30 s, collectors at tasks.metrics-collector, port 8080."""
        settings = load({})
        assert settings.loop.check_interval == 30
        assert settings.collectors.address == "tasks.metrics-collector"
        assert settings.server.port == 8080

    @pytest.mark.parametrize("value", ["0", "nan", "soon"])
    def test_the_surge_window_is_a_positive_number_of_seconds(self, value):
        """SURGE_WINDOW defaults to 6 s and refuses anything but a positive number within bounds."""
        assert load({}).entry_point.surge_window == 6
        with pytest.raises(ConfigError) as caught:
            load({"SURGE_WINDOW": value})
        assert caught.value.name == "SURGE_WINDOW"

    @pytest.mark.parametrize("value", ["-1", "0", "soon"])
    def test_check_interval_must_be_positive(self, value):
        """CHECK_INTERVAL refuses zero, negatives and what is not a number."""
        with pytest.raises(ConfigError) as caught:
            load({"CHECK_INTERVAL": value})
        assert caught.value.name == "CHECK_INTERVAL"


class TestStackFile:
    def test_every_policy_variable_reaches_the_autoscaler(self):
        """stack.yml passes every policy variable to the autoscaler, so the README's table holds for a
        deploy."""
        stack = (ROOT / "stack.yml").read_text()
        missing = [
            name for name in (*POLICY_VARIABLES, "CHECK_INTERVAL") if f"{name}: ${{{name}:-" not in stack
        ]
        assert missing == []
