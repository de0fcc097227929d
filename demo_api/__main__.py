"""``python -m demo_api``: the demo service the stack scales.

GET /api/health answers at once; GET /api/work?ms=N burns N milliseconds of CPU time
(at most MAX_WORK_MS) and reports which address served it, so that a client can see
the load balancer spread requests over the tasks.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from common.config import read_port
from common.lifecycle import load_or_exit

log = structlog.get_logger("demo_api")

MAX_WORK_MS = 5000


def burn_cpu(milliseconds: int) -> None:
    """Spin until this thread has used ``milliseconds`` of CPU time."""
    deadline = time.thread_time() + milliseconds / 1000
    while time.thread_time() < deadline:
        pass


def work_milliseconds(query: str) -> int | None:
    """The ``ms`` parameter, or None when it is not a whole number in 0..MAX_WORK_MS."""
    values = parse_qs(query).get("ms", ["10"])
    try:
        milliseconds = int(values[0])
    except ValueError:
        return None
    return milliseconds if 0 <= milliseconds <= MAX_WORK_MS else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive with nginx's upstream pool
    server_version = "demo-api"

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
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401 - the base class's signature
        """Requests are not logged one by one: the load balancer sees them all."""


def main() -> None:
    port = load_or_exit(lambda environ: read_port(environ, "PORT", 8000))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104 - a service in a container
    server.daemon_threads = True

    def stop(_signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever() to return, so it cannot run on the serving thread.
        threading.Thread(target=server.shutdown, name="shutdown").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("demo api started", port=port)
    server.serve_forever()
    log.info("demo api stopped")


if __name__ == "__main__":
    main()
