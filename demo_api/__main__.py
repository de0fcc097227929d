"""``python -m demo_api``: the demo service the stack scales.

GET /api/health answers at once; GET /api/work?ms=N burns N milliseconds of CPU time
(at most MAX_WORK_MS) and reports which address served it, so that a client can see
the load balancer spread requests over the tasks. GET /api/wait?ms=N waits N
milliseconds on average (from N/2 to 3N/2, as a database's answers vary) in one of
WAIT_WORKERS slots (4): its latency grows with concurrency while its CPU stays low,
like a service waiting on a database. GET /api/flaky?p=F fails a
fraction F of the requests with a 500.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from common.config import ConfigError, parse_float, parse_int, read_int, read_port
from common.lifecycle import load_or_exit

log = structlog.get_logger("demo_api")

MAX_WORK_MS = 5000
MAX_WAIT_WORKERS = 1000


def burn_cpu(milliseconds: int) -> None:
    """Spin until this thread has used ``milliseconds`` of CPU time."""
    deadline = time.thread_time() + milliseconds / 1000
    while time.thread_time() < deadline:
        pass


def _query_value(query: str, name: str, default: str) -> str:
    return parse_qs(query).get(name, [default])[0]


def work_milliseconds(query: str) -> int | None:
    """The ``ms`` parameter (default 10), or None when it is not a whole number in 0..MAX_WORK_MS."""
    try:
        return parse_int("ms", _query_value(query, "ms", "10"), minimum=0, maximum=MAX_WORK_MS)
    except ConfigError:
        return None


def failure_fraction(query: str) -> float | None:
    """The ``p`` parameter (default 0.1), or None when it is not a number in 0..1."""
    try:
        return parse_float("p", _query_value(query, "p", "0.1"), minimum=0, maximum=1)
    except ConfigError:
        return None


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], wait_workers: int) -> None:
        super().__init__(address, Handler)
        self.wait_slots = threading.BoundedSemaphore(wait_workers)
        """The workers /api/wait queues for: requests beyond them wait their turn."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive with nginx's upstream pool
    server_version = "demo-api"
    # The headers and the body go out in two writes; with Nagle's algorithm the body would
    # wait for the ACK of the headers, which the peer delays by 40 ms on a kept-alive connection.
    disable_nagle_algorithm = True

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/api/health":
            self._send(HTTPStatus.OK, {"status": "ok"})
        elif url.path == "/api/work":
            milliseconds = work_milliseconds(url.query)
            if milliseconds is None:
                self._send(
                    HTTPStatus.BAD_REQUEST, {"error": f"ms must be a whole number in 0..{MAX_WORK_MS}"}
                )
                return
            burn_cpu(milliseconds)
            self._send(
                HTTPStatus.OK,
                {
                    "served_by": self.connection.getsockname()[0],
                    "hostname": socket.gethostname(),
                    "cpu_ms": milliseconds,
                },
            )
        elif url.path == "/api/wait":
            self._wait(url.query)
        elif url.path == "/api/flaky":
            self._flaky(url.query)
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def _wait(self, query: str) -> None:
        milliseconds = work_milliseconds(query)
        if milliseconds is None:
            self._send(HTTPStatus.BAD_REQUEST, {"error": f"ms must be a whole number in 0..{MAX_WORK_MS}"})
            return
        assert isinstance(self.server, DemoServer)  # noqa: S101 - main() serves with a DemoServer
        queued_at = time.monotonic()
        with self.server.wait_slots:
            started_at = time.monotonic()
            time.sleep(random.uniform(0.5, 1.5) * milliseconds / 1000)  # noqa: S311 - a demo's delay
        self._send(
            HTTPStatus.OK,
            {
                "served_by": self.connection.getsockname()[0],
                "queued_ms": round(1000 * (started_at - queued_at)),
            },
        )

    def _flaky(self, query: str) -> None:
        fraction = failure_fraction(query)
        if fraction is None:
            self._send(HTTPStatus.BAD_REQUEST, {"error": "p must be a number in 0..1"})
        elif random.random() < fraction:  # noqa: S311 - a demo's failures, not a secret
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "failed on purpose"})
        else:
            self._send(HTTPStatus.OK, {"served_by": self.connection.getsockname()[0]})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401 - the base class's signature
        """Requests are not logged one by one: the load balancer sees them all."""


def main() -> None:
    port, wait_workers = load_or_exit(
        lambda environ: (
            read_port(environ, "PORT", 8000),
            read_int(environ, "WAIT_WORKERS", 4, minimum=1, maximum=MAX_WAIT_WORKERS),
        )
    )
    server = DemoServer(("0.0.0.0", port), wait_workers)  # noqa: S104 - a service in a container

    def stop(_signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever() to return, so it cannot run on the serving thread.
        threading.Thread(target=server.shutdown, name="shutdown").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("demo api started", port=port, wait_workers=wait_workers)
    server.serve_forever()
    log.info("demo api stopped")


if __name__ == "__main__":
    main()
