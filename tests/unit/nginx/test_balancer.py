"""nginx's balancer on a real nginx: the tasks the agent pushes, without a reload."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from autoscaler.entrypoint_page import parse
from nginx.adapters import PushFailedError, http_pusher
from nginx.routes import Route
from tests.unit.nginx.shared import PROXY
from tests.unit.real_nginx import Proxy, free_port, started, upstream_server

SYNC_INTERVAL = 0.2
"""Seconds between two looks of each worker at the pushed tasks (balancer.lua)."""


def answered_by(client: httpx.Client, requests: int) -> Counter[str]:
    """The port of the task that answered each request."""
    answers = [client.get("/api/ok") for _ in range(requests)]
    assert [answer.status_code for answer in answers] == [200] * requests
    return Counter(answer.text.strip() for answer in answers)


def until_answered_only_by(client: httpx.Client, ports: set[int]) -> None:
    """Requests until every worker has taken the pushed tasks (they look every SYNC_INTERVAL)."""
    wanted = [(200, str(port)) for port in sorted(ports)]
    deadline = time.monotonic() + 10
    while True:
        answers = [client.get("/api/ok") for _ in range(10)]
        if sorted({(answer.status_code, answer.text.strip()) for answer in answers}) == wanted:
            return
        assert time.monotonic() < deadline, f"requests never went only to {ports}: {answers}"
        time.sleep(SYNC_INTERVAL)


def until_refused(client: httpx.Client, path: str) -> None:
    """Requests until every worker refuses ``path`` with 503 (they look every SYNC_INTERVAL)."""
    deadline = time.monotonic() + 10
    while {client.get(path).status_code for _ in range(6)} != {503}:
        assert time.monotonic() < deadline, f"{path} still answered"
        time.sleep(SYNC_INTERVAL)


@contextmanager
def dying_then_healthy(tmp_path: Path) -> Iterator[tuple[Proxy, int, int]]:
    """nginx with two tasks pushed, in this order: one that answers 503 (dying), one that answers."""
    with upstream_server(dying=True) as dying, upstream_server() as healthy, started(tmp_path, []) as proxy:
        assert proxy.push([f"127.0.0.1:{dying}", f"127.0.0.1:{healthy}"]).status_code == 200
        yield proxy, dying, healthy


class TestBalancer:
    def test_requests_go_in_turn_to_every_pushed_task(self, tmp_path: Path) -> None:
        """Requests go in turn to every task pushed, evenly."""
        with upstream_server() as first, upstream_server() as second, started(tmp_path, []) as proxy:
            assert proxy.push([f"127.0.0.1:{first}", f"127.0.0.1:{second}"]).status_code == 200
            assert proxy.tasks() == [f"127.0.0.1:{first}", f"127.0.0.1:{second}"]
            with httpx.Client(base_url=proxy.entry) as client:
                until_answered_only_by(client, {first, second})
                spread = answered_by(client, 40)
        # One keep-alive connection is one worker's, whose turns alternate exactly.
        assert spread == {str(first): 20, str(second): 20}

    def test_a_push_changes_the_tasks_without_a_reload(self, tmp_path: Path) -> None:
        """A push changes where requests go with the same nginx workers: no reload."""
        with upstream_server() as second, started(tmp_path, ["127.0.0.1"]) as proxy:
            workers = proxy.workers()
            with httpx.Client(base_url=proxy.entry) as client:
                first = int(answered_by(client, 1).most_common(1)[0][0])
                assert proxy.push([f"127.0.0.1:{second}"]).status_code == 200
                until_answered_only_by(client, {second})
                assert proxy.push([f"127.0.0.1:{first}"]).status_code == 200
                until_answered_only_by(client, {first})
            assert proxy.workers() == workers, "nginx reloaded"

    def test_a_task_that_refuses_is_tried_once_per_worker_then_rests(self, proxy: Proxy) -> None:
        """A task that refuses connections is tried once by each worker, then rests; no request fails."""
        with httpx.Client(base_url=proxy.entry) as client:
            answered_by(client, 30)  # every request answered: refused tries went to the other task
        text = proxy.counters(30)
        refused = [line for line in text.splitlines() if proxy.refusing in line and 'status="502"' in line]
        assert len(refused) == 1, refused
        assert 1 <= float(refused[0].split()[-1]) <= 2  # two workers, each tries it once

    def test_a_dying_tasks_503_is_retried_on_another_task(self, tmp_path: Path) -> None:
        """A GET answered 503 by a draining task is retried on another and succeeds."""
        with (
            dying_then_healthy(tmp_path) as (proxy, _, healthy),
            httpx.Client(base_url=proxy.entry) as client,
        ):
            until_answered_only_by(client, {healthy})

    def test_a_post_that_reached_a_task_is_not_sent_again(self, tmp_path: Path) -> None:
        """A POST that reached a task is not sent again: it may have had an effect."""
        with dying_then_healthy(tmp_path) as (proxy, dying, _):
            time.sleep(3 * SYNC_INTERVAL)
            with httpx.Client(base_url=proxy.entry) as client:
                # A worker's first turn is the first task: the dying one, whose 503 is the client's.
                answer = client.post("/api/ok")
        assert (answer.status_code, answer.text.strip()) == (503, str(dying))

    def test_a_push_that_is_not_a_task_list_is_refused_and_changes_nothing(self, proxy: Proxy) -> None:
        """A push whose lines are not '<service> <ip>:<port>' is refused whole and changes nothing."""
        before = proxy.tasks()
        for lines in (
            ["web 10.0.0.1:80", "web 10.0.0.2:80; deny all"],
            ["10.0.0.1:80"],
            ["we$b 10.0.0.1:80"],
        ):
            response = proxy.push_lines(lines)
            assert response.status_code == 400
            assert "not a service and an ip:port" in response.text
        assert proxy.tasks() == before == [proxy.upstream, proxy.refusing]

    def test_the_pushed_tasks_outlive_a_reload(self, tmp_path: Path) -> None:
        """The tasks pushed last are the new workers' after a reload."""
        with upstream_server() as second, started(tmp_path, ["127.0.0.1"]) as proxy:
            assert proxy.push([f"127.0.0.1:{second}"]).status_code == 200
            before = proxy.workers()
            proxy.reload()
            deadline = time.monotonic() + 10
            while proxy.workers() & before and time.monotonic() < deadline:
                time.sleep(0.1)  # the old workers finish and new ones start
            assert not proxy.workers() & before, "nginx did not reload"
            assert proxy.tasks() == [f"127.0.0.1:{second}"]
            with httpx.Client(base_url=proxy.entry) as client:
                assert answered_by(client, 4) == {str(second): 4}

    def test_without_tasks_a_request_is_refused_with_503(self, tmp_path: Path) -> None:
        """Without tasks nginx answers 503 at once rather than hang."""
        with started(tmp_path, []) as proxy:
            assert httpx.get(proxy.entry + "/api/ok").status_code == 503
            assert proxy.tasks() == []

    def test_each_route_goes_to_its_own_services_tasks(self, tmp_path: Path) -> None:
        """Each route's requests go only to its own service's tasks."""
        with upstream_server() as shop_port:
            shop = Route(service="s_shop", counted_as="shop", path="/shop/", port=shop_port)
            with (
                started(tmp_path, ["127.0.0.1"], more=[shop]) as proxy,
                httpx.Client(base_url=proxy.entry) as client,
            ):
                web_port = urlsplit(f"http://{proxy.upstream}").port
                assert {client.get("/api/ok").text.strip() for _ in range(4)} == {str(web_port)}
                assert {client.get("/shop/ok").text.strip() for _ in range(4)} == {str(shop_port)}
                assert proxy.tasks("shop") == [f"127.0.0.1:{shop_port}"]
                counted = parse(proxy.counters(8)).services
                assert (counted["web"].requests, counted["shop"].requests) == (4, 4)
                status = httpx.get(proxy.admin + "/nginx/status", timeout=5).json()["services"]
                assert [server["address"] for server in status["shop"]["servers"]] == [
                    f"127.0.0.1:{shop_port}"
                ]
                # A push for one service's tasks leaves the other's with none.
                assert proxy.push([f"127.0.0.1:{shop_port}"], service="shop").status_code == 200
                until_refused(client, "/api/ok")
                assert client.get("/shop/ok").status_code == 200

    def test_status_shows_connections_requests_and_each_tasks_state(self, proxy: Proxy) -> None:
        """/nginx/status shows the connections, the requests and each task's state."""
        with httpx.Client(base_url=proxy.entry) as client:
            answered_by(client, 10)
        proxy.counters(10)
        status = httpx.get(proxy.admin + "/nginx/status", timeout=5).json()
        assert status["connections"]["active"] >= 1
        web = status["services"]["web"]
        assert web["requests"] == 10
        states = {server["address"]: server["state"] for server in web["servers"]}
        assert states == {proxy.upstream: "up", proxy.refusing: "resting"}


POLICY_ROUTES = [
    Route(service=policy, counted_as=policy, path=f"/{policy}/", port=1, balance=policy)
    for policy in ("round_robin", "least_conn", "ewma")
]
"""A route of each balancing policy; the tasks are pushed with their ports."""
SLOW_SECONDS = 0.05


async def answered_concurrently(entry: str, path: str, requests: int, concurrency: int) -> Counter[str]:
    """The port of the task that answered each of ``requests``, ``concurrency`` at a time."""
    answers: Counter[str] = Counter()

    async def client_loop(client: httpx.AsyncClient) -> None:
        for _ in range(requests // concurrency):
            answer = await client.get(path)
            assert answer.status_code == 200
            answers[answer.text.strip()] += 1

    async with httpx.AsyncClient(base_url=entry, timeout=10) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return answers


class TestBalancingPolicies:
    def test_a_slow_task_gets_fewer_requests_under_least_conn_and_ewma(self, tmp_path: Path) -> None:
        """Of two fast tasks and a slow one, round robin gives each a third; least_conn and ewma give
        the slow one far less."""
        with (
            upstream_server() as fast,
            upstream_server() as other_fast,
            upstream_server(delay=SLOW_SECONDS) as slow,
            started(tmp_path, [], more=POLICY_ROUTES) as proxy,
        ):
            tasks = [f"127.0.0.1:{port}" for port in (fast, other_fast, slow)]
            lines = [f"{route.counted_as} {task}" for route in POLICY_ROUTES for task in tasks]
            assert proxy.push_lines(lines).status_code == 200
            time.sleep(3 * SYNC_INTERVAL)  # every worker takes the pushed tasks
            shares = {}
            for route in POLICY_ROUTES:
                answers = asyncio.run(answered_concurrently(proxy.entry, route.path + "x", 240, 8))
                shares[route.balance] = answers[str(slow)] / sum(answers.values())
            status = httpx.get(proxy.admin + "/nginx/status", timeout=5).json()
        assert 0.25 <= shares["round_robin"] <= 0.42, shares
        assert shares["least_conn"] <= 0.15, shares
        assert shares["ewma"] <= 0.15, shares
        # Every try ended: no request counts as in flight any more, and ewma learnt the slow task.
        servers = {server["address"]: server for server in status["services"]["ewma"]["servers"]}
        assert {server["in_flight"] for server in servers.values()} == {0}
        assert servers[f"127.0.0.1:{slow}"]["response_ewma_seconds"] > 0.01


def sticky_route(mode: str) -> Route:
    return Route(service="shop", counted_as="shop", path="/shop/", port=1, sticky=mode)


@contextmanager
def three_tasks_behind(tmp_path: Path, route: Route) -> Iterator[tuple[Proxy, list[int]]]:
    """nginx with ``route``'s three tasks pushed and taken by every worker: the proxy and the ports."""
    with (
        upstream_server() as first,
        upstream_server() as second,
        upstream_server() as third,
        started(tmp_path, [], more=[route]) as proxy,
    ):
        ports = [first, second, third]
        assert (
            proxy.push([f"127.0.0.1:{port}" for port in ports], service=route.counted_as).status_code == 200
        )
        time.sleep(3 * SYNC_INTERVAL)
        yield proxy, ports


def ports_answering(client: httpx.Client, requests: int) -> set[str]:
    answers = [client.get("/shop/x") for _ in range(requests)]
    assert {answer.status_code for answer in answers} == {200}
    return {answer.text.strip() for answer in answers}


class TestStickySessions:
    def test_a_cookie_keeps_a_client_on_its_task_until_the_task_is_gone(self, tmp_path: Path) -> None:
        """With sticky cookies, a client stays on the task its cookie names; when that task leaves
        the list, the next request goes to another, without an error, and the cookie names it."""
        with (
            three_tasks_behind(tmp_path, sticky_route("cookie")) as (proxy, ports),
            httpx.Client(base_url=proxy.entry) as client,
        ):
            first = client.get("/shop/x")
            cookie = first.headers["set-cookie"]
            assert cookie.startswith("entrypoint_shop=")
            assert "Path=/shop/" in cookie
            assert "HttpOnly" in cookie
            pinned = first.text.strip()
            # Every request, on new connections too (so to any worker), goes to the same task.
            for _ in range(20):
                again = httpx.get(proxy.entry + "/shop/x", cookies=client.cookies)
                assert (again.status_code, again.text.strip()) == (200, pinned)
                assert "set-cookie" not in again.headers  # the cookie is right: not set again
            others = [port for port in ports if str(port) != pinned]
            assert proxy.push([f"127.0.0.1:{port}" for port in others], service="shop").status_code == 200
            time.sleep(3 * SYNC_INTERVAL)
            moved = client.get("/shop/x")
            assert moved.status_code == 200
            assert moved.text.strip() != pinned
            assert moved.headers["set-cookie"] != cookie
            assert ports_answering(client, 20) == {moved.text.strip()}

    def test_without_stickiness_the_same_client_goes_to_every_task(self, tmp_path: Path) -> None:
        """The default (``none``) sets no cookie and leaves the requests to the route's policy."""
        with (
            three_tasks_behind(tmp_path, sticky_route("none")) as (proxy, ports),
            httpx.Client(base_url=proxy.entry) as client,
        ):
            assert "set-cookie" not in client.get("/shop/x").headers
            assert ports_answering(client, 30) == {str(port) for port in ports}

    def test_a_client_address_keeps_its_task_and_moves_only_when_it_leaves(self, tmp_path: Path) -> None:
        """With client-address affinity, one client's requests all go to one task, on any worker;
        when that task leaves, they all go to one other task."""
        with three_tasks_behind(tmp_path, sticky_route("client_address")) as (proxy, ports):
            answered = {httpx.get(proxy.entry + "/shop/x").text.strip() for _ in range(20)}
            assert len(answered) == 1
            (pinned,) = answered
            others = [port for port in ports if str(port) != pinned]
            assert proxy.push([f"127.0.0.1:{port}" for port in others], service="shop").status_code == 200
            time.sleep(3 * SYNC_INTERVAL)
            moved = {httpx.get(proxy.entry + "/shop/x").text.strip() for _ in range(20)}
            assert len(moved) == 1
            assert moved != answered


class TestUpgrade:
    def test_an_upgraded_connection_passes_through_and_stays_on_its_task(self, tmp_path: Path) -> None:
        """An Upgrade request gets the task's 101, and what follows goes both ways on that one task."""
        with three_tasks_behind(tmp_path, sticky_route("none")) as (proxy, _ports):
            address = urlsplit(proxy.entry)
            with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
                connection.sendall(
                    b"GET /shop/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                )
                # The file holds the socket open until it is closed itself.
                with connection.makefile("rb") as stream:
                    assert stream.readline().startswith(b"HTTP/1.1 101")
                    while stream.readline() not in (b"\r\n", b""):
                        pass
                    echoed = []
                    for message in (b"one\n", b"two\n", b"three\n"):
                        connection.sendall(message)
                        echoed.append(stream.readline().split())
        assert [words[1] for words in echoed] == [b"one", b"two", b"three"]
        assert len({words[0] for words in echoed}) == 1  # one task answered all


class TestHttpPusher:
    def test_the_agents_push_reaches_nginx(self, proxy: Proxy) -> None:
        """The agent's pusher sets the tasks of a real nginx."""
        settings = replace(PROXY, control_port=urlsplit(proxy.control).port)
        asyncio.run(http_pusher(settings)([f"web {proxy.upstream}"]))
        assert proxy.tasks() == [proxy.upstream]

    def test_the_agents_rate_limit_reaches_nginx(self, proxy: Proxy) -> None:
        """The agent's pusher sets the rate limit of a real nginx."""
        settings = replace(PROXY, control_port=urlsplit(proxy.control).port)
        asyncio.run(http_pusher(settings, "rate_limits")(["web 7.5 3"]))
        status = httpx.get(proxy.admin + "/nginx/status", timeout=5).json()
        assert status["services"]["web"]["rate_limit"] == {
            "requests_per_second": 7.5,
            "burst": 3,
            "refused": 0,
        }

    def test_a_push_nginx_refuses_or_cannot_take_is_an_error(self, proxy: Proxy) -> None:
        """A push nginx refuses, or one that cannot reach it, is an error for the agent to report."""
        settings = replace(PROXY, control_port=urlsplit(proxy.control).port)
        with pytest.raises(PushFailedError, match="400"):
            asyncio.run(http_pusher(settings)(["not an address"]))
        with pytest.raises(PushFailedError, match="ConnectError"):
            asyncio.run(http_pusher(replace(PROXY, control_port=free_port()))([f"web {proxy.upstream}"]))
