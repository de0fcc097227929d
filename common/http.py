"""A small asyncio HTTP/1.1 server for the daemons' read-only endpoints.

The daemons serve only a handful of GET endpoints (health, metrics, status) to
monitoring systems and operators; each response is computed by a synchronous handler
that reads in-memory state, so a full web framework would add nothing but weight.
Every connection answers one request and is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog

log = structlog.get_logger(__name__)

REQUEST_HEAD_LIMIT = 8192
"""Largest request line plus headers accepted, in bytes."""

READ_TIMEOUT = 10.0
"""Seconds a client may take to send its request head."""


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


def _head(status: int, response_length: int, content_type: str) -> bytes:
    phrase = HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {phrase}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {response_length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")


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


async def _serve_connection(
    routes: Mapping[str, Handler],
    in_thread: Collection[str],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3:
            response = Response.text(HTTPStatus.BAD_REQUEST, "malformed request line\n")
            method = "GET"
        else:
            method, target, _version = parts
            try:
                if target.split("?", 1)[0] in in_thread:
                    response = await asyncio.to_thread(route, routes, method, target)
                else:
                    response = route(routes, method, target)
            except Exception:
                log.exception("http handler failed", target=target)
                response = Response.text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")
        writer.write(_head(response.status, len(response.body), response.content_type))
        if method != "HEAD":
            writer.write(response.body)
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
        pass  # the client went away or sent something that is not HTTP: nothing to answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def serve(
    routes: Mapping[str, Handler], host: str, port: int, *, in_thread: Collection[str] = ()
) -> asyncio.Server:
    """Start serving ``routes`` (path to handler); the caller owns the returned server.

    The handlers of the paths in ``in_thread`` run in worker threads, so that a costly one
    does not hold up the event loop; they must read nothing the loop changes meanwhile.
    """

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(routes, in_thread, reader, writer)

    return await asyncio.start_server(on_connection, host, port, limit=REQUEST_HEAD_LIMIT)
