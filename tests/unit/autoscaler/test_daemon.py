import asyncio
import copy
import json
import math
from dataclasses import replace
from http import HTTPStatus

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from autoscaler import daemon as daemon_module
from autoscaler import entrypoint, state_store
from autoscaler import policies as policies_module
from autoscaler.api import routes
from autoscaler.core import ServiceState, persisted
from autoscaler.daemon import Autoscaler
from autoscaler.leadership import Leadership
from autoscaler.lease import LeaseSettings, Record
from autoscaler.lease_store import LeaseStoreError
from autoscaler.settings import load
from autoscaler.state_store import ConfigStateStore
from autoscaler.swarm import Swarm
from common.config import ConfigError
from tests.unit.fakes import FakeDockerApi, collector_transport, counted, exposition, resolver_for, service

NOW = 1_800_000_000.0
LONG_AGO = "2020-01-01T00:00:00Z"
ENABLED = {"autoscaler.enable": "true"}
COLLECTOR = "10.0.0.5"
ENTRY = "10.0.0.9"


class Harness:
    """The daemon with a fake engine and fake collectors, and a clock the test moves.

    The collector at COLLECTOR reports every running task of the fake engine, with
    the CPU set per service name in ``cpu``; ``reports`` can replace any answer.
    """

    def __init__(self, services, cpu, environment=None, store=False, leadership=None):
        self.leadership = leadership
        self.api = FakeDockerApi(services)
        self.now = NOW
        self.cpu = dict(cpu)
        self.settings = load(
            {"CHECK_INTERVAL": "5", "COOLDOWN_PERIOD": "60", "SCALE_UP_COOLDOWN": "60", **(environment or {})}
        )
        self.reports = None
        self.entry = {}
        """Entry point address → its counters' text (None: it answers 500)."""
        self.use_store = store
        self.store = ConfigStateStore(self.api, None) if store else None
        self.daemon_state = None

    def collector_answers(self):
        if self.reports is not None:
            return self.reports
        names = {s["ID"]: s["Spec"]["Name"] for s in self.api.by_id.values()}
        services = {}
        for task in self.api.tasks():
            name = names[task["ServiceID"]]
            entry = services.setdefault(
                name,
                {
                    "task_ids": [],
                    "cpu_percent": self.cpu.get(name),
                    "memory_percent": 10.0,
                    "sampled_at": self.now - 2,
                },
            )
            entry["task_ids"].append(task["ID"])
        return {COLLECTOR: {"node_id": "node-1", "services": services}}

    def check(self):
        answers = self.collector_answers()

        async def go():
            transport = collector_transport(answers, self.entry)
            async with httpx.AsyncClient(transport=transport) as client:
                daemon = self.daemon(client)
                await daemon.check_once()
                return daemon

        self.daemon_state = asyncio.run(go()).state
        return self.daemon_state

    def restart(self):
        """A new daemon process: nothing kept in memory."""
        self.daemon_state = None
        self.store = ConfigStateStore(self.api, None) if self.use_store else None

    def read_requests(self):
        """The early read before a check: the entry points' counters into the history only."""

        async def go():
            async with httpx.AsyncClient(transport=collector_transport({}, self.entry)) as client:
                daemon = self.daemon(client)
                await daemon.read_requests()
                return daemon

        self.daemon_state = asyncio.run(go()).state

    def daemon(self, client, resolve=None):
        """The daemon on this harness; ``resolve`` replaces the resolver of its collectors."""
        return Autoscaler(
            self.settings,
            Swarm(self.api),
            client,
            store=self.store,
            clock=lambda: self.now,
            resolve=resolve or resolver_for(self.collector_answers(), self.entry),
            leadership=self.leadership,
            state=self.daemon_state,  # memory kept across checks, as the live loop keeps it
        )

    def replicas(self, service_id="a"):
        return self.api.by_id[service_id]["Spec"]["Mode"]["Replicated"]["Replicas"]

    def handlers(self):
        registry = CollectorRegistry()
        from autoscaler.telemetry import AutoscalerCollector  # noqa: PLC0415 - only the endpoint tests need it

        registry.register(AutoscalerCollector(lambda: self.daemon_state))
        return routes(
            lambda: self.daemon_state, registry, lambda: self.now, 5, self.settings.policy.metrics_max_age
        )

    def status(self):
        return json.loads(self.handlers()["/status"]().body)


def web(replicas=3, labels=None, updated_at=LONG_AGO, service_id="a", name="s_web"):
    return service(service_id, name, replicas, {**ENABLED, **(labels or {})}, updated_at)


class TestAutoscaler:
    def test_scales_a_busy_service_and_records_why(self):
        """A busy service is scaled through the Docker API, and its record keeps the decision and the
        event."""
        harness = Harness([web()], {"s_web": 95.0})
        state = harness.check()
        ((service_id, spec),) = harness.api.updates
        assert (service_id, spec["mode"]) == ("a", {"Replicated": {"Replicas": 4}})
        record = state.services["s_web"]
        assert record.decision.reason.metric == "cpu"
        assert state.scale_events[("s_web", "up")] == 1

    def test_the_cooldown_holds_the_next_change(self):
        """The next check within the cooldown holds; the first check after it changes again."""
        harness = Harness([web()], {"s_web": 95.0})
        harness.check()
        harness.now += 30
        state = harness.check()
        assert len(harness.api.updates) == 1
        assert state.services["s_web"].decision.reason.limited_by == ("cooldown",)
        harness.now += 31
        harness.check()
        assert len(harness.api.updates) == 2

    def test_a_scale_up_waits_for_the_replicas_it_added_to_be_measured(self):
        """No cooldown: the next scale-up comes at the first check that measures every replica."""
        harness = Harness([web()], {"s_web": 95.0}, {"SCALE_UP_COOLDOWN": "0"})
        before = harness.collector_answers()
        harness.check()
        harness.reports = before  # the engine runs a fourth task; the collector has not measured it yet
        harness.now += 5
        state = harness.check()
        assert len(harness.api.updates) == 1
        assert state.services["s_web"].decision.reason.limited_by == ("replicas_starting",)
        harness.reports = None  # now it has
        harness.now += 5
        harness.check()
        assert len(harness.api.updates) == 2

    def test_the_status_page_and_status_show_the_last_hour_and_the_changes(self):
        """/status and the page show each check's replicas over the last hour and the changes made."""
        harness = Harness([web()], {"s_web": 95.0})
        harness.check()
        harness.now += 30
        harness.check()
        entry = harness.status()["services"]["s_web"]
        assert [point[:3] for point in entry["last_hour"]] == [[NOW, 4, 3], [NOW + 30, 4, 4]]
        assert [(change["replicas_from"], change["replicas_to"]) for change in entry["last_changes"]] == [
            (3, 4)
        ]
        page = harness.handlers()["/"]()
        assert page.content_type.startswith("text/html")
        assert 'data-service="s_web"' in page.body.decode()

    def test_a_recently_updated_service_starts_in_cooldown(self):
        """A service updated moments before the daemon starts is in cooldown from that update."""
        recent = "2027-01-15T08:00:00Z"  # NOW is 2027-01-15T08:00:00Z
        harness = Harness([web(updated_at=recent)], {"s_web": 95.0})
        state = harness.check()
        assert harness.api.updates == []
        assert state.services["s_web"].decision.reason.limited_by == ("cooldown",)

    def test_a_bad_label_skips_only_that_service(self):
        """A bad label leaves its service undecided and reported; the others are scaled as usual."""
        services = [web(), web(labels={"autoscaler.max_replicas": "many"}, service_id="b", name="s_bad")]
        harness = Harness(services, {"s_web": 95.0, "s_bad": 95.0})
        state = harness.check()
        assert [update[0] for update in harness.api.updates] == ["a"]
        assert "autoscaler.max_replicas" in state.services["s_bad"].config_error
        text = harness.handlers()["/metrics"]().body.decode()
        assert 'autoscaler_service_config_valid{service="s_bad"} 0.0' in text
        entry = harness.status()["services"]["s_bad"]
        assert "decision" not in entry
        assert "reason" not in entry
        assert "'many'" in entry["problems"]["label"]

    def test_a_bad_label_is_logged_once_and_counted_once(self):
        """A bad label seen at every check is one problem, counted once."""
        harness = Harness([web(labels={"autoscaler.predictive_season": "1e13"})], {"s_web": 95.0})
        for _ in range(3):
            harness.check()
            harness.now += 5
        assert harness.daemon_state.problems.appeared["label"] == 1
        assert "autoscaler.predictive_season" in harness.status()["services"]["s_web"]["config_error"]

    def test_a_policy_is_parsed_again_only_when_its_labels_change(self, monkeypatch):
        """Three checks with the same labels parse the policy once; a changed label is parsed and applies."""
        parsed = []
        real = policies_module.service_policy

        def counted(*arguments):
            parsed.append(arguments)
            return real(*arguments)

        monkeypatch.setattr(policies_module, "service_policy", counted)
        harness = Harness([web()], {"s_web": 50.0})
        for _ in range(3):
            harness.check()
            harness.now += 5
        assert len(parsed) == 1
        harness.api.by_id["a"]["Spec"]["Labels"]["autoscaler.max_replicas"] = "3"
        state = harness.check()
        assert len(parsed) == 2
        assert state.services["s_web"].policy.max_replicas == 3

    def test_an_unreachable_engine_is_reported_on_health(self):
        """Without the Docker API /health answers 503 and says so."""
        harness = Harness([web()], {"s_web": 95.0})
        harness.api.reachable = False
        harness.check()
        response = harness.handlers()["/health"]()
        assert response.status == HTTPStatus.SERVICE_UNAVAILABLE
        assert "docker api unreachable" in json.loads(response.body)["problems"][0]


class TestBadInput:
    """Nothing from outside stops the loop; each problem stays with what it belongs to."""

    def two_services(self):
        return Harness([web(), web(service_id="b", name="s_api")], {"s_web": 95.0, "s_api": 95.0})

    def test_malformed_collector_answers_do_not_stop_the_check(self):
        """Whatever a collector answers, the check completes for every service and names the collector."""
        for answer in ([], {"services": None}, {}, "text", b"not json", None):
            harness = self.two_services()
            harness.reports = {COLLECTOR: answer}
            state = harness.check()
            assert state.last_successful_check_at == NOW
            assert set(state.services) == {"s_web", "s_api"}
            assert state.problems.of_kind("collector"), answer

    def test_a_malformed_entry_affects_only_its_service(self):
        """A NaN or an incomplete entry in a collector's answer leaves only that service without metrics."""
        harness = self.two_services()
        answers = harness.collector_answers()
        answers[COLLECTOR]["services"]["s_web"]["cpu_percent"] = math.nan
        del answers[COLLECTOR]["services"]["s_api"]["sampled_at"]
        answers[COLLECTOR]["services"]["s_other"] = {"task_ids": ["x"], "cpu_percent": 5, "sampled_at": NOW}
        harness.reports = answers
        state = harness.check()
        assert harness.api.updates == []  # neither service has usable metrics
        assert set(state.problems.of_kind("collector_entry")) == {
            f"s_web at {COLLECTOR}",
            f"s_api at {COLLECTOR}",
        }
        assert state.services["s_web"].decision.reason.message.startswith("no fresh metrics: holding")

    def test_an_error_deciding_one_service_leaves_the_others(self, monkeypatch):
        """An unexpected error deciding one service is reported for it; the others are decided and scaled."""
        harness = self.two_services()
        decide = daemon_module.core.decide

        def failing(observation, policy, state, now):
            if observation.current_replicas == 7:
                raise ZeroDivisionError("boom")
            return decide(observation, policy, state, now)

        harness.api.by_id["b"]["Spec"]["Mode"]["Replicated"]["Replicas"] = 7
        monkeypatch.setattr(daemon_module.core, "decide", failing)
        state = harness.check()
        assert [update[0] for update in harness.api.updates] == ["a"]
        assert "ZeroDivisionError" in harness.status()["services"]["s_api"]["problems"]["decision"]
        assert state.last_successful_check_at == NOW

    def test_a_refused_update_is_counted_and_the_loop_goes_on(self):
        """An update the engine refuses is counted and shown per service, and the check goes on."""
        harness = self.two_services()

        def refuse(*args, **kwargs):
            raise RuntimeError("engine said no")

        harness.api.update_service = refuse
        state = harness.check()
        assert state.scale_failures == {"s_web": 1, "s_api": 1}
        assert "engine said no" in state.problems.of("s_web")["scale"]
        text = harness.handlers()["/metrics"]().body.decode()
        assert 'autoscaler_input_problems_total{kind="scale"} 2.0' in text


class TestCoverage:
    def test_unmeasured_tasks_block_scale_down_but_not_scale_up(self):
        """Running tasks no collector measured block a scale-down; high load on those measured still scales
        up."""
        harness = Harness([web(replicas=6)], {"s_web": 5.0}, {"SCALE_DOWN_STABILIZATION": "0"})
        answers = harness.collector_answers()
        answers[COLLECTOR]["services"]["s_web"]["task_ids"] = answers[COLLECTOR]["services"]["s_web"][
            "task_ids"
        ][:3]
        harness.reports = answers
        state = harness.check()
        assert harness.api.updates == []
        reason = state.services["s_web"].decision.reason
        assert reason.limited_by == ("missing_metrics",)
        assert "3 running task(s) not measured" in reason.message
        answers[COLLECTOR]["services"]["s_web"]["cpu_percent"] = 95.0
        harness.check()
        assert harness.replicas() == 7

    def test_health_names_the_node_whose_collector_is_missing(self):
        """/health names the node whose tasks run unmeasured."""
        harness = Harness([web(replicas=2)], {"s_web": 50.0})
        harness.api.tasks_override = [
            {"ID": "a.1", "ServiceID": "a", "NodeID": "node-1", "Status": {"State": "running"}},
            {"ID": "a.2", "ServiceID": "a", "NodeID": "node-2", "Status": {"State": "running"}},
        ]
        answers = harness.collector_answers()
        answers[COLLECTOR]["services"]["s_web"]["task_ids"] = ["a.1"]
        harness.reports = answers
        harness.check()
        body = json.loads(harness.handlers()["/health"]().body)
        assert any("node-2" in problem for problem in body["problems"])
        assert harness.status()["services"]["s_web"]["unmeasured_tasks"] == 1


class TestOutsideChanges:
    def test_a_manual_scale_up_is_kept_for_the_stabilization_window(self):
        """Replicas an operator added stay for the stabilization window after the change, then go one by
        one."""
        environment = {"SCALE_DOWN_STABILIZATION": "120", "COOLDOWN_PERIOD": "15"}
        harness = Harness([web(replicas=2)], {"s_web": 5.0}, environment)
        harness.check()
        harness.api.set_replicas("a", 6, updated_at="2027-01-15T08:00:10Z")  # NOW + 10
        harness.now += 15
        for _ in range(20):  # 100 s of idle checks
            harness.check()
            harness.now += 5
        assert harness.replicas() == 6
        harness.now += 40
        harness.check()
        assert harness.replicas() == 5

    def test_a_redeploy_that_cuts_replicas_under_load_is_undone_at_once(self):
        """A redeploy that resets a busy service to the stack file's count is undone at the next check."""
        harness = Harness([web(replicas=8)], {"s_web": 90.0}, {"COOLDOWN_PERIOD": "300"})
        harness.check()  # 8 → 9
        harness.api.set_replicas("a", 2)  # the stack file's count
        harness.now += 5
        state = harness.check()
        assert harness.replicas() == 9
        assert (
            "restoring 9 replicas after an outside change to 2"
            in state.services["s_web"].decision.reason.message
        )

    def test_a_cut_while_idle_is_accepted(self):
        """A cut while the load is low is the operator's to make: it stays."""
        harness = Harness([web(replicas=8)], {"s_web": 30.0})
        harness.check()
        harness.api.set_replicas("a", 3)
        harness.now += 5
        harness.check()
        assert harness.replicas() == 3

    def test_a_pause_made_while_deciding_is_never_overwritten(self):
        """A service scaled to zero between the read and the write is re-read, and the pause wins."""
        harness = Harness([web(replicas=4)], {"s_web": 95.0})
        inspect = harness.api.inspect_service

        def operator_pauses_first(service_id):
            if harness.replicas(service_id) == 4:
                harness.api.set_replicas(service_id, 0)
            return inspect(service_id)

        harness.api.inspect_service = operator_pauses_first
        state = harness.check()
        assert harness.replicas() == 0
        assert harness.api.updates == []
        assert state.services["s_web"].decision.reason.limited_by == ("paused",)

    def test_a_pause_label_added_while_deciding_is_honoured_on_the_retry(self):
        """A label changed between read and write makes the write stale; the retry reads it, and pauses."""
        harness = Harness([web(replicas=4)], {"s_web": 95.0})
        inspect = harness.api.inspect_service

        def operator_labels_first(service_id):
            attributes = harness.api.by_id[service_id]
            if "autoscaler.paused" not in attributes["Spec"]["Labels"]:
                attributes["Spec"]["Labels"] = {**attributes["Spec"]["Labels"], "autoscaler.paused": "true"}
                attributes["Version"]["Index"] += 1
            return inspect(service_id)

        harness.api.inspect_service = operator_labels_first
        state = harness.check()
        assert harness.api.updates == []
        assert harness.replicas() == 4
        assert state.services["s_web"].decision.reason.limited_by == ("paused",)

    def test_the_paused_label_leaves_the_service_alone(self):
        """autoscaler.paused=true decides, shows why and changes nothing."""
        harness = Harness([web(labels={"autoscaler.paused": "true"})], {"s_web": 99.0})
        harness.check()
        assert harness.api.updates == []
        entry = harness.status()["services"]["s_web"]
        assert entry["paused"] is True
        assert entry["reason"]["limited_by"] == ["paused"]

    def test_dry_run_decides_but_changes_nothing(self):
        """DRY_RUN decides and reports what it would do, and writes nothing."""
        harness = Harness([web()], {"s_web": 99.0}, {"DRY_RUN": "true"})
        state = harness.check()
        assert harness.api.updates == []
        assert state.services["s_web"].decision.desired_replicas == 4
        assert harness.status()["services"]["s_web"]["dry_run"] is True


class TestPolicyFile:
    """NOW is 08:00 UTC: the schedule below holds from 08:05 to 08:15."""

    FILE = """\
services:
  - name: s_web
    max_replicas: 8
    schedules:
      - name: morning
        cron: "5 8 * * *"
        duration: 10m
        min_replicas: 6
"""

    def harness(self, tmp_path, text, services, cpu, **environment):
        path = tmp_path / "policies.yml"
        path.write_text(text)
        return Harness(services, cpu, {"POLICY_FILE": str(path), **environment}), path

    def idle_web(self, tmp_path, stabilization):
        """s_web idle at 3 replicas, its own minimum, under the morning schedule."""
        harness, _ = self.harness(
            tmp_path,
            self.FILE,
            [web(replicas=3)],
            {"s_web": 5.0},
            MIN_REPLICAS="3",
            SCALE_DOWN_STABILIZATION=str(stabilization),
        )
        return harness

    def test_a_schedule_raises_the_minimum_for_its_window_and_the_service_comes_back_down(self, tmp_path):
        """Before the window nothing changes, in it the minimum is the schedule's, after it the way down."""
        harness = self.idle_web(tmp_path, stabilization=0)
        harness.check()
        assert harness.replicas() == 3
        schedule = harness.status()["services"]["s_web"]["schedule"]
        assert (schedule["active"], schedule["next"]) == ([], "morning")
        assert schedule["next_start"] == "2027-01-15T08:05:00+00:00"
        harness.now += 5 * 60
        state = harness.check()
        assert harness.replicas() == 6
        assert state.services["s_web"].decision.reason.limited_by == ("min_replicas",)
        schedule = harness.status()["services"]["s_web"]["schedule"]
        assert (schedule["active"], schedule["min_replicas"]) == (["morning"], 6)
        assert schedule["active_until"] == "2027-01-15T08:15:00+00:00"
        text = harness.handlers()["/metrics"]().body.decode()
        assert 'autoscaler_service_schedule_active{schedule="morning",service="s_web"} 1.0' in text
        assert 'autoscaler_service_scheduled_min_replicas{service="s_web"} 6.0' in text
        harness.now += 10 * 60
        harness.check()
        assert harness.replicas() == 5
        assert harness.status()["services"]["s_web"]["schedule"]["active"] == []

    def test_after_a_window_the_way_down_waits_for_the_stabilization_window(self, tmp_path):
        """The schedule's minimum counts as a recommendation: after its window the replicas stay one
        stabilization window (120 s here) past the window's last check, then come down."""
        harness = self.idle_web(tmp_path, stabilization=120)
        harness.now += 5 * 60
        harness.check()
        assert harness.replicas() == 6
        for minutes in (10, 14.5):  # checks inside the window
            harness.now = NOW + minutes * 60
            harness.check()
        harness.now = NOW + 15 * 60  # the window is over
        state = harness.check()
        assert harness.replicas() == 6
        assert "stabilization" in state.services["s_web"].decision.reason.limited_by
        harness.now = NOW + 14.5 * 60 + 121
        harness.check()
        assert harness.replicas() < 6

    def test_under_a_replay_clock_schedules_read_the_trace_time(self, tmp_path):
        """A replay labelled on the service (one trace hour a wall minute, from trace 08:00 at NOW)
        starts the 08:05 schedule 5 s into the replay and ends it 10 s later; /status gives the
        trace time. After the replay the wall clock applies again."""
        clock = "2027-01-15 08:00:00,2027-01-15 09:00:00," + f"{NOW:.0f},60"
        harness, _ = self.harness(
            tmp_path, self.FILE, [web(replicas=3, labels={"autoscaler.replay_clock": clock})], {"s_web": 5.0}
        )
        harness.now = NOW - 3600  # an hour before the replay: the wall clock's 07:00
        harness.check()
        assert harness.status()["services"]["s_web"]["schedule"]["trace_time"] is None
        harness.now = NOW + 6
        harness.check()
        assert harness.replicas() == 6
        schedule = harness.status()["services"]["s_web"]["schedule"]
        assert (schedule["active"], schedule["trace_time"]) == (["morning"], "2027-01-15T08:06:00+00:00")
        harness.now = NOW + 16
        harness.check()
        assert harness.status()["services"]["s_web"]["schedule"]["active"] == []
        harness.now = NOW + 5 * 60  # the replay ended at NOW + 60: the wall clock's 08:05 again
        harness.check()
        schedule = harness.status()["services"]["s_web"]["schedule"]
        assert (schedule["active"], schedule["trace_time"]) == (["morning"], None)

    def test_a_bad_replay_clock_holds_its_service_alone(self, tmp_path):
        """A replay clock label that cannot be read is its service's config error, naming the label."""
        services = [web(), web(labels={"autoscaler.replay_clock": "08:00,60"}, service_id="b", name="s_api")]
        harness, _ = self.harness(tmp_path, self.FILE, services, {"s_web": 95.0, "s_api": 95.0})
        state = harness.check()
        assert [update[0] for update in harness.api.updates] == ["a"]
        assert state.services["s_api"].config_error.startswith("autoscaler.replay_clock='08:00,60'")

    def test_labels_override_the_file_and_the_file_the_environment(self, tmp_path):
        """The file's maximum replaces the environment's; a label replaces the file's."""
        harness, _ = self.harness(
            tmp_path,
            self.FILE,
            [web(), web(labels={"autoscaler.max_replicas": "4"}, service_id="b", name="s_api")],
            {"s_web": 50.0, "s_api": 50.0},
        )
        text = self.FILE + "  - name: s_api\n    max_replicas: 9\n"
        harness.settings.policy_file.path.write_text(text)
        state = harness.check()
        assert state.services["s_web"].policy.max_replicas == 8
        assert state.services["s_api"].policy.max_replicas == 4

    def test_a_bad_entry_affects_only_its_service(self, tmp_path):
        """An entry whose setting contradicts a label holds its service alone, naming the file's line."""
        text = "services:\n  - name: s_api\n    min_replicas: 5\n"
        services = [web(), web(labels={"autoscaler.max_replicas": "4"}, service_id="b", name="s_api")]
        harness, _ = self.harness(tmp_path, "", services, {"s_web": 95.0, "s_api": 95.0})
        harness.settings.policy_file.path.write_text(text)
        state = harness.check()
        assert [update[0] for update in harness.api.updates] == ["a"]
        assert "autoscaler.max_replicas" in state.services["s_api"].config_error

    def test_a_file_that_breaks_at_run_time_leaves_the_last_good_entries_in_force(self, tmp_path):
        """A file that no longer parses is a problem on /status; the entries read before still apply."""
        harness, path = self.harness(tmp_path, self.FILE, [web()], {"s_web": 50.0})
        harness.check()
        path.write_text("services:\n  - name: s_web\n    max_replicas: [8\n")
        state = harness.check()
        assert state.services["s_web"].policy.max_replicas == 8
        (problem,) = harness.status()["problems"]
        assert (problem["kind"], problem["subject"]) == ("policy_file", str(path))
        assert problem["problem"].startswith("line 4: not YAML")  # where YAML found the bracket unclosed
        assert problem["problem"].endswith("the entries read before stay in force")
        path.write_text(self.FILE.replace("max_replicas: 8", "max_replicas: 7"))
        state = harness.check()
        assert state.services["s_web"].policy.max_replicas == 7
        assert harness.status()["problems"] == []

    def test_a_bad_file_at_start_names_its_line(self, tmp_path):
        """A file that cannot be used stops the autoscaler at start: POLICY_FILE, the line and the problem."""
        path = tmp_path / "policies.yml"
        path.write_text("services:\n  - name: web\n    min_replicas: 50\n")
        with pytest.raises(ConfigError) as raised:
            load({"POLICY_FILE": str(path)})
        assert raised.value.name == "POLICY_FILE"
        assert raised.value.problem.startswith("line 3: min_replicas='50': is greater than MAX_REPLICAS=10")


class TestSavedState:
    def test_a_restarted_daemon_keeps_the_stabilization_window(self):
        """After a restart the saved stabilization window still holds a scale-down."""
        environment = {"SCALE_DOWN_STABILIZATION": "300", "COOLDOWN_PERIOD": "0"}
        harness = Harness([web(replicas=6)], {"s_web": 50.0}, environment, store=True)
        harness.check()  # holds at 6: recorded in the window
        harness.now += 60
        harness.restart()
        harness.cpu["s_web"] = 5.0
        state = harness.check()
        assert harness.replicas() == 6
        assert state.services["s_web"].decision.reason.limited_by == ("stabilization",)
        assert state.restored_services == 1

    def test_a_kill_before_any_check_loses_at_most_a_stabilization_hold(self):
        """At each check of a load that rises and falls, an instance taking over from the saved state
        decides as the continuing one does, or scales down lower where stabilization held that one:
        the recommendations since the last save are what a kill can lose, never a cooldown or a change."""
        environment = {
            "SCALE_DOWN_STABILIZATION": "120",
            "COOLDOWN_PERIOD": "30",
            "SCALE_UP_COOLDOWN": "30",
            "STATE_SAVE_INTERVAL": "60",
            "SCALE_DOWN_LIMIT_REPLICAS": "10",
            "SCALE_DOWN_LIMIT_PERCENT": "100",
        }
        continuing = Harness([web(replicas=4)], {"s_web": 95.0}, environment, store=True)
        for cpu in [95, 95, 60, 50, 45, 40, 35, 30, 25, 20, 15, 10, 10, 10, 5, 5, 5, 5, 5, 5, 5]:
            taking_over = Harness([], {}, environment, store=True)
            taking_over.api = copy.deepcopy(continuing.api)
            taking_over.store = ConfigStateStore(taking_over.api, None)
            taking_over.now, taking_over.cpu = continuing.now, {"s_web": cpu}
            continuing.cpu["s_web"] = cpu
            kept = continuing.check().services["s_web"].decision
            restored = taking_over.check().services["s_web"].decision
            if restored.desired_replicas != kept.desired_replicas:
                assert restored.desired_replicas < kept.desired_replicas, (cpu, restored, kept)
                assert "stabilization" in kept.reason.limited_by, (cpu, kept.reason)
            continuing.now += 15
        assert continuing.replicas() < 4  # the load fell: the way down was taken

    def test_without_saved_state_the_same_restart_scales_down(self):
        """The same restart without saved state scales down: what the saved state is for."""
        environment = {"SCALE_DOWN_STABILIZATION": "300", "COOLDOWN_PERIOD": "0"}
        harness = Harness([web(replicas=6)], {"s_web": 50.0}, environment, store=False)
        harness.check()
        harness.now += 60
        harness.restart()
        harness.cpu["s_web"] = 5.0
        harness.check()
        assert harness.replicas() == 5

    def test_a_change_is_saved_at_once_and_only_the_newest_is_kept(self):
        """Each change is in a document written in its check; the one it supersedes is removed."""
        harness = Harness([web()], {"s_web": 95.0}, store=True)
        harness.check()
        harness.now += 61
        harness.check()
        (config,) = harness.api.configs_by_id.values()
        assert config["Spec"]["Labels"]["autoscaler.state.format"] == "2"
        (restored,) = ConfigStateStore(harness.api, None).load()[0].values()
        assert restored.replicas == 5

    def test_corrupt_saved_state_starts_fresh(self):
        """A saved state that cannot be read is reported once, the service starts fresh, and the next save
        replaces it."""
        harness = Harness([web()], {"s_web": 95.0}, store=True)
        harness.api.create_config(
            "autoscaler-state-a-1",
            b"garbage",
            labels={
                "autoscaler.state.scope": "swarm",
                "autoscaler.state.service": "a",
                "autoscaler.state.sequence": "1",
            },
        )
        state = harness.check()
        assert harness.replicas() == 4
        assert state.problems.appeared["state"] == 1  # logged once; cleared by the first good save
        (config,) = harness.api.configs_by_id.values()
        assert config["Spec"]["Name"] != "autoscaler-state-a-1"

    def test_a_failing_save_is_reported_and_retried(self):
        """A save the managers refuse is reported, tried again at the next check, and cleared when it
        succeeds."""
        harness = Harness([web()], {"s_web": 95.0}, store=True)

        def refuse(*args, **kwargs):
            raise RuntimeError("raft unavailable")

        create = harness.api.create_config
        harness.api.create_config = refuse
        state = harness.check()
        assert "raft unavailable" in state.problems.of("save")["state"]
        harness.api.create_config = create
        harness.now += 5
        state = harness.check()
        assert "state" not in state.problems.of("save")
        assert len(harness.api.configs_by_id) == 1


class TestEndpoints:
    def test_health_status_and_metrics_after_a_check(self):
        """After one check, /health is green and /status and /metrics show the decision."""
        harness = Harness([web()], {"s_web": 95.0})
        harness.check()
        handlers = harness.handlers()
        assert handlers["/health"]().status == HTTPStatus.OK
        status = json.loads(handlers["/status"]().body)
        assert status["services"]["s_web"]["desired_replicas"] == 4
        assert status["services"]["s_web"]["reason"]["message"] == "cpu 95.0% > 70%"
        families = {f.name: f for f in text_string_to_metric_families(handlers["/metrics"]().body.decode())}
        assert families["autoscaler_scale_events"].samples[0].value == 1
        assert families["autoscaler_service_desired_replicas"].samples[0].value == 4
        assert "autoscaler_last_successful_check_timestamp_seconds" in families
        assert families["autoscaler_service_recommended_replicas"].samples[0].value == 4
        assert families["autoscaler_service_unmeasured_tasks"].samples[0].value == 0

    def test_health_is_unavailable_without_collectors(self):
        """No collector answering is a 503 on /health."""
        harness = Harness([web()], {})
        harness.reports = {}
        harness.check()
        body = json.loads(harness.handlers()["/health"]().body)
        assert any("no metrics collector answered" in problem for problem in body["problems"])

    def test_health_is_unavailable_before_the_first_check(self):
        """Before its first check the daemon is not yet healthy."""
        harness = Harness([], {})
        harness.check()
        harness.daemon_state.last_check_at = None
        assert harness.handlers()["/health"]().status == HTTPStatus.SERVICE_UNAVAILABLE


class TestRoutingTable:
    """What the entry point reads of each service: its names and its rate limit."""

    def test_a_service_with_a_replica_capacity_has_a_rate_limit_at_its_ready_replicas(self):
        """A service with autoscaler.replica_rps gets a rate limit in the routing table, its capacity times
        the replicas ready."""
        labels = {"com.docker.stack.namespace": "s", "autoscaler.replica_rps": "20"}
        harness = Harness([web(3, labels=labels)], {"s_web": 50.0})
        harness.check()
        table = json.loads(harness.handlers()["/routes"]().body)
        assert table == {
            "services": [
                {
                    "service": "s_web",
                    "name_in_stack": "web",
                    "route": None,
                    "rate_limit": {"replica_rps": 20.0, "burst_seconds": 1.0},
                }
            ]
        }
        assert harness.status()["services"]["s_web"]["rate_limit_rps"] == 60
        text = harness.handlers()["/metrics"]().body.decode()
        families = {family.name: family for family in text_string_to_metric_families(text)}
        assert families["autoscaler_service_rate_limit_rps"].samples[0].value == 60

    def test_without_a_capacity_a_service_has_no_limit(self):
        """Without a capacity a service is routed with no rate limit."""
        harness = Harness([web()], {"s_web": 50.0})
        harness.check()
        (entry,) = json.loads(harness.handlers()["/routes"]().body)["services"]
        assert (entry["name_in_stack"], entry["rate_limit"]) == ("s_web", None)
        assert harness.status()["services"]["s_web"]["rate_limit_rps"] is None

    def test_a_service_with_route_labels_has_a_route_whether_autoscaled_or_not(self):
        """Route labels give a route to any service, autoscaled or not."""
        route = {
            "entrypoint.path": "/shop/",
            "entrypoint.port": "8000",
            "entrypoint.balance": "ewma",
            "com.docker.stack.namespace": "s",
        }
        shop = service("b", "s_shop", 2, route, LONG_AGO)
        harness = Harness([web(labels={"entrypoint.path": "/api/"}), shop], {"s_web": 50.0})
        harness.check()
        table = json.loads(harness.handlers()["/routes"]().body)["services"]
        assert [(e["service"], e["name_in_stack"], e["route"]) for e in table] == [
            ("s_shop", "shop", {"path": "/shop/", "port": 8000, "balance": "ewma", "sticky": "none"}),
            ("s_web", "s_web", {"path": "/api/", "port": 80, "balance": "round_robin", "sticky": "none"}),
        ]
        assert "s_shop" not in harness.daemon_state.services  # routed, not autoscaled

    @pytest.mark.parametrize(
        ("labels", "named"),
        [
            ({"entrypoint.path": "/ { return 200 'x'; } location /api/"}, "entrypoint.path"),
            ({"entrypoint.path": "api"}, "entrypoint.path"),
            ({"entrypoint.path": "/api/", "entrypoint.port": "80; deny all"}, "entrypoint.port"),
            ({"entrypoint.path": "/api/", "entrypoint.port": "70000"}, "entrypoint.port"),
            ({"entrypoint.path": "/api/", "entrypoint.balance": "fastest"}, "entrypoint.balance"),
            ({"entrypoint.path": "/api/", "entrypoint.sticky": "yes"}, "entrypoint.sticky"),
        ],
    )
    def test_a_route_label_nginx_would_read_as_more_is_refused_for_that_service_only(self, labels, named):
        """A route label that would break nginx's configuration is refused for its service only."""
        harness = Harness([web(), service("b", "s_shop", 2, labels, LONG_AGO)], {"s_web": 50.0})
        harness.check()
        table = json.loads(harness.handlers()["/routes"]().body)["services"]
        assert [entry["service"] for entry in table] == ["s_web"]
        problem = harness.daemon_state.problems.active[("route", "s_shop")]
        assert problem.startswith(named)
        assert harness.daemon_state.services["s_web"].decision is not None  # the others go on

    def test_a_service_with_a_bad_label_is_left_out_until_fixed(self):
        """A service whose labels cannot be read has no entry in the routing table until they are fixed."""
        harness = Harness([web(labels={"autoscaler.replica_rps": "fast"})], {"s_web": 50.0})
        harness.check()
        assert json.loads(harness.handlers()["/routes"]().body) == {"services": []}
        assert harness.status()["services"]["s_web"]["config_error"].startswith("autoscaler.replica_rps")


def counters(service_name, durations, errors=0):
    """An entry point's counters of ``durations`` (seconds), ``errors`` of them answered 500."""
    codes = {"200": len(durations) - errors, **({"500": errors} if errors else {})}
    return exposition(service_name, counted(durations, errors), codes)


class TestRequestMetrics:
    """Latency, errors and request rate from the entry point, per service, over the window."""

    def stack(self, cpu=3.0, replicas=3):
        labels = {"com.docker.stack.namespace": "s"}
        environment = {"METRICS_WINDOW": "10", "SCALE_DOWN_STABILIZATION": "0"}
        harness = Harness([web(replicas, labels=labels)], {"s_web": cpu}, environment)
        harness.entry = {ENTRY: counters("web", [])}
        harness.check()
        return harness

    def test_a_slow_service_scales_on_latency_with_idle_cpu(self):
        """Latency read from the entry point's counters scales up a slow service whose CPU is idle."""
        harness = self.stack()
        harness.entry = {ENTRY: counters("web", [0.05] * 80 + [2.5] * 20)}
        harness.now += 10
        record = harness.check().services["s_web"]
        assert record.observation.latency_ms > 1000
        assert (record.decision.reason.metric, record.decision.desired_replicas) == ("latency", 4)
        assert record.observation.requests_per_second == 10

    def test_status_and_metrics_show_the_requests(self):
        """/status and /metrics show the requests, their rate, errors and latency percentiles."""
        harness = self.stack()
        harness.entry = {ENTRY: counters("web", [0.05] * 95 + [0.5] * 5, errors=2)}
        harness.now += 10
        harness.check()
        shown = harness.status()["services"]["s_web"]
        assert shown["behind_entry_point"] is True
        assert shown["requests"]["requests"] == 100
        assert shown["requests"]["per_second"] == 10
        assert shown["requests"]["error_percent"] == 2
        latency = shown["requests"]["latency_ms"]
        assert latency["p50"] < 60
        assert latency["p99"] > 400
        text = harness.handlers()["/metrics"]().body.decode()
        families = {family.name: family for family in text_string_to_metric_families(text)}
        quantiles = {
            s.labels["quantile"]: s.value for s in families["autoscaler_service_latency_seconds"].samples
        }
        assert set(quantiles) == {"0.5", "0.95", "0.99"}
        assert families["autoscaler_service_error_percent"].samples[0].value == 2
        assert families["autoscaler_service_requests_per_second"].samples[0].value == 10
        assert families["autoscaler_service_requests_per_second_per_replica"].samples[0].value == 10 / 3
        assert families["autoscaler_entry_points_answered"].samples[0].value == 1

    def test_an_idle_service_scales_down(self):
        """Without requests, latency and errors are idle and the service scales down on CPU."""
        harness = self.stack(cpu=1.0)
        harness.now += 10
        record = harness.check().services["s_web"]
        assert record.decision.desired_replicas == 2
        assert record.decision.reason.idle == ("latency", "errors")

    def test_an_entry_point_that_stops_answering_holds_scale_down(self):
        """An entry point that stops answering is a problem, and its services hold their replicas."""
        harness = self.stack(cpu=1.0)
        harness.entry = {ENTRY: None}
        harness.now += 10
        state = harness.check()
        assert state.services["s_web"].decision.reason.limited_by == ("missing_metrics",)
        assert ("entrypoint", ENTRY) in state.problems.active

    def test_an_oversized_entry_point_page_is_a_named_problem_that_holds_scale_down(self, monkeypatch):
        """From the first check: never a silent loss of request metrics turning into a scale-down."""
        monkeypatch.setattr(entrypoint, "MOST_CHARACTERS", 1000)
        labels = {"com.docker.stack.namespace": "s"}
        harness = Harness([web(3, labels=labels)], {"s_web": 1.0}, {"SCALE_DOWN_STABILIZATION": "0"})
        harness.entry = {ENTRY: counters("web", [0.05] * 100)}
        for _ in range(2):
            state = harness.check()
            harness.now += 10
        assert harness.api.updates == []
        assert state.services["s_web"].decision.reason.limited_by == ("missing_metrics",)
        assert ("entrypoint_too_large", ENTRY) in state.problems.active
        health = harness.handlers()["/health"]()
        assert health.status == HTTPStatus.SERVICE_UNAVAILABLE
        assert any(
            ENTRY in problem and "not read" in problem for problem in json.loads(health.body)["problems"]
        )
        assert {"kind": "entrypoint_too_large", "subject": ENTRY} in [
            {key: entry[key] for key in ("kind", "subject")} for entry in harness.status()["problems"]
        ]
        text = harness.handlers()["/metrics"]().body.decode()
        assert 'autoscaler_input_problems_total{kind="entrypoint_too_large"} 1.0' in text


class TestConcurrency:
    """Requests in flight at the entry point, over the window and over the surge window."""

    def test_the_early_read_makes_the_surge_window_and_a_surge_is_met_in_one_step(self):
        """The read a surge window before the check makes that window, and a surge is met in one step."""
        environment = {
            "SCALING_ALGORITHM": "target",
            "TARGET_CONCURRENCY_PER_REPLICA": "2",
            "SCALE_UP_COOLDOWN": "0",
            "CHECK_INTERVAL": "30",
            "SURGE_WINDOW": "6",
        }
        harness = Harness([web(labels={"com.docker.stack.namespace": "s"})], {"s_web": 30.0}, environment)

        def entry_point(requests, in_flight_seconds):
            counters = replace(counted([0.05] * requests), in_flight_seconds=in_flight_seconds)
            return {ENTRY: exposition("web", counters, {"200": requests})}

        harness.entry = entry_point(0, 0.0)
        harness.check()
        harness.now += 24
        harness.entry = entry_point(100, 12.0)  # half a request in flight for 24 s
        harness.read_requests()
        harness.now += 6
        harness.entry = entry_point(130, 156.0)  # then 24 in flight for 6 s: a surge
        record = harness.check().services["s_web"]
        assert record.observation.concurrency == pytest.approx(156 / 30)
        assert record.observation.surge_concurrency == pytest.approx(24)
        reason = record.decision.reason
        # ceil(3 × 8 / 2) = 12, capped by the rate limit at 3 + 4.
        assert (reason.metric, reason.recommendation, record.decision.desired_replicas) == (
            "concurrency",
            12,
            7,
        )
        assert "surge" in reason.message
        shown = harness.status()["services"]["s_web"]["requests"]
        assert shown["surge_window_seconds"] == 6
        assert shown["surge_concurrency_per_ready_replica"] == 8
        assert shown["concurrency_per_ready_replica"] == pytest.approx(156 / 30 / 3, abs=0.001)


class LeaseRecords:
    """The lease as the engine keeps it, behind the store's interface: writes are conditional."""

    def __init__(self):
        self.record = Record("", 0, 1)
        self.refuse = False

    async def read(self):
        return self.record

    async def write(self, record):
        if self.refuse or record.version != self.record.version:
            raise LeaseStoreError("update out of sequence")
        self.record = Record(record.holder, record.term, self.record.version + 1)
        return self.record.version


def leader(records, name, now=0.0):
    """An instance's lease loop that has taken the lease at ``now`` (its monotonic clock stays there)."""
    leadership = Leadership(records, LeaseSettings(15, 10, 2), name, monotonic=lambda: now)
    records.record = Record(records.record.holder or name, records.record.term, records.record.version)
    asyncio.run(leadership.attempt())
    return leadership


class TestActiveInstance:
    def test_a_standby_reads_policies_but_neither_scales_nor_saves(self):
        """A standby reads every policy, for its routing table, and neither scales nor saves."""
        records = LeaseRecords()
        records.record = Record("other", 1, 5)
        standby = Leadership(records, LeaseSettings(15, 10, 2), "me", monotonic=lambda: 0.0)
        harness = Harness([web()], {"s_web": 95.0}, store=True, leadership=standby)
        asyncio.run(standby.attempt())
        state = harness.check()
        assert harness.api.updates == []
        assert harness.api.configs_by_id == {}
        assert state.services["s_web"].policy is not None  # so its routing table is the active one's
        assert state.services["s_web"].decision is None
        assert state.acting_term is None

    def test_the_active_instance_scales_and_says_so_on_its_endpoints(self):
        """The instance holding the lease scales, and /health and /status name it active with its term."""
        records = LeaseRecords()
        active = leader(records, "me")
        harness = Harness([web()], {"s_web": 95.0}, store=True, leadership=active)
        state = harness.check()
        assert harness.replicas() == 4
        assert state.acting_term == 1
        handlers = routes(lambda: state, CollectorRegistry(), lambda: NOW, 5, 90, leadership=active)
        health = json.loads(handlers["/health"]().body)
        assert health["leadership"]["instance"] == "me"
        assert health["leadership"]["active"] is True
        assert json.loads(handlers["/status"]().body)["leadership"]["term"] == 1

    def test_an_instance_deposed_before_its_write_does_not_write(self):
        """An instance whose lease is taken between its decision and its write writes nothing."""
        records = LeaseRecords()
        active = leader(records, "me")
        records.refuse = True  # another instance took the lease since the last renewal
        harness = Harness([web()], {"s_web": 95.0}, store=True, leadership=active)
        state = harness.check()
        assert harness.api.updates == []
        assert "lease lost" in state.problems.of("s_web")["leadership"]
        assert harness.api.configs_by_id == {}

    def test_a_deposed_instance_no_longer_reports_its_decisions(self):
        """A deposed instance stops showing decisions that are no longer the swarm's."""
        records = LeaseRecords()
        active = leader(records, "me")
        harness = Harness([web()], {"s_web": 95.0}, store=True, leadership=active)
        assert harness.check().services["s_web"].decision is not None
        records.record = Record("other", 2, records.record.version + 1)
        asyncio.run(active.attempt())
        state = harness.check()
        assert state.acting_term is None
        assert state.services["s_web"].decision is None
        assert state.services["s_web"].policy is not None

    def test_taking_the_lease_mid_check_gives_up_the_standbys_check_for_one_that_acts(self):
        """The standby's check waits on a dead node's collector; the one that acts follows at once."""
        records = LeaseRecords()
        records.record = Record("other", 1, 5)
        leadership = Leadership(records, LeaseSettings(15, 10, 2), "me", monotonic=lambda: 0.0)
        harness = Harness([web()], {"s_web": 95.0}, store=True, leadership=leadership)
        answers = harness.collector_answers()
        dead_node = asyncio.Event()  # never set: a collector that does not answer
        lookups = []

        async def resolve(host, port):
            lookups.append(host)
            if len(lookups) == 1:
                await dead_node.wait()
            return await resolver_for(answers)(host, port)

        async def go():
            await leadership.attempt()
            async with httpx.AsyncClient(transport=collector_transport(answers)) as client:
                daemon = harness.daemon(client, resolve)
                check = asyncio.create_task(daemon._check())
                await asyncio.sleep(0.1)
                assert harness.api.updates == []  # the standby's check is waiting
                records.record = Record(
                    "me", 1, records.record.version + 1
                )  # the holder's name: taken at once
                await leadership.attempt()
                await asyncio.wait_for(check, 5)
                return daemon.state

        state = asyncio.run(go())
        assert harness.replicas() == 4
        assert state.acting_term == 2

    def test_the_instance_that_takes_over_honours_the_cooldown_of_the_one_before(self):
        """The instance that takes the lease reads the saved state and honours the cooldown the other
        started."""
        records = LeaseRecords()
        harness = Harness([web()], {"s_web": 95.0}, store=True, leadership=leader(records, "a"))
        harness.check()
        assert harness.replicas() == 4
        # b stood by with its own memory; now a's manager is gone and b takes the lease.
        harness.restart()
        records.record = Record("b", 2, records.record.version + 1)
        harness.leadership = leader(records, "b")
        harness.now += 20
        state = harness.check()
        assert harness.replicas() == 4
        reason = state.services["s_web"].decision.reason
        assert (reason.action, reason.limited_by) == ("none", ("cooldown",))
        assert state.acting_term == 3


def raft_writes(api):
    """Counts the configs the fake engine creates and removes: each is a write to the managers' Raft store."""
    counts = {"writes": 0}
    for method in ("create_config", "remove_config"):
        real = getattr(api, method)

        def counted(*arguments, real=real, **keywords):
            counts["writes"] += 1
            return real(*arguments, **keywords)

        setattr(api, method, counted)
    return counts


class TestRaftWrites:
    @pytest.mark.parametrize("count", [3, 300])
    def test_the_writes_of_a_check_do_not_grow_with_the_services(self, count):
        """300 services, each changing: at most a document written and one removed per check, as with 3."""
        services = [web(service_id=f"s{index}", name=f"s_web{index}") for index in range(count)]
        harness = Harness(services, {f"s_web{index}": 95.0 for index in range(count)}, store=True)
        counts = raft_writes(harness.api)
        per_check = []
        for _ in range(6):
            before = counts["writes"]
            harness.check()
            harness.now += 61  # past the cooldown: every service scales at every check
            per_check.append(counts["writes"] - before)
        assert max(per_check) <= 2, per_check
        assert len(harness.api.updates) == 6 * count

    def test_a_quiet_service_is_saved_once_a_save_interval(self):
        """Nothing that matters for a restart: one save a STATE_SAVE_INTERVAL, not one a check."""
        harness = Harness([web()], {"s_web": 50.0}, {"STATE_SAVE_INTERVAL": "60"}, store=True)
        counts = raft_writes(harness.api)
        harness.check()  # the first save: nothing was saved yet
        first = counts["writes"]
        for _ in range(11):  # 55 s of checks every 5 s
            harness.now += 5
            harness.check()
        assert counts["writes"] == first
        harness.now += 5
        harness.check()  # 60 s on
        assert counts["writes"] > first


class TestConfigStateStore:
    def test_an_old_config_that_cannot_be_removed_does_not_fail_the_save(self):
        """A removal the engine refuses is tried again at the next save; the newest is always read."""
        api = FakeDockerApi([])
        store = ConfigStateStore(api, None)
        store.save(1, {"a": {"decision": persisted.dump(ServiceState(replicas=2))}}, {"a"})
        remove = api.remove_config

        def refuse(config_id):
            raise RuntimeError("raft unavailable")

        api.remove_config = refuse
        store.save(2, {"a": {"decision": persisted.dump(ServiceState(replicas=3))}}, {"a"})
        assert len(api.configs_by_id) == 2
        api.remove_config = remove
        store.save(3, {"a": {"decision": persisted.dump(ServiceState(replicas=4))}}, {"a"})
        (config,) = api.configs_by_id.values()
        assert config["Spec"]["Labels"]["autoscaler.state.sequence"] == "3"
        assert ConfigStateStore(api, None).load()[0]["a"].replicas == 4

    def test_a_forecaster_saved_earlier_is_kept_with_a_newer_decision(self):
        """A service's state is its newest decision with its newest forecaster, from two documents."""
        api = FakeDockerApi([])
        store = ConfigStateStore(api, None)
        forecaster = {"decision": persisted.dump(ServiceState(replicas=2)), "forecaster": None}
        store.save(
            1, {"a": forecaster, "b": {"decision": persisted.dump(ServiceState(replicas=7))}}, {"a", "b"}
        )
        store.save(2, {"a": {"decision": persisted.dump(ServiceState(replicas=3))}}, {"a"})
        # b is no longer autoscaled, but the first document holds a's newest forecaster: kept.
        assert len(api.configs_by_id) == 2
        states, problems = ConfigStateStore(api, None).load()
        assert (states["a"].replicas, problems) == (3, {})

    def test_documents_over_a_configs_size_are_split(self, monkeypatch):
        """Past the size of a config, the parts go into as many documents as it takes; all read back."""
        monkeypatch.setattr(state_store, "LARGEST_DOCUMENT", 200)
        api = FakeDockerApi([])
        entries = {
            f"s{index}": {"decision": persisted.dump(ServiceState(replicas=index))} for index in range(20)
        }
        ConfigStateStore(api, None).save(1, entries, set(entries))
        assert len(api.configs_by_id) > 1
        states, _ = ConfigStateStore(api, None).load()
        assert {key: state.replicas for key, state in states.items()} == {
            f"s{index}": index for index in range(20)
        }

    def test_a_document_of_the_version_before_is_read_and_superseded(self):
        """One config per service, as the version before wrote them: read, then removed by the first save."""
        api = FakeDockerApi([])
        api.create_config(
            "autoscaler-state-a-5",
            state_store.zlib.compress(json.dumps(persisted.dump(ServiceState(replicas=6))).encode()),
            labels={
                "autoscaler.state.scope": "swarm",
                "autoscaler.state.service": "a",
                "autoscaler.state.sequence": "5",
            },
        )
        store = ConfigStateStore(api, None)
        assert store.load()[0]["a"].replicas == 6
        # A service without a forecaster: its decision part alone supersedes the old config.
        store.save(6, {"a": {"decision": persisted.dump(ServiceState(replicas=6))}}, {"a"})
        (config,) = api.configs_by_id.values()
        assert config["Spec"]["Labels"]["autoscaler.state.format"] == "2"
