"""End to end: the status page, rendered by a real headless Chromium, shows the demo API's live numbers."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile

import httpx
import pytest

from tests.e2e.support import ROOT, Stack, keep, wait_until

pytestmark = pytest.mark.e2e

SCREENSHOT = ROOT / "build" / "status-page.png"
REPORT = ROOT / "build" / "e2e-status-page.json"
# Chromium as a probe of a page on loopback: nothing of its own goes out.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1500,520",
]


def chromium(url: str, *options: str) -> subprocess.CompletedProcess[str]:
    browser = shutil.which("chromium")
    assert browser, "chromium is required: run-tests.sh installs it"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *options, url],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )


class TestStatusPage:
    def test_chromium_renders_the_demo_apis_row_with_live_numbers(self, stack: Stack) -> None:
        """A real headless browser renders the status page with the demo API's live row."""
        service = stack.service("demo-api")

        def decided() -> dict | None:
            entry = httpx.get(stack.autoscaler + "/status", timeout=5).json()["services"].get(service)
            return (
                entry if entry and entry.get("last_hour") and entry.get("reason", {}).get("metric") else None
            )

        entry = wait_until("a decision for the demo API", decided, bool, 120)
        dom = chromium(stack.autoscaler + "/", "--dump-dom").stdout
        row = re.search(rf'<tr data-service="{re.escape(service)}">(.*?)</tr>', dom, re.DOTALL)
        assert row is not None, dom[:2000]
        text = row.group(1)
        replicas = re.search(r"(\d+) set · (\d+|—) ready", text)
        assert replicas is not None, text
        assert int(replicas.group(1)) == entry["desired_replicas"]
        metric = re.search(r"(cpu|memory|latency|errors|rps|concurrency) ([\d.]+) / ([\d.]+)", text)
        assert metric is not None, text
        assert "<polyline" in text
        SCREENSHOT.parent.mkdir(exist_ok=True)
        chromium(stack.autoscaler + "/", f"--screenshot={SCREENSHOT}")
        assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        keep(
            REPORT,
            row_replicas=replicas.group(0),
            row_metric=metric.group(0),
            screenshot=str(SCREENSHOT.relative_to(ROOT)),
            screenshot_bytes=SCREENSHOT.stat().st_size,
        )
