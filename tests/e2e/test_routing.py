"""End to end: a service with routing labels gets its own location at the entry point.

A second service, made here from the demo API's image, is labelled to take /api/work;
one with a label that would inject a directive is refused. Both are removed afterwards,
and the entry point goes back to its one route.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx
import pytest

from tests.e2e.support import Stack, wait_until
from tests.e2e.test_stack import running_task_addresses, upstream

pytestmark = pytest.mark.e2e

ROUTED, REFUSED = "shop", "injected"
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
