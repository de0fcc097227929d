"""``python -m demo_api``: the demo service the stack scales.

GET /api/health answers at once; GET /api/work?ms=N (or a POST, its body ignored) burns N
milliseconds of CPU time (at most MAX_WORK_MS) and reports which address served it, so that a client can see
the load balancer spread requests over the tasks. GET /api/wait?ms=N waits N
milliseconds on average (from N/2 to 3N/2, as a database's answers vary) in one of
WAIT_WORKERS slots (4): its latency grows with concurrency while its CPU stays low,
like a service waiting on a database. GET /api/flaky?p=F fails a fraction F of the
requests with a 500.

It is served by uvicorn, which shuts down as a service must for scaling without dropped
requests: at SIGTERM it stops accepting connections, closes its idle keep-alive ones,
lets every request in flight finish, and then exits.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import structlog
import uvicorn

from common.config import ConfigError, parse_float, parse_int, read_int, read_port
from common.lifecycle import load_or_exit

log = structlog.get_logger("demo_api")

MAX_WORK_MS = 5000
MAX_WAIT_WORKERS = 1000

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


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


BAD_MS = {"error": f"ms must be a whole number in 0..{MAX_WORK_MS}"}


MOST_BODY_BYTES = 1_000_000
"""A request body is read (and dropped) up to this size; the rest is not waited for."""


async def _read_body(receive: Receive) -> None:
    """Read the request's body, so that the connection can take the next request."""
    read, more = 0, True
    while more and read <= MOST_BODY_BYTES:
        message = await receive()
        read += len(message.get("body", b""))
        more = bool(message.get("more_body"))


@dataclass(frozen=True)
class Answer:
    status: HTTPStatus
    payload: dict[str, Any]


class DemoApi:
    """The ASGI application: one coroutine per endpoint."""

    def __init__(self, wait_workers: int) -> None:
        self.wait_workers = wait_workers
        self._wait_slots: asyncio.Semaphore | None = None

    @property
    def wait_slots(self) -> asyncio.Semaphore:
        """The workers /api/wait queues for, made on the server's event loop at first use."""
        if self._wait_slots is None:
            self._wait_slots = asyncio.Semaphore(self.wait_workers)
        return self._wait_slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan: nothing to start or stop
        await _read_body(receive)
        query = scope.get("query_string", b"").decode("latin-1")
        served_by = (scope.get("server") or ("", 0))[0]
        answer = await self.answer(scope["method"], scope["path"], query, served_by)
        body = json.dumps(answer.payload).encode() + b"\n"
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def answer(self, method: str, path: str, query: str, served_by: str) -> Answer:
        routes: dict[tuple[str, str], Callable[[str, str], Awaitable[Answer]]] = {
            ("GET", "/api/health"): self._health,
            ("GET", "/api/work"): self._work,
            ("POST", "/api/work"): self._work,
            ("GET", "/api/wait"): self._wait,
            ("GET", "/api/flaky"): self._flaky,
        }
        handler = routes.get((method, path))
        if handler is not None:
            return await handler(query, served_by)
        if any(path == known for _, known in routes):
            return Answer(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "GET, or POST to /api/work"})
        return Answer(HTTPStatus.NOT_FOUND, {"error": "not found"})

    @staticmethod
    async def _health(_query: str, _served_by: str) -> Answer:
        return Answer(HTTPStatus.OK, {"status": "ok"})

    @staticmethod
    async def _work(query: str, served_by: str) -> Answer:
        milliseconds = work_milliseconds(query)
        if milliseconds is None:
            return Answer(HTTPStatus.BAD_REQUEST, BAD_MS)
        # In a thread, so that the server goes on accepting and answering while it burns.
        await asyncio.to_thread(burn_cpu, milliseconds)
        payload = {"served_by": served_by, "hostname": socket.gethostname(), "cpu_ms": milliseconds}
        return Answer(HTTPStatus.OK, payload)

    async def _wait(self, query: str, served_by: str) -> Answer:
        milliseconds = work_milliseconds(query)
        if milliseconds is None:
            return Answer(HTTPStatus.BAD_REQUEST, BAD_MS)
        queued_at = time.monotonic()
        async with self.wait_slots:
            started_at = time.monotonic()
            await asyncio.sleep(random.uniform(0.5, 1.5) * milliseconds / 1000)  # noqa: S311 - a demo's delay
        queued_ms = round(1000 * (started_at - queued_at))
        return Answer(HTTPStatus.OK, {"served_by": served_by, "queued_ms": queued_ms})

    @staticmethod
    async def _flaky(query: str, served_by: str) -> Answer:
        fraction = failure_fraction(query)
        if fraction is None:
            return Answer(HTTPStatus.BAD_REQUEST, {"error": "p must be a number in 0..1"})
        if random.random() < fraction:  # noqa: S311 - a demo's failures, not a secret
            return Answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "failed on purpose"})
        return Answer(HTTPStatus.OK, {"served_by": served_by})


def server(host: str, port: int, wait_workers: int) -> uvicorn.Server:
    """uvicorn serving the demo API; ``run()`` serves until SIGTERM (or ``should_exit``)."""
    config = uvicorn.Config(
        DemoApi(wait_workers),
        host=host,
        port=port,
        log_config=None,  # the process's own (structured) logging
        access_log=False,
        lifespan="off",
        # Idle keep-alive connections stay open longer than nginx keeps them (60 s), so
        # that nginx never sends a request on a connection the server is closing.
        timeout_keep_alive=75,
    )
    return uvicorn.Server(config)


def main() -> None:
    port, wait_workers = load_or_exit(
        lambda environ: (
            read_port(environ, "PORT", 8000),
            read_int(environ, "WAIT_WORKERS", 4, minimum=1, maximum=MAX_WAIT_WORKERS),
        )
    )
    log.info("demo api started", port=port, wait_workers=wait_workers)
    server("0.0.0.0", port, wait_workers).run()  # noqa: S104 - a service in a container
    log.info("demo api stopped")


if __name__ == "__main__":
    main()
