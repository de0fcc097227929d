"""The entry point's rate limit on a real nginx: what is above it is refused at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.real_nginx import Proxy, started

SYNC_INTERVAL = 0.2
"""Seconds between two looks of each worker at the pushed limits (ratelimit.lua)."""


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    """Before one task that answers: every try at a task is a request the limit let through."""
    with started(tmp_path, ["127.0.0.1"]) as running:
        yield running


def limited(proxy: Proxy, lines: list[str]) -> None:
    """Push the limits and wait until every worker has them."""
    assert proxy.limit(lines).status_code == 200
    time.sleep(3 * SYNC_INTERVAL)


def burst_of(client: httpx.Client, requests: int) -> tuple[list[httpx.Response], float]:
    """``requests`` sent one after the other as fast as they are answered, and the seconds they took."""
    started = time.monotonic()
    answers = [client.get("/api/ok") for _ in range(requests)]
    return answers, time.monotonic() - started


def tries(proxy: Proxy) -> float:
    text = httpx.get(proxy.metrics, timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "entrypoint_upstream_tries"
        for sample in family.samples
    )


class TestRateLimit:
    def test_without_a_limit_nothing_is_refused(self, proxy: Proxy) -> None:
        """A service without a limit has nothing refused, however fast requests come."""
        with httpx.Client(base_url=proxy.entry) as client:
            answers, _ = burst_of(client, 50)
        assert {answer.status_code for answer in answers} == {200}
        assert (
            httpx.get(proxy.admin + "/nginx/status", timeout=5).json()["services"]["web"]["rate_limit"]
            is None
        )

    def test_above_the_limit_requests_are_refused_at_once_with_retry_after(self, proxy: Proxy) -> None:
        """Above the limit, requests are refused at once with 503 and Retry-After, not queued."""
        limited(proxy, ["web 10 5"])
        with httpx.Client(base_url=proxy.entry) as client:
            answers, seconds = burst_of(client, 60)
        admitted = [answer for answer in answers if answer.status_code == 200]
        refused = [answer for answer in answers if answer.status_code != 200]
        # The burst at once, then 10 a second: at most one more for a race between workers.
        assert 5 <= len(admitted) <= 5 + 10 * seconds + 1
        assert {answer.status_code for answer in refused} == {503}
        assert all(int(answer.headers["Retry-After"]) >= 1 for answer in refused)
        proxy.counters(len(answers))
        assert tries(proxy) == len(admitted), "a refused request reached a task"
        status = httpx.get(proxy.admin + "/nginx/status", timeout=5).json()["services"]["web"]
        assert status["rate_limit"] == {"requests_per_second": 10, "burst": 5, "refused": len(refused)}
        text = httpx.get(proxy.metrics, timeout=5).text
        assert 'entrypoint_rate_limit_requests_per_second{service="web"} 10' in text
        assert 'entrypoint_rate_limit_burst_requests{service="web"} 5' in text
        assert f'entrypoint_rate_limited_requests_total{{service="web"}} {len(refused)}' in text

    def test_requests_within_the_limit_all_pass(self, proxy: Proxy) -> None:
        """Requests within the rate and burst all pass."""
        limited(proxy, ["web 20 2"])
        codes = []
        with httpx.Client(base_url=proxy.entry) as client:
            for _ in range(15):
                codes.append(client.get("/api/ok").status_code)
                time.sleep(0.1)  # 10 a second at most, half the limit
        assert codes == [200] * 15

    def test_an_empty_push_lifts_the_limit(self, proxy: Proxy) -> None:
        """Pushing no limits lifts the limit."""
        limited(proxy, ["web 1 1"])
        limited(proxy, [])
        with httpx.Client(base_url=proxy.entry) as client:
            answers, _ = burst_of(client, 20)
        assert {answer.status_code for answer in answers} == {200}

    def test_a_push_that_is_not_a_limit_is_refused_and_changes_nothing(self, proxy: Proxy) -> None:
        """A limit that is not a positive finite rate and burst for a service is refused whole."""
        limited(proxy, ["web 10 5"])
        url = proxy.control.replace("/configuration/backends", "/configuration/rate_limits")
        bad = ["web 0 5", "web -1 5", "web nan 5", "web inf 5", "web 10 0", "web 10", "web; 10 5", "$x 1 1"]
        for line in bad:
            response = proxy.limit(["other 5 5", line])
            assert (line, response.status_code) == (line, 400)
            assert httpx.get(url, timeout=5).text == "web 10 5\n"
