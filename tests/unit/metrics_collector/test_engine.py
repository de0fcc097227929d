"""The collector's client of the engine's container listing."""

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import docker.errors
import pytest

from metrics_collector.engine import EngineContainers

LISTING = [{"Id": "c1", "Labels": {"com.docker.swarm.service.name": "web"}}]


class FakeEngine(BaseHTTPRequestHandler):
    """Answers the version and the container listing as the engine does, and records the paths."""

    paths: ClassVar[list[str]] = []

    def do_GET(self):
        FakeEngine.paths.append(self.path)
        if self.path.endswith("/version"):
            body = {"ApiVersion": "1.41", "MinAPIVersion": "1.12"}
        elif "/containers/json" in self.path:
            body = LISTING
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        """Quiet: a unix socket's peer has no address to log."""


class TestEngineContainers:
    def test_an_engine_not_there_yet_fails_a_listing_and_not_the_start(self, tmp_path):
        """Made before its socket exists, the client fails a listing, then lists once the socket is there."""
        socket_path = tmp_path / "docker.sock"
        engine = EngineContainers(f"unix://{socket_path}")
        with pytest.raises(docker.errors.DockerException):
            engine.containers(filters={"status": "running"})
        FakeEngine.paths = []
        with socketserver.UnixStreamServer(str(socket_path), FakeEngine) as server:
            serving = threading.Thread(target=server.serve_forever, daemon=True)
            serving.start()
            try:
                assert engine.containers(filters={"status": "running"}) == LISTING
                assert engine.containers(filters={"status": "running"}) == LISTING
            finally:
                engine.close()
                server.shutdown()
        assert [path.split("?")[0] for path in FakeEngine.paths] == [
            "/version",
            "/v1.41/containers/json",
            "/v1.41/containers/json",
        ]
