import asyncio
import csv
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from demo_api.__main__ import failure_fraction, server, work_milliseconds
from loadtest.__main__ import Outcome, main, parse_arguments, percentile, run_load, summarize


@dataclass
class Running:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        """What SIGTERM does to the demo API."""
        self.server.should_exit = True

    def stopped(self) -> bool:
        self.thread.join(timeout=10)  # a bound for a hang, far beyond a prompt exit
        return not self.thread.is_alive()


@contextmanager
def running_demo() -> Iterator[Running]:
    demo = server("127.0.0.1", 0, wait_workers=2)
    thread = threading.Thread(target=demo.run, daemon=True)
    thread.start()
    while not demo.started:
        time.sleep(0.01)
    port = demo.servers[0].sockets[0].getsockname()[1]
    running = Running(f"http://127.0.0.1:{port}", demo, thread)
    try:
        yield running
    finally:
        running.stop()
        thread.join(timeout=30)


@pytest.fixture
def demo_api() -> Iterator[str]:
    with running_demo() as running:
        yield running.url


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

    @pytest.mark.parametrize(
        ("query", "expected"), [("p=0.25", 0.25), ("", 0.1), ("p=1.5", None), ("p=x", None)]
    )
    def test_failure_parameter(self, query, expected):
        assert failure_fraction(query) == expected

    def test_wait_queues_beyond_its_workers(self, demo_api):
        # Six requests of 100 to 300 ms through two workers take three rounds.
        started = time.monotonic()
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: httpx.get(demo_api + "/api/wait?ms=200", timeout=30), range(6)))
        assert time.monotonic() - started >= 0.3
        assert [answer.status_code for answer in answers] == [200] * 6
        assert max(answer.json()["queued_ms"] for answer in answers) > 0
        assert httpx.get(demo_api + "/api/wait?ms=oops").status_code == 400

    def test_other_methods_and_paths_are_refused(self, demo_api):
        assert httpx.post(demo_api + "/api/health").status_code == 405
        assert httpx.get(demo_api + "/nothing").status_code == 404

    def test_work_takes_a_post_with_a_body(self, demo_api):
        with httpx.Client() as client:
            for _ in range(3):  # on one keep-alive connection: each body read to its end
                answer = client.post(demo_api + "/api/work?ms=2", content=b"x" * 5000)
                assert (answer.status_code, answer.json()["cpu_ms"]) == (200, 2)

    def test_flaky_fails_the_fraction_asked_for(self, demo_api):
        with httpx.Client() as client:
            assert {client.get(demo_api + "/api/flaky?p=1").status_code for _ in range(5)} == {500}
            assert {client.get(demo_api + "/api/flaky?p=0").status_code for _ in range(5)} == {200}
            codes = [client.get(demo_api + "/api/flaky?p=0.5").status_code for _ in range(200)]
        assert 60 <= codes.count(500) <= 140  # binomial(200, 0.5): outside this about once in 10^8 runs


class TestGracefulShutdown:
    """At SIGTERM: no new connections, requests in flight finish, idle keep-alive connections close."""

    def test_a_request_in_flight_finishes(self):
        with running_demo() as demo, ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(httpx.get, demo.url + "/api/wait?ms=1000", timeout=30)
            while not demo.server.server_state.tasks:
                time.sleep(0.01)  # until the request is being served
            demo.stop()
            assert in_flight.result().status_code == 200
            assert demo.stopped()
            with pytest.raises(httpx.ConnectError):
                httpx.get(demo.url + "/api/health")

    def test_an_idle_keep_alive_connection_does_not_hold_the_exit(self):
        with running_demo() as demo, httpx.Client() as client:
            assert client.get(demo.url + "/api/health").status_code == 200
            demo.stop()
            assert demo.stopped()


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
        outcomes, duration = asyncio.run(
            run_load(demo_api + "/api/work?ms=1", users=4, duration=10, max_requests=40, request_timeout=5)
        )
        summary = summarize(outcomes, duration)
        assert 40 <= summary.requests < 44  # each user may have one request in flight at the bound
        assert summary.errors == 0

    def test_the_record_has_every_request(self, demo_api, tmp_path):
        started = time.time()
        main(
            [
                "--target",
                demo_api,
                "--path",
                "/api/work?ms=1",
                "--max-requests",
                "12",
                "--record",
                str(tmp_path / "r"),
            ]
        )
        with (tmp_path / "r").open() as file:
            rows = list(csv.DictReader(file))
        assert 12 <= len(rows) < 22
        assert all(row["status"] == "200" for row in rows)
        assert all(started <= float(row["finished_at"]) <= time.time() for row in rows)
        assert all(0 < float(row["latency_ms"]) < 5000 for row in rows)

    @pytest.mark.parametrize("arguments", [["--users", "0"], ["--duration", "0"], ["--duration", "99999"]])
    def test_unbounded_runs_are_refused(self, arguments):
        with pytest.raises(SystemExit):
            parse_arguments(arguments)
