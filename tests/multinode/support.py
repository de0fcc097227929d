"""The local swarm under test: its nodes, their ports here, traffic to them, a watch on the autoscalers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import docker
import httpx

from tests.e2e.support import ROOT, Background
from tests.e2e.support import SETTINGS as E2E_SETTINGS

STACK = "multinode"
NODES = 4
"""Nodes 1, 2 and 3 are managers, node 4 a worker."""
MANAGERS = (1, 2, 3)
PORT_BASE = 23000
REGISTRY_PORT = 5000
REGISTRY = f"127.0.0.1:{REGISTRY_PORT}"
REPORT = ROOT / "build" / "e2e-multinode.json"
SETTINGS = {**E2E_SETTINGS, "CHECK_INTERVAL": "15"}
"""The end-to-end settings with 15 s checks. When the manager that dies is also the Raft
leader, the managers write nothing, the lease included, until they elect another leader
(about 15 s measured here); a standby then waits a lease (6 s) and checks. That fits in two
15 s checks, not in two 5 s ones."""
NODE_PORTS = (80, 8080, 8090, 9145, 9090)
"""The order ./local-swarm.sh publishes each node's ports in, from PORT_BASE + 100 × node."""


class LocalSwarm:
    def __init__(self, host: docker.DockerClient) -> None:
        self.host = host
        self.nodes = tuple(range(1, NODES + 1))
        self.managers = MANAGERS

    @staticmethod
    def url(node: int, port: int) -> str:
        """This machine's address of a node's published port."""
        return f"http://127.0.0.1:{PORT_BASE + 100 * node + NODE_PORTS.index(port)}"

    @staticmethod
    def engine(node: int) -> docker.DockerClient:
        return docker.DockerClient(base_url=f"unix:///run/local-swarm/node-{node}/docker.sock", timeout=20)

    def container(self, node: int) -> Any:
        return self.host.containers.get(f"local-swarm-node-{node}")

    def manager(self, *, besides: tuple[int, ...] = ()) -> docker.DockerClient:
        """An engine of a running manager, not one of ``besides``."""
        for node in self.managers:
            if node in besides:
                continue
            client = self.engine(node)
            try:
                client.ping()
            except docker.errors.DockerException:
                client.close()
                continue
            return client
        raise AssertionError("no manager answers")

    def node_ids(self, client: docker.DockerClient) -> dict[str, int]:
        """Swarm node id → node number."""
        return {
            node.id: int(node.attrs["Description"]["Hostname"].split("-")[1]) for node in client.nodes.list()
        }

    def close(self) -> None:
        self.host.close()


@dataclass
class Outcome:
    at: float
    target: str
    ok: bool
    detail: str


class Traffic(Background):
    """Keep-alive users against entry points, each request recorded; bounded in time and count."""

    def __init__(
        self,
        targets: list[str],
        users_per_target: int,
        path: str,
        *,
        pause: float = 0.0,
        seconds: float = 600,
    ) -> None:
        """``pause``: seconds each user waits between two requests (0: none, a saturating load)."""
        self.targets, self.users, self.path, self.pause = targets, users_per_target, path, pause
        self.deadline = time.monotonic() + seconds
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self.most_requests = 200_000

    def loops(self) -> list[Any]:
        return [
            lambda target=target: self._user(target) for target in self.targets for _ in range(self.users)
        ]

    def _user(self, target: str) -> None:
        with httpx.Client(base_url=target, timeout=30) as client:
            while not self.stopped.is_set() and time.monotonic() < self.deadline:
                with self._lock:
                    if len(self.outcomes) >= self.most_requests:
                        return
                started = time.time()
                try:
                    response = client.get(self.path)
                    ok, detail = response.status_code == 200, str(response.status_code)
                except httpx.HTTPError as error:
                    ok, detail = False, repr(error)
                with self._lock:
                    self.outcomes.append(Outcome(started, target, ok, detail))
                if self.pause:
                    self.stopped.wait(self.pause)

    def failed(self, since: float = 0.0) -> list[Outcome]:
        with self._lock:
            return [outcome for outcome in self.outcomes if not outcome.ok and outcome.at >= since]

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)


@dataclass
class Look:
    at: float
    node: int
    status: dict[str, Any]

    @property
    def active(self) -> bool:
        return bool((self.status.get("leadership") or {}).get("active"))

    def service(self, name: str) -> dict[str, Any]:
        return dict(self.status.get("services", {}).get(name) or {})


@dataclass
class AutoscalerWatch(Background):
    """Every manager's /status, twice a second: who acts, and what it sees and decides."""

    managers: tuple[int, ...]
    looks: list[Look] = field(default_factory=list)

    def loops(self) -> list[Any]:
        return [lambda node=node: self._watch(node) for node in self.managers]

    def _watch(self, node: int) -> None:
        with httpx.Client(timeout=2) as client:
            while not self.stopped.is_set():
                try:
                    status = client.get(f"{LocalSwarm.url(node, 8080)}/status").json()
                    self.looks.append(Look(time.time(), node, status))
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.5)

    def latest(self, node: int | None = None) -> Look | None:
        looks = [look for look in self.looks if node is None or look.node == node]
        return looks[-1] if looks else None

    def active_now(self) -> Look | None:
        """The latest look of the instance that acts, if any said so in the last two seconds."""
        recent = [look for look in self.looks if look.active and look.at > time.time() - 2]
        return recent[-1] if recent else None
