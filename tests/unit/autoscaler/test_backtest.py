import asyncio
import inspect
import json
import math
from datetime import UTC, datetime
from typing import ClassVar

import httpx
import pytest

from autoscaler import core
from autoscaler.backtest import cli
from autoscaler.backtest.elasticity import Elasticity, elastic_speedup, elasticity
from autoscaler.backtest.replay import Model, demand_for, replay, static_supply
from autoscaler.backtest.trace import TraceError, from_rows, parse_time, read
from autoscaler.daemon import Autoscaler
from autoscaler.policy import parse_policy
from autoscaler.schedules import Schedule
from autoscaler.settings import load
from autoscaler.swarm import Swarm
from tests.unit.fakes import FakeDockerApi, collector_transport, resolver_for, service
from tests.unit.paths import ROOT

ALGORITHMS = ["linear", "exponential", "target", "predictive"]


def minutes(counts, start="2000-01-01 00:00:00"):
    first = parse_time(start)
    return [
        (datetime.fromtimestamp(first + 60 * i, UTC).strftime("%Y-%m-%d %H:%M:%S"), str(c))
        for i, c in enumerate(counts)
    ]


class TestElasticity:
    def test_formulas_on_a_series_worked_by_hand(self):
        """The SPEC elasticity scores match a short series worked out by hand."""
        # demand 2 4 4 0 ; supply 2 2 5 1 ; 60 s steps (T = 4 min)
        scores = elasticity([2, 4, 4, 0], [2, 2, 5, 1], 60)
        assert scores.under_accuracy == pytest.approx(100 * (0 + 2 / 4 + 0 + 0) / 4)  # 12.5
        assert scores.over_accuracy == pytest.approx(100 * (0 + 0 + 1 / 4 + 0) / 4)  # 6.25 (d = 0 adds 0)
        assert scores.under_timeshare == pytest.approx(100 * 1 / 4)  # step 2
        assert scores.over_timeshare == pytest.approx(100 * 2 / 4)  # steps 3 and 4
        # Σ|Δs| = 0 + 3 + 4 = 7, Σ|Δd| = 2 + 0 + 4 = 6, over 4 minutes
        assert scores.jitter_per_min == pytest.approx((7 - 6) / 4)
        # signs of (Δs, Δd): (0, +), (+, 0), (−, −) → 2 of 3 differ
        assert scores.instability == pytest.approx(100 * 2 / 3)

    def test_speedup_is_the_geometric_mean_of_the_static_ratios(self):
        """The elastic speed-up is the geometric mean of the ratios to a static supply; a zero score counts
        as its floor."""
        static = Elasticity(10, 40, 20, 80, 0, 0)
        result = Elasticity(5, 20, 10, 40, 0, 0)
        assert elastic_speedup(result, static) == pytest.approx(2.0)
        assert elastic_speedup(Elasticity(0, 20, 10, 40, 0, 0), static) == pytest.approx(
            (10 / 0.01 * 2 * 2 * 2) ** 0.25
        )

    def test_static_supply_is_the_ceiling_of_the_mean_demand(self):
        """The static baseline supplies the ceiling of the mean demand at every step."""
        assert static_supply([1, 2, 2]) == [2, 2, 2]


class TestTrace:
    def test_missing_steps_count_zero_and_the_window_cuts(self):
        """A minute missing from the trace counts zero, and the window cuts at its bounds."""
        rows = minutes([10, 20, 30, 40, 50])
        del rows[2]
        trace = from_rows(rows, start="2000-01-01 00:01:00", end="2000-01-01 00:04:00")
        assert trace.step == 60
        assert trace.counts == [20, 0, 40]

    def test_a_window_outside_the_trace_is_refused(self):
        """A window outside the trace is refused rather than an empty replay."""
        with pytest.raises(TraceError):
            from_rows(minutes([1, 2, 3]), start="1999-12-31 23:00:00")


class TestReplay:
    def test_demand_keeps_cpu_at_or_below_the_up_threshold(self):
        """The demand at a step is the fewest replicas that keep CPU at or below the up threshold."""
        policy = parse_policy({})
        model = Model(capacity=100, provisioning_delay=60, check_interval=30)
        assert [demand_for(load, model, policy) for load in (0, 70, 71, 140)] == [0, 1, 2, 2]

    def test_new_replicas_serve_after_the_provisioning_delay_and_overload_is_unserved(self):
        """A new replica serves only after the provisioning delay; the load above capacity meanwhile is
        unserved."""
        trace = from_rows(minutes([100] * 2 + [400] * 8))
        policy = parse_policy(
            {
                "SCALING_ALGORITHM": "target",
                "SCALING_METRICS": "cpu",
                "MIN_REPLICAS": "2",
                "COOLDOWN_PERIOD": "0",
                "CHECK_INTERVAL": "30",
            }
        )
        run = replay(trace, policy, Model(capacity=100, provisioning_delay=60, check_interval=30))
        assert run.supply[:6] == [2, 2, 2, 2, 2, 2]
        # Overloaded at 120 s (CPU capped at 100 %): target asks ceil(2 × 100/70) = 3;
        # the true need is hidden.
        assert run.provisioned[5] == 3
        assert run.supply[5:7] == [2, 3]  # serves 60 s after the decision at 120 s
        # Unserved: 200 a minute for two check steps at 2 replicas, 100 for two at 3, half a minute each.
        assert run.unserved_requests == pytest.approx(200 * 0.5 * 2 + 100 * 0.5 * 2)

    @pytest.mark.parametrize("algorithm", ALGORITHMS)
    @pytest.mark.parametrize("load", [0.0, 0.5, 1.3, 3.7, 6.2])
    def test_no_flapping_on_a_constant_load(self, algorithm, load):
        """No algorithm flaps on a constant load over three hours."""
        capacity = 1000.0
        trace = from_rows(minutes([load * capacity] * 180))  # three hours
        run = cli.simulate(trace, [algorithm], Model(capacity, 60, 30), {})[0].replay
        changes = [
            run.times[i] for i in range(1, len(run.times)) if run.provisioned[i] != run.provisioned[i - 1]
        ]
        assert [at for at in changes if at >= trace.start + 7200] == []


class TestScheduledReplay:
    # 2000-01-01 08:00 to 10:00 UTC: idle until 09:00, then 600 requests a minute for an hour.
    TRACE = from_rows(minutes([10] * 60 + [600] * 60, start="2000-01-01 08:00:00"))
    MODEL = Model(capacity=100, provisioning_delay=120, check_interval=30)
    POLICY: ClassVar[dict[str, str]] = {"SCALING_METRICS": "cpu", "MIN_REPLICAS": "1", "CHECK_INTERVAL": "30"}

    def test_a_schedule_before_the_peak_meets_it(self):
        """Replicas raised at 08:50 serve from 08:52, before the 09:00 peak; without it it is met late."""
        schedule = Schedule("peak", "50 8 * * *", "UTC", 3600, 9)
        policy = parse_policy({**self.POLICY, "SCALING_ALGORITHM": "target"})
        planned = replay(self.TRACE, policy, self.MODEL, (schedule,))
        reactive = replay(self.TRACE, policy, self.MODEL)
        step = planned.times.index
        # Each step records what ran at its start, before its decision: the 08:50 check adds 8.
        assert planned.provisioned[step(parse_time("2000-01-01 08:50:00"))] == 1
        assert planned.provisioned[step(parse_time("2000-01-01 08:50:30"))] == 9
        assert planned.supply[step(parse_time("2000-01-01 08:52:00"))] == 9
        assert reactive.supply[step(parse_time("2000-01-01 09:00:00"))] == 1
        assert planned.unserved_requests == 0
        assert reactive.unserved_requests > 0

    def test_the_cli_reads_the_services_entry_from_a_policy_file(self, tmp_path, capsys):
        """--policy-file and --service: the entry's settings and schedules apply to every algorithm."""
        trace = tmp_path / "trace.csv"
        trace.write_text(
            "\n".join(f"{t},{c}" for t, c in minutes([10] * 60 + [600] * 60, "2000-01-01 08:00:00"))
        )
        policies = tmp_path / "policies.yml"
        policies.write_text(
            "services:\n  - name: shop\n    min_replicas: 1\n    schedules:\n"
            "      - {name: peak, cron: '50 8 * * *', duration: 1h, min_replicas: 9}\n"
        )
        arguments = ["--trace", str(trace), "--capacity", "100", "--provisioning-delay", "120", "--json"]
        cli.main([*arguments, "--policy-file", str(policies), "--service", "shop"])
        planned = {r["algorithm"]: r for r in json.loads(capsys.readouterr().out)}
        cli.main([*arguments, "--policy-file", str(policies), "--service", "other"])
        unplanned = {r["algorithm"]: r for r in json.loads(capsys.readouterr().out)}
        for algorithm in ALGORITHMS:
            assert planned[algorithm]["unserved_requests"] < unplanned[algorithm]["unserved_requests"]

    def test_a_bad_policy_file_exits_2(self, tmp_path):
        """A policy file the daemon would refuse stops the backtest with exit 2."""
        trace = tmp_path / "trace.csv"
        trace.write_text("\n".join(f"{t},{c}" for t, c in minutes([1, 2, 3])) + "\n")
        policies = tmp_path / "policies.yml"
        policies.write_text("services:\n  - name: shop\n    min_replicas: many\n")
        with pytest.raises(SystemExit) as caught:
            cli.main(["--trace", str(trace), "--capacity", "10", "--policy-file", str(policies)])
        assert caught.value.code == 2


class TestOneDecisionFunction:
    def test_the_daemon_and_the_simulator_call_the_same_decide(self, monkeypatch):
        """The daemon and the simulator decide through the same function: what the backtest shows is what
        runs."""
        callers = []
        real = core.decide

        def spy(*arguments):
            callers.append(inspect.stack()[1].frame.f_globals["__name__"])
            return real(*arguments)

        monkeypatch.setattr(core, "decide", spy)
        replay(from_rows(minutes([100, 100])), parse_policy({}), Model(100, 60, 30))

        async def daemon_check():
            api = FakeDockerApi([service("a", "s_web", 3, {"autoscaler.enable": "true"})])
            reports = {
                "10.0.0.1": {
                    "services": {
                        "s_web": {"tasks": 3, "cpu_percent": 50, "memory_percent": 10, "sampled_at": 1e9}
                    }
                }
            }
            async with httpx.AsyncClient(transport=collector_transport(reports)) as client:
                await Autoscaler(
                    load({}), Swarm(api), client, clock=lambda: 1e9, resolve=resolver_for(reports)
                ).check_once()

        asyncio.run(daemon_check())
        assert set(callers) == {"autoscaler.backtest.replay", "autoscaler.daemon"}


class TestCli:
    def test_json_has_exactly_the_agreed_keys(self, tmp_path, capsys):
        """The --json output has exactly the keys the documentation lists."""
        trace = tmp_path / "trace.csv"
        trace.write_text(
            "period,count\n"
            + "\n".join(f"{t},{c}" for t, c in minutes([100 * (1 + math.sin(i / 20)) for i in range(240)]))
            + "\n"
        )
        series = tmp_path / "series.csv"
        cli.main(["--trace", str(trace), "--capacity", "50", "--json", "--series-out", str(series)])
        results = json.loads(capsys.readouterr().out)
        assert [r["algorithm"] for r in results] == ALGORITHMS
        assert set(results[0]) == {
            "algorithm",
            "under_provisioning_accuracy_pct",
            "over_provisioning_accuracy_pct",
            "under_provisioning_timeshare_pct",
            "over_provisioning_timeshare_pct",
            "jitter_per_min",
            "instability_pct",
            "elastic_speedup",
            "replica_minutes",
            "unserved_requests",
            "scale_events",
        }
        lines = series.read_text().splitlines()
        assert lines[0] == "algorithm,timestamp,load,demand,supply"
        assert len(lines) == 1 + 4 * 480

    def test_a_bad_policy_variable_exits_2(self, tmp_path, monkeypatch):
        """A bad policy variable stops the backtest with exit 2, as the daemon does."""
        trace = tmp_path / "trace.csv"
        trace.write_text("\n".join(f"{t},{c}" for t, c in minutes([1, 2, 3])) + "\n")
        monkeypatch.setenv("MIN_REPLICAS", "zero")
        with pytest.raises(SystemExit) as caught:
            cli.main(["--trace", str(trace), "--capacity", "10"])
        assert caught.value.code == 2


SHIPPED_TRACE = ROOT / "traces" / "wc98_per_minute.csv.gz"


class TestShippedTrace:
    def test_the_world_cup_trace_is_whole(self):
        """The gzipped trace in the repository: 87 days of minutes, the logs' official total."""
        trace = read(SHIPPED_TRACE)
        assert (trace.timestamp(trace.start), trace.step) == ("1998-04-30 21:30:00", 60)
        assert len(trace.counts) == 125_310  # 125,300 rows and 10 missing minutes
        assert sum(trace.counts) == 1_352_804_107

    def test_a_window_of_it(self):
        """The trace shipped in the repository reads, and its busiest minute is the known one."""
        trace = read(SHIPPED_TRACE, "1998-07-07 21:40:00", "1998-07-07 21:43:00")
        assert max(trace.counts) == 229_426
