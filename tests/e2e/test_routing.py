"""End to end: a service with routing labels gets its own location at the entry point.

A second service, made here from the demo API's image, is labelled to take /api/work;
one with a label that would inject a directive is refused. Both are removed afterwards,
and the entry point goes back to its one route.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import websockets

from tests.e2e.support import Background, Stack, wait_until
from tests.e2e.test_stack import running_task_addresses, upstream

pytestmark = pytest.mark.e2e

ROUTED, REFUSED, STICKY = "shop", "injected", "sticky"
INJECTION = "/x/ { return 200 'x'; } location /y/"


def create(
    stack: Stack, name: str, labels: dict[str, str], replicas: int, options: Sequence[str] = ()
) -> None:
    """A demo API service in the stack's scope and on its network; ``options`` for docker service create."""
    image = stack.docker.api.inspect_service(stack.service("demo-api"))["Spec"]["TaskTemplate"][
        "ContainerSpec"
    ]
    command = ["docker", "service", "create", "--detach", "--quiet", "--name", stack.service(name)]
    command += ["--network", f"{stack.name}_backend", "--replicas", str(replicas)]
    labels = {"com.docker.stack.namespace": stack.name, **labels}
    command += [option for key, value in labels.items() for option in ("--label", f"{key}={value}")]
    command += [*options, image["Image"].split("@")[0], "python", "-m", "demo_api"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def entry_services(stack: Stack) -> dict[str, object]:
    status = httpx.get(stack.entry_metrics.replace("/metrics", "/nginx/status"), timeout=5).json()
    return dict(status["services"])


@contextmanager
def routed_service(
    stack: Stack, name: str, labels: dict[str, str], replicas: int, options: Sequence[str] = ()
) -> Iterator[None]:
    """A demo API service with a route label, routed at the entry point while ``with`` lasts, then removed."""
    create(stack, name, labels, replicas, options)
    try:
        wait_until(f"the {name} service routed", lambda: name in entry_services(stack), bool, 120)
        yield
    finally:
        subprocess.run(["docker", "service", "rm", stack.service(name)], capture_output=True, check=False)
        wait_until("the route gone", lambda: name not in entry_services(stack), bool, 60)


@pytest.fixture
def routed(stack: Stack) -> Iterator[Stack]:
    """A service at /api/work and one whose route label is an injection, removed afterwards."""
    create(stack, ROUTED, {"entrypoint.path": "/api/work", "entrypoint.port": "8000"}, replicas=1)
    create(stack, REFUSED, {"entrypoint.path": INJECTION, "entrypoint.port": "8000"}, replicas=0)
    try:
        yield stack
    finally:
        for name in (ROUTED, REFUSED):
            subprocess.run(["docker", "service", "rm", stack.service(name)], capture_output=True, check=False)
        wait_until("the route gone", lambda: ROUTED not in entry_services(stack), bool, 60)


class TestRouting:
    def test_a_labelled_service_gets_its_own_location_and_an_injection_none(self, routed: Stack) -> None:
        """A service labelled entrypoint.path gets its own location with its tasks; a label that tries to
        inject gets none."""
        stack = routed
        # Its location in nginx's configuration (the workers answering have reloaded) and its task.
        tasks = wait_until(
            "the service's task routed",
            lambda: (running_task_addresses(stack, ROUTED), upstream(stack, ROUTED), entry_services(stack)),
            lambda seen: len(seen[0]) == 1 and seen[0] == seen[1] and ROUTED in seen[2],
            120,
        )[0]
        with httpx.Client(base_url=stack.entry, timeout=10) as client:
            work = [client.get("/api/work?ms=1") for _ in range(10)]
            wait = [client.get("/api/wait?ms=1") for _ in range(10)]
        assert [answer.status_code for answer in work + wait] == [200] * 20
        assert {answer.json()["served_by"] for answer in work} == set(tasks)
        assert not {answer.json()["served_by"] for answer in wait} & tasks  # the demo API's
        services = entry_services(stack)
        assert set(services) == {"demo-api", ROUTED}
        # The injection: refused by the autoscaler, named, and nowhere in nginx.
        problems = httpx.get(f"{stack.autoscaler}/status", timeout=5).json()["problems"]
        refused = [p for p in problems if p["kind"] == "route" and p["subject"] == stack.service(REFUSED)]
        assert len(refused) == 1
        assert refused[0]["problem"].startswith("entrypoint.path=")
        assert "must be a URL prefix" in refused[0]["problem"]
        assert httpx.get(stack.entry + "/x/", timeout=5).status_code == 404


@dataclass
class StickyClients(Background):
    """Clients that keep their cookies, each sending requests one after the other: whom each reached."""

    url: str
    clients: int
    served: list[list[str]] = field(default_factory=list)
    """Per client, the task that answered each request in turn."""
    failures: list[str] = field(default_factory=list)

    def loops(self) -> list[Callable[[], None]]:
        self.served = [[] for _ in range(self.clients)]
        return [lambda index=index: self._client(index) for index in range(self.clients)]

    def _client(self, index: int) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stopped.is_set():
                try:
                    answer = client.get(self.url)
                except httpx.HTTPError as error:
                    self.failures.append(type(error).__name__)
                    continue
                if answer.status_code != 200:
                    self.failures.append(str(answer.status_code))
                    continue
                self.served[index].append(answer.json()["served_by"])
                time.sleep(0.05)


def runs(served: list[str]) -> list[str]:
    """The tasks in the order a client went to them, each stay once."""
    return [task for position, task in enumerate(served) if position == 0 or served[position - 1] != task]


class TestStickySessions:
    def test_sticky_cookies_hold_and_move_across_a_scale_down_with_no_failed_request(
        self, stack: Stack
    ) -> None:
        """Clients with sticky cookies stay on their task; scaled 3 to 1, those whose task left move once
        to the one left, and no request fails."""
        labels = {"entrypoint.path": "/api/work", "entrypoint.port": "8000", "entrypoint.sticky": "cookie"}
        with routed_service(stack, STICKY, labels, replicas=3):
            wait_until(
                "three tasks routed", lambda: upstream(stack, STICKY), lambda seen: len(seen) == 3, 120
            )
            with StickyClients(stack.entry + "/api/work?ms=1", clients=6) as clients:
                time.sleep(5)
                subprocess.run(
                    ["docker", "service", "scale", "--detach", f"{stack.service(STICKY)}=1"],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
                left = wait_until(
                    "one task routed", lambda: upstream(stack, STICKY), lambda seen: len(seen) == 1, 120
                )
                time.sleep(5)
        assert clients.failures == []
        stays = [runs(served) for served in clients.served]
        assert all(len(stay) <= 2 for stay in stays), stays  # at most one move each
        assert {stay[-1] for stay in stays} == set(left)  # all on the task left
        assert any(len(stay) == 2 for stay in stays), stays  # some had a task that left
        assert len({stay[0] for stay in stays}) > 1  # the first answers spread

    def test_a_websocket_stays_on_its_task(self, stack: Stack) -> None:
        """A WebSocket to the demo API's /api/echo through the entry point is answered by one task."""

        async def exchange() -> list[dict[str, str]]:
            async with websockets.connect(
                stack.entry.replace("http://", "ws://") + "/api/echo"
            ) as connection:
                answers = []
                for message in ("one", "two", "three", "four"):
                    await connection.send(message)
                    answers.append(json.loads(await connection.recv()))
                return answers

        answers = asyncio.run(exchange())
        assert [answer["message"] for answer in answers] == ["one", "two", "three", "four"]
        assert len({answer["served_by"] for answer in answers}) == 1
