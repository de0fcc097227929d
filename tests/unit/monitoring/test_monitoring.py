"""The Prometheus configuration and alert rules in monitoring/, checked by Prometheus' own promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.paths import ROOT

MONITORING = ROOT / "monitoring"
EXPORTERS = (
    ROOT / "autoscaler" / "telemetry.py",
    ROOT / "metrics_collector" / "daemon.py",
    ROOT / "nginx" / "lua" / "metrics.lua",
)
OUR_METRIC = re.compile(r"\b((?:autoscaler|collector|entrypoint)_[a-z_]+)")


def promtool(*arguments: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    assert executable, "promtool is required: run-tests.sh installs Debian's prometheus package"
    return subprocess.run(
        [executable, *arguments], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def alerts(text: str) -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)$", text, flags=re.MULTILINE)


class TestMonitoring:
    def test_prometheus_accepts_the_configuration_and_its_rules(self) -> None:
        """promtool accepts the shipped Prometheus configuration and its rules."""
        checked = promtool("check", "config", "prometheus.yml")
        assert checked.returncode == 0, checked.stdout + checked.stderr

    def test_every_rule_passes_its_tests(self) -> None:
        """Every alert rule passes its promtool unit tests."""
        tested = promtool("test", "rules", "alerts_test.yml")
        assert tested.returncode == 0, tested.stdout + tested.stderr

    def test_every_alert_has_a_test(self) -> None:
        """Every alert has a test."""
        tested = set(re.findall(r"alertname: (\w+)", (MONITORING / "alerts_test.yml").read_text()))
        assert set(alerts((MONITORING / "alerts.yml").read_text())) - tested == set()

    def test_every_metric_an_alert_reads_is_exported(self) -> None:
        """Every metric of ours an alert reads is one a daemon exports."""
        exported = "".join(path.read_text() for path in EXPORTERS)
        read = set(OUR_METRIC.findall((MONITORING / "alerts.yml").read_text()))
        assert read
        assert {name for name in read if f'"{name.removesuffix("_total")}"' not in exported} == set()

    @pytest.mark.parametrize(
        ("rule", "changed"),
        [
            ('{quantile="0.95"} > 2', '{quantile="0.95"} > 3'),
            ("and on (service)", "or on (service)"),
            ("for: 10m", "for: 5m"),
        ],
    )
    def test_the_rule_tests_fail_on_a_changed_rule(self, rule: str, changed: str, tmp_path: Path) -> None:
        """The rule tests fail when a rule is changed: they can fail."""
        rules = (MONITORING / "alerts.yml").read_text()
        assert rule in rules
        (tmp_path / "alerts.yml").write_text(rules.replace(rule, changed, 1))
        shutil.copy(MONITORING / "alerts_test.yml", tmp_path)
        assert promtool("test", "rules", "alerts_test.yml", cwd=tmp_path).returncode != 0
