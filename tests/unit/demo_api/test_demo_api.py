import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
import websockets

from demo_api import items
from demo_api.__main__ import failure_fraction, work_milliseconds
from tests.unit.demo import running_demo


class TestDemoApi:
    @pytest.mark.parametrize(
        ("query", "expected"), [("ms=25", 25), ("", 10), ("ms=-1", None), ("ms=x", None), ("ms=5001", None)]
    )
    def test_work_parameter(self, query, expected):
        """?ms= is a whole number of CPU milliseconds up to 5000, 10 by default; else refused."""
        assert work_milliseconds(query) == expected

    def test_endpoints(self, demo_api):
        """/api/health answers, /api/work burns the CPU asked for and names the task, and a bad parameter
        is a 400."""
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
        """?p= is a fraction from 0 to 1, 0.1 by default; anything else is refused."""
        assert failure_fraction(query) == expected

    def test_wait_queues_beyond_its_workers(self, demo_api):
        """/api/wait queues requests beyond its workers, as a service short of replicas does."""
        # Six requests of 100 to 300 ms through two workers take three rounds.
        started = time.monotonic()
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: httpx.get(demo_api + "/api/wait?ms=200", timeout=30), range(6)))
        assert time.monotonic() - started >= 0.3
        assert [answer.status_code for answer in answers] == [200] * 6
        assert max(answer.json()["queued_ms"] for answer in answers) > 0
        assert httpx.get(demo_api + "/api/wait?ms=oops").status_code == 400

    def test_other_methods_and_paths_are_refused(self, demo_api):
        """Other methods are 405 and other paths 404."""
        assert httpx.post(demo_api + "/api/health").status_code == 405
        assert httpx.get(demo_api + "/nothing").status_code == 404

    def test_work_takes_a_post_with_a_body(self, demo_api):
        """A POST's body is read to its end, so that keep-alive connections stay usable."""
        with httpx.Client() as client:
            for _ in range(3):  # on one keep-alive connection: each body read to its end
                answer = client.post(demo_api + "/api/work?ms=2", content=b"x" * 5000)
                assert (answer.status_code, answer.json()["cpu_ms"]) == (200, 2)

    def test_flaky_fails_the_fraction_asked_for(self, demo_api):
        """/api/flaky fails with 500 about the fraction asked for."""
        with httpx.Client() as client:
            assert {client.get(demo_api + "/api/flaky?p=1").status_code for _ in range(5)} == {500}
            assert {client.get(demo_api + "/api/flaky?p=0").status_code for _ in range(5)} == {200}
            codes = [client.get(demo_api + "/api/flaky?p=0.5").status_code for _ in range(200)]
        assert 60 <= codes.count(500) <= 140  # binomial(200, 0.5): outside this about once in 10^8 runs


class TestEcho:
    def test_a_websocket_gets_each_message_back_from_one_task(self, demo_api):
        """/api/echo answers each message on the same connection, naming the task."""

        async def exchange():
            url = demo_api.replace("http://", "ws://") + "/api/echo"
            async with websockets.connect(url) as connection:
                answers = []
                for message in ("one", "two"):
                    await connection.send(message)
                    answers.append(json.loads(await connection.recv()))
                return answers

        answers = asyncio.run(exchange())
        assert [answer["message"] for answer in answers] == ["one", "two"]
        assert len({(answer["served_by"], answer["hostname"]) for answer in answers}) == 1


class TestItemsWithoutADataTier:
    """Without DATA_ROUTER the item endpoints exist and say why they cannot answer: a fast 503."""

    def test_items_answer_503_at_once(self, demo_api):
        """Without DATA_ROUTER the item endpoints answer 503 at once and say why."""
        started = time.monotonic()
        assert httpx.post(demo_api + "/api/items", json={"value": "x"}).status_code == 503
        answer = httpx.get(demo_api + "/api/items/1")
        assert (answer.status_code, "DATA_ROUTER" in answer.json()["error"]) == (503, True)
        assert httpx.get(demo_api + "/api/items?search=x").status_code == 503
        assert time.monotonic() - started < 5  # a bound for a hang, far beyond an answer

    @pytest.mark.parametrize(
        "body", [b"not json", b'{"value": 5}', b"[]", b'{"value": "' + b"x" * 10_001 + b'"}']
    )
    def test_a_bad_item_is_refused_before_the_database(self, demo_api, body):
        """A malformed item is a 400 before any database is asked."""
        assert httpx.post(demo_api + "/api/items", content=body).status_code == 400

    def test_an_item_id_is_a_whole_number(self, demo_api):
        """An item id that is not a whole number is no such path: 404."""
        assert httpx.get(demo_api + "/api/items/abc").status_code == 404


class TestGracefulShutdown:
    """At SIGTERM: no new connections, requests in flight finish, idle keep-alive connections close."""

    def test_a_request_in_flight_finishes(self):
        """On SIGTERM a request in flight is served to its end before the process exits."""
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
        """An idle keep-alive connection is closed at shutdown and does not hold the exit."""
        with running_demo() as demo, httpx.Client() as client:
            assert client.get(demo.url + "/api/health").status_code == 200
            demo.stop()
            assert demo.stopped()


class LosingPool:
    """A pool at the I/O boundary whose first ``losses`` connections are lost mid-query."""

    def __init__(self, losses):
        self.losses = losses
        self.checks = 0
        self.queries = 0

    def connection(self):
        pool = self

        class Lease:
            async def __aenter__(self):
                return self

            async def __aexit__(self, *_):
                return False

            async def execute(self, query, parameters):  # noqa: ARG002 - the query is the store's
                pool.queries += 1
                if pool.queries <= pool.losses:
                    raise psycopg.OperationalError("server closed the connection unexpectedly")
                return self

            async def fetchone(self):
                return (3, "10.0.0.7")

        return Lease()

    async def check(self):
        self.checks += 1


class TestReadsAfterALostConnection:
    def store(self, monkeypatch, losses):
        monkeypatch.setattr(
            items, "ROUTER_MARKS_DOWN_SECONDS", 0.0
        )  # the wait for the router, not its length
        store = items.ItemStore(items.DataSettings("tasks.data-router", "secret", 2, 1))
        store.reads = store.writes = LosingPool(losses)
        return store

    def test_a_read_is_tried_on_other_connections_twice_after_a_check_of_the_pool(self, monkeypatch):
        """A replica killed mid-read: its other connections are dropped once the router marks it down."""
        store = self.store(monkeypatch, losses=2)
        assert asyncio.run(store.search("abc")) == (3, "10.0.0.7")
        assert store.reads.checks == 2

    def test_a_read_that_loses_three_connections_is_a_503(self, monkeypatch):
        """A read that loses its connection three times is a 503, after three tries."""
        store = self.store(monkeypatch, losses=3)
        with pytest.raises(items.UnavailableError):
            asyncio.run(store.search("abc"))
        assert store.reads.queries == 3

    def test_a_write_is_never_tried_again(self, monkeypatch):
        """It may have committed before the connection was lost."""
        store = self.store(monkeypatch, losses=1)
        store.schema_ready = True
        with pytest.raises(items.UnavailableError):
            asyncio.run(store.create("value"))
        assert store.writes.queries == 1
