import asyncio
import threading
from http.server import ThreadingHTTPServer

import httpx
import pytest

from demo_api.__main__ import Handler, work_milliseconds
from loadtest.__main__ import Outcome, parse_arguments, percentile, run_load, summarize


@pytest.fixture
def demo_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class TestDemoApi:
    @pytest.mark.parametrize(
        ("query", "expected"), [("ms=25", 25), ("", 10), ("ms=-1", None), ("ms=x", None), ("ms=5001", None)]
    )
    def test_work_parameter(self, query, expected):
        assert work_milliseconds(query) == expected

    def test_endpoints(self, demo_api):
        assert httpx.get(demo_api + "/api/health").json() == {"status": "ok"}
        work = httpx.get(demo_api + "/api/work?ms=5").json()
        assert work["served_by"] == "127.0.0.1"
        assert work["cpu_ms"] == 5
        assert httpx.get(demo_api + "/api/work?ms=oops").status_code == 400
        assert httpx.get(demo_api + "/elsewhere").status_code == 404


class TestSummarize:
    def test_percentiles_are_nearest_rank(self):
        values = [float(v) for v in range(1, 101)]
        assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 1.0)) == (50, 95, 100)

    def test_counts_errors_and_statuses(self):
        outcomes = [
            Outcome(0.010, "200"),
            Outcome(0.020, "200"),
            Outcome(0.5, "503"),
            Outcome(1.0, "ConnectError"),
        ]
        summary = summarize(outcomes, duration=2.0)
        assert (summary.requests, summary.errors, summary.requests_per_second) == (4, 2, 2.0)
        assert summary.statuses == {"200": 2, "503": 1, "ConnectError": 1}
        assert summary.latency_ms["p50"] == 20.0


class TestRunLoad:
    def test_loads_a_real_server_and_stops_at_the_request_bound(self, demo_api):
        summary = asyncio.run(
            run_load(demo_api + "/api/work?ms=1", users=4, duration=10, max_requests=40, request_timeout=5)
        )
        assert 40 <= summary.requests < 44  # each user may have one request in flight at the bound
        assert summary.errors == 0

    @pytest.mark.parametrize("arguments", [["--users", "0"], ["--duration", "0"], ["--duration", "99999"]])
    def test_unbounded_runs_are_refused(self, arguments):
        with pytest.raises(SystemExit):
            parse_arguments(arguments)
