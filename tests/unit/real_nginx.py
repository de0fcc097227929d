"""A real nginx rendered by the agent's code, in front of real upstream HTTP servers."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from autoscaler.entrypoint_page import parse
from nginx.config import ProxySettings, render, static_route
from nginx.routes import Route

FLUSH_INTERVAL = 1.0
"""Seconds between two additions of a worker's counts to shared memory (monitor.lua)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TaskServer(ThreadingHTTPServer):
    dying = False
    """Answers every request with a 503, as a task shutting down."""
    delay = 0.0
    """Seconds it takes to answer any request, as a slowed task."""


class Upstream(BaseHTTPRequestHandler):
    """/api/ok answers 200, /api/fail 500, /api/sleep?ms=N after N milliseconds; the body is the port."""

    server: TaskServer

    def do_GET(self) -> None:
        if self.headers.get("Upgrade"):
            self._upgraded()
            return
        url = urlparse(self.path)
        time.sleep(self.server.delay)
        if url.path == "/api/sleep":
            time.sleep(int(parse_qs(url.query)["ms"][0]) / 1000)
        status = 500 if url.path == "/api/fail" else 200
        if self.server.dying:
            status = 503
        body = f"{self.server.server_address[1]}\n".encode()  # which task answered: its port
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.do_GET()

    def _upgraded(self) -> None:
        """An upgraded connection, as a WebSocket's: after the 101, each line comes back after the port.

        nginx passes the bytes after a 101 through untouched, so lines stand in for frames.
        """
        self.send_response(101)
        self.send_header("Upgrade", self.headers["Upgrade"])
        self.send_header("Connection", "Upgrade")
        self.end_headers()
        self.wfile.flush()
        for line in self.rfile:
            self.wfile.write(f"{self.server.server_address[1]} ".encode() + line)
            self.wfile.flush()
        self.close_connection = True

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def upstream_server(dying: bool = False, delay: float = 0.0) -> Iterator[int]:
    """A task on 127.0.0.1 (only): its port."""
    server = TaskServer(("127.0.0.1", 0), Upstream)
    server.dying = dying
    server.delay = delay
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Proxy:
    entry: str
    metrics: str
    master: subprocess.Popen[bytes]
    upstream: str
    refusing: str
    control: str
    """URL where the agent pushes the tasks."""
    admin: str
    """Base URL of the port that also serves /metrics."""

    def push(self, addresses: list[str], service: str = "web") -> httpx.Response:
        """Push ``ip:port`` addresses as the service's tasks (and no other service's)."""
        return self.push_lines([f"{service} {address}" for address in addresses])

    def push_lines(self, lines: list[str]) -> httpx.Response:
        return httpx.post(self.control, content="\n".join(lines), timeout=5)

    def limit(self, lines: list[str]) -> httpx.Response:
        """Push rate limits, ``<service> <rate> <burst>`` a line."""
        url = self.control.replace("/configuration/backends", "/configuration/rate_limits")
        return httpx.post(url, content="\n".join(lines), timeout=5)

    def tasks(self, service: str = "web") -> list[str]:
        lines = httpx.get(self.admin + "/nginx/upstream", timeout=5).text.splitlines()
        return [line.split()[1] for line in lines if line.split()[0] == service]

    def counters(self, requests: int) -> str:
        """The counters once ``requests`` requests are in: each worker adds its own once a second."""
        deadline = time.monotonic() + 30
        while True:
            text = httpx.get(self.metrics, timeout=5).text
            counted = sum(counters.requests for counters in parse(text).services.values())
            if counted >= requests or time.monotonic() > deadline:
                return text
            time.sleep(0.2)

    def reload(self) -> None:
        self.master.send_signal(signal.SIGHUP)

    def workers(self) -> set[str]:
        return set(Path(f"/proc/{self.master.pid}/task/{self.master.pid}/children").read_text().split())


def wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"nothing listens on {port}")


@contextmanager
def started(tmp_path: Path, addresses: list[str], more: Sequence[Route] = ()) -> Iterator[Proxy]:
    """nginx rendered by the agent's code, before ``addresses``: a task listens on 127.0.0.1 only.

    ``more``: routes besides the service ``web`` at ``/api/``, each with a task at 127.0.0.1.
    """
    nginx = shutil.which("nginx")
    assert nginx, "nginx is required: run-tests.sh installs it"
    with upstream_server() as port:
        settings = ProxySettings(
            listen_port=free_port(),
            location="/api/",
            upstream_port=port,
            workers="2",
            service="web",
            metrics_port=free_port(),
            control_port=free_port(),
        )
        tasks = {"web": addresses, **{route.counted_as: ["127.0.0.1"] for route in more}}
        config = render(settings, [static_route(settings), *more], tasks)
        config = config.replace("pid /run/nginx.pid;", f"pid {tmp_path}/nginx.pid;")
        (tmp_path / "nginx.conf").write_text(config)
        master = subprocess.Popen([nginx, "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"])
        try:
            for listening in (settings.listen_port, settings.metrics_port, settings.control_port):
                wait_for_port(listening)
            admin = f"http://127.0.0.1:{settings.metrics_port}"
            yield Proxy(
                f"http://127.0.0.1:{settings.listen_port}",
                admin + "/metrics",
                master,
                f"127.0.0.1:{port}",
                f"127.0.0.2:{port}",
                f"http://127.0.0.1:{settings.control_port}/configuration/backends",
                admin,
            )
        finally:
            master.send_signal(signal.SIGQUIT)
            master.wait(timeout=15)
