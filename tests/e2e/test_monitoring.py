"""End to end: Prometheus, deployed with the stack, scrapes every target and raises the maxed-out alert.

A service made here from the demo API's image, with a tenth of a core per task and at
most 3 replicas (its labels), takes /api/work at the entry point. Closed-loop users keep
it hot: the autoscaler takes it to 3 replicas and then asks for more at every check, and
Prometheus, reading the autoscaler's /metrics, puts ServiceAtMaxReplicas pending.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.support import ROOT, Stack, keep, start_load, stop_load, wait_until
from tests.e2e.test_routing import routed_service

pytestmark = pytest.mark.e2e

REPORT = ROOT / "build" / "e2e-monitoring.json"
HOT = "hot"
MAX_REPLICAS = 3
JOBS = {"autoscaler", "metrics-collector", "entrypoint", "postgres", "redis", "data-agent", "data-router"}


def query(stack: Stack, path: str, **params: str) -> Any:
    """The ``data`` of a Prometheus HTTP API answer."""
    answer = httpx.get(f"{stack.prometheus}/api/v1/{path}", params=params, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]


def active_targets(stack: Stack) -> list[dict[str, Any]]:
    """The targets Prometheus discovers now (not series kept from an earlier run)."""
    return list(query(stack, "targets", state="active")["activeTargets"])


def every_job_up(targets: list[dict[str, Any]]) -> bool:
    """Each job has a target, and every target's last scrape succeeded."""
    return {target["labels"]["job"] for target in targets} == JOBS and all(
        target["health"] == "up" for target in targets
    )


def max_replicas_alerts(stack: Stack) -> list[dict[str, Any]]:
    return [
        alert
        for alert in query(stack, "alerts")["alerts"]
        if alert["labels"]["alertname"] == "ServiceAtMaxReplicas"
        and alert["labels"].get("service") == stack.service(HOT)
    ]


@pytest.fixture
def hot(stack: Stack) -> Iterator[Stack]:
    labels = {
        "autoscaler.enable": "true",
        "autoscaler.min_replicas": "1",
        "autoscaler.max_replicas": str(MAX_REPLICAS),
        "entrypoint.path": "/api/work",
        "entrypoint.port": "8000",
    }
    with routed_service(stack, HOT, labels, replicas=1, options=["--limit-cpu", "0.1"]):
        yield stack


class TestMonitoring:
    def test_prometheus_scrapes_every_target_and_evaluates_every_rule(self, stack: Stack) -> None:
        """The deployed Prometheus scrapes every daemon's tasks and evaluates every rule."""
        active = wait_until("every job's targets scraped", lambda: active_targets(stack), every_job_up, 120)
        up = query(stack, "query", query="up")["result"]
        assert {sample["value"][1] for sample in up} == {"1"}, up
        groups = wait_until(
            "every rule evaluated",
            lambda: query(stack, "rules")["groups"],
            lambda groups: all(rule["health"] == "ok" for group in groups for rule in group["rules"]),
            60,
        )
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) == 16
        assert not [rule for rule in rules if rule.get("lastError")]
        keep(
            REPORT,
            targets_up=sorted(
                f"{target['labels']['job']} {target['labels']['instance']}" for target in active
            ),
            scrape_ms=sorted(round(target["lastScrapeDuration"] * 1000, 2) for target in active),
            rules_ok=len(rules),
            rule_group_evaluation_ms={
                group["name"]: round(group["evaluationTime"] * 1000, 2) for group in groups
            },
        )

    def test_a_service_hot_at_its_maximum_replicas_raises_the_alert(self, hot: Stack) -> None:
        """A service held hot at its maximum replicas raises its alert in the real Prometheus."""
        stack = hot
        load = start_load(stack, users=8, path="/api/work?ms=50", duration=300)
        started = time.monotonic()
        try:
            alerts = wait_until(
                "ServiceAtMaxReplicas pending or firing",
                lambda: max_replicas_alerts(stack),
                lambda alerts: any(alert["state"] in {"pending", "firing"} for alert in alerts),
                240,
            )
            seen_after = time.monotonic() - started
            status = httpx.get(f"{stack.autoscaler}/status", timeout=5).json()["services"][stack.service(HOT)]
        finally:
            stop_load(load)
        assert status["desired_replicas"] == MAX_REPLICAS
        assert "max_replicas" in status["reason"]["limited_by"]
        assert float(alerts[0]["value"]) == 1.0
        assert every_job_up(active_targets(stack))
        keep(
            REPORT, max_replicas_alert=alerts[0]["state"], alert_seen_after_load_seconds=round(seen_after, 1)
        )
