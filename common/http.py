"""The daemons' read-only endpoints (health, metrics, status), served by uvicorn.

Each response is computed by a synchronous handler that reads in-memory state; a small
ASGI application maps a path to its handler. uvicorn runs beside the daemon's other
workers on its event loop and stops with them: the daemon's one shutdown path owns the
signals, so uvicorn's own signal handling is left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

import structlog
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger(__name__)

REQUEST_HEAD_LIMIT = 8192
"""Largest request line plus headers accepted, in bytes."""

READ_TIMEOUT = 10.0
"""Seconds an idle connection is kept open for another request."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"

    @classmethod
    def json(cls, status: int, payload: Any) -> Response:  # noqa: ANN401 - any JSON-serialisable value
        body = json.dumps(payload, indent=2, sort_keys=True).encode() + b"\n"
        return cls(status, body, "application/json")

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, text.encode())


Handler = Callable[[], Response]


def route(routes: Mapping[str, Handler], method: str, target: str) -> Response:
    """The response for one request: pure apart from what the handler reads."""
    if method not in {"GET", "HEAD"}:
        return Response.text(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD are served\n")
    path = target.split("?", 1)[0]
    handler = routes.get(path)
    if handler is None:
        known = ", ".join(sorted(routes))
        return Response.text(HTTPStatus.NOT_FOUND, f"not found; endpoints: {known}\n")
    return handler()


def application(routes: Mapping[str, Handler], in_thread: Collection[str] = ()) -> ASGIApp:
    """The ASGI application of ``routes``; the handlers of the paths in ``in_thread`` run in threads."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG001 - GET has no body to read
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        try:
            if path in in_thread:
                response = await asyncio.to_thread(route, routes, method, path)
            else:
                response = route(routes, method, path)
        except Exception:
            log.exception("http handler failed", target=path)
            response = Response.text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")
        headers = [
            (b"content-type", response.content_type.encode("latin-1")),
            (b"content-length", str(len(response.body)).encode("latin-1")),
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else response.body})

    return app


class _BesideOtherWorkers(uvicorn.Server):
    """uvicorn without its signal handlers: the daemon stops it with its other workers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """A running server; ``async with`` it to stop it on leaving."""

    def __init__(self, server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
        self._server = server
        self._serving = serving

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose, when asked for 0)."""
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop taking connections, finish the requests in flight, and return when it has stopped."""
        self._server.should_exit = True
        await self._serving

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()


async def serve(
    routes: Mapping[str, Handler], host: str, port: int, *, in_thread: Collection[str] = ()
) -> HttpServer:
    """Serve ``routes`` (path to handler) once listening; the caller stops the returned server.

    The handlers of the paths in ``in_thread`` run in worker threads, so that a costly one
    does not hold up the event loop; they must read nothing the loop changes meanwhile.
    """
    config = uvicorn.Config(
        application(routes, in_thread),
        host=host,
        port=port,
        lifespan="off",
        log_config=None,  # the process's own (structured) logging
        access_log=False,
        timeout_keep_alive=int(READ_TIMEOUT),
        h11_max_incomplete_event_size=REQUEST_HEAD_LIMIT,
    )
    server = _BesideOtherWorkers(config)
    serving = asyncio.create_task(server.serve(), name="http-serve")
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it from listening
            raise RuntimeError(f"the HTTP server on {host}:{port} stopped before it listened")
        await asyncio.sleep(0.01)
    return HttpServer(server, serving)
