"""The collector's view of the Docker API: the calls it makes, and a refusal for every other."""

from __future__ import annotations

import json

import pytest

from tests.e2e.support import Stack

pytestmark = pytest.mark.e2e

# Run inside the collector's container, as the collector runs: each call through the
# filtered socket, its HTTP status, and what the container can see of the engine's socket.
PROBE = r"""
import json, os, socket, sys

def status(method, path):
    connection = socket.socket(socket.AF_UNIX)
    connection.settimeout(10)
    connection.connect("/run/docker-api/docker.sock")
    head = f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    connection.sendall(head.encode())
    head = connection.recv(64).decode()
    connection.close()
    return int(head.split()[1])

calls = json.loads(sys.argv[1])
print(json.dumps({
    "uid": os.getuid(),
    "engine_socket": os.path.exists("/var/run/docker.sock"),
    "statuses": {f"{method} {path}": status(method, path) for method, path in calls},
}))
"""


def probe(stack: Stack, calls: list[tuple[str, str]]) -> dict[str, object]:
    (container,) = stack.docker.containers.list(
        filters={"label": f"com.docker.swarm.service.name={stack.service('metrics-collector')}"}
    )
    exit_code, output = container.exec_run(["python", "-c", PROBE, json.dumps(calls)])
    assert exit_code == 0, output.decode()
    answer: dict[str, object] = json.loads(output)
    return answer


class TestDockerApiView:
    def test_the_collector_gets_its_listing_and_nothing_else(self, stack: Stack) -> None:
        """Through its socket the collector lists containers; writes, inspections and other reads get 403."""
        demo = stack.docker.containers.list(
            filters={"label": f"com.docker.swarm.service.name={stack.service('demo-api')}"}
        )[0].id
        allowed = [("GET", "/version"), ("GET", "/_ping"), ("GET", "/v1.41/containers/json")]
        refused = [
            ("POST", "/containers/create"),
            ("DELETE", f"/containers/{demo}"),
            ("POST", f"/containers/{demo}/exec"),
            ("GET", f"/containers/{demo}/json"),
            ("GET", "/containers/json/../../info"),
            ("GET", "/info"),
            ("GET", "/services"),
            ("GET", "/secrets"),
            ("POST", "/v1.41/services/create"),
        ]
        answer = probe(stack, allowed + refused)
        assert answer["uid"] == 65534
        assert answer["engine_socket"] is False
        assert answer["statuses"] == {
            **{f"{method} {path}": 200 for method, path in allowed},
            **{f"{method} {path}": 403 for method, path in refused},
        }
        assert stack.docker.containers.get(demo).status == "running"
