"""The status page and the last hour it draws: from a /status snapshot to HTML."""

from __future__ import annotations

import re

from autoscaler.core import Decision, Reason, ServiceState
from autoscaler.page import render
from autoscaler.timeline import HOUR, MOST_CHANGES, Timeline

NOW = 1_800_000_000.0


def decision(current: int, desired: int, message: str = "cpu 90.0% > 70%") -> Decision:
    reason = Reason("linear", "scale_up", message, metric="cpu", value=90.0, threshold=70.0)
    return Decision(current, desired, reason, ServiceState())


def snapshot(**entry: object) -> dict[str, object]:
    service = {
        "desired_replicas": 3,
        "current_replicas": 2,
        "ready_replicas": 2,
        "reason": {"message": "cpu 90.0% > 70%", "metric": "cpu", "value": 90.0, "threshold": 70.0},
        "problems": [],
        "last_hour": [[NOW - 600, 2, 2, "cpu", 50.0, 70.0], [NOW - 30, 3, 2, "cpu", 90.0, 70.0]],
        "last_changes": [
            {"at": NOW - 30, "replicas_from": 2, "replicas_to": 3, "message": "cpu 90.0% > 70%"}
        ],
        **entry,
    }
    return {"last_check_at": NOW - 5, "problems": [], "services": {"stack_web": service}}


class TestTimeline:
    def test_keeps_an_hour_of_points_and_only_the_changes_made(self):
        """The timeline keeps an hour of checks and, apart, only the checks that made a change."""
        timeline = Timeline()
        for step in range(150):
            timeline.add(decision(2, 3), ready=2, now=NOW + 30 * step, changed=step % 50 == 0)
        assert timeline.points[0].at > NOW + 30 * 149 - HOUR
        assert len(timeline.points) == HOUR / 30
        assert [change.at for change in timeline.changes] == [NOW, NOW + 1500, NOW + 3000]

    def test_keeps_the_last_changes_only(self):
        """Only the last changes are kept, however many were made."""
        timeline = Timeline()
        for step in range(MOST_CHANGES + 5):
            timeline.add(decision(2, 3, f"change {step}"), ready=2, now=NOW + step, changed=True)
        assert len(timeline.changes) == MOST_CHANGES
        assert timeline.changes[-1].message == f"change {MOST_CHANGES + 4}"


class TestPage:
    def test_a_service_row_shows_replicas_decision_chart_and_changes(self):
        """A service's row shows its replicas, its last decision, its chart and its changes."""
        page = render(snapshot(), NOW)
        row = re.search(r'<tr data-service="stack_web">.*?</tr>', page, re.DOTALL)
        assert row is not None
        text = row.group(0)
        assert "3 set · 2 ready" in text
        assert "cpu 90 / 70" in text
        assert text.count("<polyline") == 3  # the metric, the replicas set and those ready
        assert "2 → 3" in text
        assert '<meta http-equiv="refresh"' in page

    def test_it_loads_nothing_from_anywhere(self):
        """The page loads no script and nothing from elsewhere: it works without internet."""
        page = render(snapshot(), NOW)
        assert "<script" not in page
        assert not re.search(r'(src|href)="(?!/status")', page)
        assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")

    def test_what_comes_from_labels_and_reasons_is_escaped(self):
        """Text from labels and reasons is escaped: a label cannot inject markup."""
        page = render(snapshot(reason={"message": "<script>alert(1)</script>"}), NOW)
        assert "<script>" not in page
        assert "&lt;script&gt;" in page

    def test_a_service_with_a_bad_label_says_why_it_is_skipped(self):
        """A service with a bad label shows why it is skipped."""
        page = render({"services": {"stack_bad": {"config_error": "autoscaler.max_replicas='many'"}}}, NOW)
        assert "skipped: autoscaler.max_replicas=&#x27;many&#x27;" in page

    def test_no_service_says_so(self):
        """With no autoscaled service the page says how to label one."""
        assert "No service is labelled autoscaler.enable=true" in render({"services": {}}, NOW)
