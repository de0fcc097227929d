"""The entry point's request counters, on a real nginx in front of a real upstream."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.entrypoint_page import parse
from tests.unit.real_nginx import FLUSH_INTERVAL, started


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


class TestMeasurement:
    def test_every_request_is_counted_by_status_and_duration(self, proxy):
        """Every request nginx proxies is counted under its status and in the duration histogram."""
        with httpx.Client(base_url=proxy.entry) as client:
            codes = [client.get(path).status_code for path in ["/api/ok"] * 30 + ["/api/fail"] * 5]
        assert codes.count(200) == 30
        text = proxy.counters(35)
        requests = samples(text, "entrypoint_requests_total")
        assert requests == {
            (("code", "200"), ("service", "web")): 30,
            (("code", "500"), ("service", "web")): 5,
        }
        reading = parse(text)
        assert reading.malformed == {}
        web = reading.services["web"]
        assert (web.requests, web.errors, web.cumulative[-1]) == (35, 5, 35)

    def test_durations_land_in_their_buckets(self, proxy):
        """Each request's duration lands in the bucket its measured time belongs to."""
        seen = []
        with httpx.Client(base_url=proxy.entry, timeout=30) as client:
            for _ in range(10):
                started = time.monotonic()
                assert client.get("/api/sleep", params={"ms": 300}).status_code == 200
                seen.append(time.monotonic() - started)
        web = parse(proxy.counters(10)).services["web"]
        # nginx's time lies within the client's, and a bucket is at most a third wide.
        assert 0.3 <= web.quantile(0.5) <= 4 / 3 * max(seen)
        upstream = samples(proxy.counters(10), "entrypoint_upstream_response_duration_seconds_count")
        assert upstream[(("service", "web"),)] >= 10

    def test_a_retried_request_counts_once_and_each_try_at_its_task(self, proxy):
        """A retried request is one request; each try is counted at the task it went to."""
        with httpx.Client(base_url=proxy.entry) as client:
            codes = [client.get("/api/ok").status_code for _ in range(20)]
        assert codes == [200] * 20
        text = proxy.counters(20)
        assert samples(text, "entrypoint_requests_total") == {(("code", "200"), ("service", "web")): 20}
        tries = samples(text, "entrypoint_upstream_tries_total")
        refused = tries.get((("service", "web"), ("status", "502"), ("upstream", proxy.refusing)), 0)
        answered = tries[(("service", "web"), ("status", "200"), ("upstream", proxy.upstream))]
        assert refused >= 1, tries  # the task that refuses was tried at least once, then left out
        assert answered == 20
        upstream_count = samples(text, "entrypoint_upstream_response_duration_seconds_count")
        assert upstream_count[(("service", "web"),)] == refused + answered

    def test_the_counters_outlive_a_reload(self, proxy):
        """The counters live in shared memory and outlive a reload of the workers."""
        with httpx.Client(base_url=proxy.entry) as client:
            for _ in range(7):
                client.get("/api/ok")
        before = proxy.workers()
        proxy.reload()
        deadline = time.monotonic() + 10
        while (proxy.workers() & before) and time.monotonic() < deadline:
            time.sleep(0.1)  # the old workers finish and new ones start
        assert not proxy.workers() & before, "nginx did not reload"
        with httpx.Client(base_url=proxy.entry) as client:
            client.get("/api/ok")
        assert parse(proxy.counters(8)).services["web"].requests == 8

    def test_requests_in_flight_are_counted_while_they_last(self, proxy):
        """The gauge shows them before they end; the request-seconds add up to the time they took."""

        def slow_request(_: int) -> float:
            started = time.monotonic()
            assert httpx.get(proxy.entry + "/api/sleep", params={"ms": 1500}, timeout=30).status_code == 200
            return time.monotonic() - started

        with ThreadPoolExecutor(6) as pool:
            durations = pool.map(slow_request, range(6))
            time.sleep(2 * FLUSH_INTERVAL - 0.2)  # every worker has flushed since they started
            during = httpx.get(proxy.metrics).text
            seen = list(durations)
        assert samples(during, "entrypoint_requests_in_flight") == {(("service", "web"),): 6}
        counted_during = parse(during).services["web"].in_flight_seconds
        assert counted_during is not None
        assert counted_during >= 6 * 0.5, "requests not yet ended count too"
        after = proxy.counters(6)
        assert samples(after, "entrypoint_requests_in_flight") == {(("service", "web"),): 0}
        busy = parse(after).services["web"].in_flight_seconds
        assert busy is not None
        assert 6 * 1.5 <= busy <= sum(seen)

    def test_requests_outside_the_proxied_location_are_not_counted(self, proxy):
        """Requests outside a proxied location, such as nginx's own health, are not counted."""
        assert httpx.get(proxy.entry + "/nginx-health").status_code == 200
        time.sleep(2 * FLUSH_INTERVAL)
        web = parse(proxy.counters(0)).services["web"]
        assert (web.requests, web.cumulative[-1]) == (0, 0)

    def test_a_service_is_reported_before_its_first_request(self, proxy):
        """A routed service is on the page with zeros before its first request: idle, not unknown."""
        text = httpx.get(proxy.metrics).text
        assert parse(text).services["web"].requests == 0
        assert samples(text, "entrypoint_request_duration_seconds_count") == {(("service", "web"),): 0}

    def test_a_request_no_task_could_take_is_an_error_with_no_try(self, tmp_path):
        """A request with no task to take it is a counted 503 with no try."""
        with started(tmp_path, []) as no_tasks:
            assert httpx.get(no_tasks.entry + "/api/ok").status_code == 503
            text = no_tasks.counters(1)
        web = parse(text).services["web"]
        assert (web.requests, web.errors) == (1, 1)
        assert samples(text, "entrypoint_upstream_tries_total") == {}
