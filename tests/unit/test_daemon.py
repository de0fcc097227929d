import asyncio
import json
from http import HTTPStatus

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from autoscaler.api import routes
from autoscaler.daemon import Autoscaler
from autoscaler.settings import load
from autoscaler.swarm import Swarm
from autoscaler.telemetry import AutoscalerCollector
from tests.unit.fakes import FakeDockerApi, collector_transport, resolver_for, service

NOW = 1_800_000_000.0
LONG_AGO = "2020-01-01T00:00:00Z"
ENABLED = {"autoscaler.enable": "true"}


def collector_report(services):
    return {
        "services": {
            name: {"tasks": 2, "cpu_percent": cpu, "memory_percent": 10.0, "sampled_at": NOW - 2}
            for name, cpu in services.items()
        }
    }


class Harness:
    """The daemon with a fake engine and fake collectors, and a clock the test moves."""

    def __init__(self, services, cpu_by_service, environment=None):
        self.api = FakeDockerApi(services)
        self.now = NOW
        self.settings = load({"CHECK_INTERVAL": "5", "COOLDOWN_PERIOD": "60", **(environment or {})})
        self.reports = {"10.0.0.5": collector_report(cpu_by_service)}
        self.registry = CollectorRegistry()

    def check(self):
        async def go():
            async with httpx.AsyncClient(transport=collector_transport(self.reports)) as client:
                daemon = self.daemon(client)
                await daemon.check_once()
                return daemon

        self.daemon_state = asyncio.run(go()).state
        return self.daemon_state

    def daemon(self, client):
        daemon = Autoscaler(
            self.settings, Swarm(self.api), client, clock=lambda: self.now, resolve=resolver_for(self.reports)
        )
        if hasattr(self, "daemon_state"):
            daemon.state = self.daemon_state  # keep memory across checks, as the live loop does
        return daemon

    def handlers(self):
        registry = CollectorRegistry()
        registry.register(AutoscalerCollector(self.daemon_state))
        return routes(self.daemon_state, registry, lambda: self.now, 5, self.settings.policy.metrics_max_age)


class TestAutoscaler:
    def test_scales_a_busy_service_and_records_why(self):
        harness = Harness([service("a", "s_web", 3, ENABLED, LONG_AGO)], {"s_web": 95.0})
        state = harness.check()
        ((service_id, spec),) = harness.api.updates
        assert (service_id, spec["mode"]) == ("a", {"Replicated": {"Replicas": 4}})
        record = state.services["s_web"]
        assert record.decision.reason.metric == "cpu"
        assert state.scale_events[("s_web", "up")] == 1

    def test_the_cooldown_holds_the_next_change(self):
        harness = Harness([service("a", "s_web", 3, ENABLED, LONG_AGO)], {"s_web": 95.0})
        harness.check()
        harness.now += 30
        state = harness.check()
        assert len(harness.api.updates) == 1
        assert state.services["s_web"].decision.reason.limited_by == ("cooldown",)
        harness.now += 31
        harness.check()
        assert len(harness.api.updates) == 2

    def test_a_recently_updated_service_starts_in_cooldown(self):
        recent = "2027-01-15T08:00:00Z"  # NOW is 2027-01-15T08:00:00Z
        harness = Harness([service("a", "s_web", 3, ENABLED, recent)], {"s_web": 95.0})
        state = harness.check()
        assert harness.api.updates == []
        assert state.services["s_web"].decision.reason.limited_by == ("cooldown",)

    def test_a_bad_label_skips_only_that_service(self):
        services = [
            service("a", "s_web", 3, ENABLED, LONG_AGO),
            service("b", "s_bad", 3, {**ENABLED, "autoscaler.max_replicas": "many"}, LONG_AGO),
        ]
        harness = Harness(services, {"s_web": 95.0, "s_bad": 95.0})
        state = harness.check()
        assert [update[0] for update in harness.api.updates] == ["a"]
        assert "autoscaler.max_replicas" in state.services["s_bad"].config_error
        text = harness.handlers()["/metrics"]().body.decode()
        assert 'autoscaler_service_config_valid{service="s_bad"} 0.0' in text

    def test_an_unreachable_engine_is_reported_on_health(self):
        harness = Harness([service("a", "s_web", 3, ENABLED, LONG_AGO)], {"s_web": 95.0})
        harness.api.reachable = False
        harness.check()
        response = harness.handlers()["/health"]()
        assert response.status == HTTPStatus.SERVICE_UNAVAILABLE
        assert "docker api unreachable" in json.loads(response.body)["problems"][0]


class TestEndpoints:
    def test_health_status_and_metrics_after_a_check(self):
        harness = Harness([service("a", "s_web", 3, ENABLED, LONG_AGO)], {"s_web": 95.0})
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

    def test_health_is_unavailable_without_collectors(self):
        harness = Harness([service("a", "s_web", 3, ENABLED, LONG_AGO)], {})
        harness.reports = {}
        harness.check()
        body = json.loads(harness.handlers()["/health"]().body)
        assert any("no metrics collector answered" in problem for problem in body["problems"])

    def test_health_is_unavailable_before_the_first_check(self):
        harness = Harness([], {})
        harness.check()
        harness.daemon_state.last_check_at = None
        assert harness.handlers()["/health"]().status == HTTPStatus.SERVICE_UNAVAILABLE
