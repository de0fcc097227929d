"""``python -m demo_api``: the demo service the stack scales.

GET /api/health answers at once; GET /api/work?ms=N (or a POST, its body ignored) burns N
milliseconds of CPU time (at most MAX_WORK_MS) and reports which address served it, so that a client can see
the load balancer spread requests over the tasks. GET /api/wait?ms=N waits N
milliseconds on average (from N/2 to 3N/2, as a database's answers vary) in one of
WAIT_WORKERS slots (4): its latency grows with concurrency while its CPU stays low,
like a service waiting on a database. GET /api/flaky?p=F fails a fraction F of the
requests with a 500. /api/echo is a WebSocket that answers each text message with
{"served_by": ..., "hostname": ..., "message": ...}, so that a client can see its
connection stay on one task.

With a data tier (DATA_ROUTER set), POST /api/items with {"value": "..."} writes a row on
the primary and answers {"id": N}; GET /api/items/N reads it, from Redis when cached and
from a replica otherwise; GET /api/items?search=TEXT counts the values that contain TEXT,
a whole-table read on a replica. When the database is away these answer 503 within a few
seconds.

It is served by uvicorn, which shuts down as a service must for scaling without dropped
requests: at SIGTERM it stops accepting connections, closes its idle keep-alive ones,
lets every request in flight finish, and then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from common.config import ConfigError, parse_float, parse_int, read_int, read_port, read_str
from common.lifecycle import load_or_exit
from demo_api.items import MOST_VALUE_CHARACTERS, DataSettings, ItemStore, UnavailableError

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


BAD_MS = {"error": f"ms must be a whole number in 0..{MAX_WORK_MS}"}


def _answer(status: HTTPStatus, payload: dict[str, Any]) -> JSONResponse:
    return JSONResponse(payload, status_code=status)


def _served_by(request: Request) -> str:
    return (request.scope.get("server") or ("", 0))[0]


class DemoApi:
    """The endpoints, one coroutine each, on the items' store when there is a data tier."""

    def __init__(self, wait_workers: int, store: ItemStore | None = None) -> None:
        self.wait_workers = wait_workers
        self.store = store
        self._wait_slots: asyncio.Semaphore | None = None

    @property
    def wait_slots(self) -> asyncio.Semaphore:
        """The workers /api/wait queues for, made on the server's event loop at first use."""
        if self._wait_slots is None:
            self._wait_slots = asyncio.Semaphore(self.wait_workers)
        return self._wait_slots

    def application(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            if self.store is not None:
                await self.store.open()
            try:
                yield
            finally:
                if self.store is not None:
                    await self.store.close()

        routes = [
            Route("/api/health", self.health, methods=["GET"]),
            Route("/api/work", self.work, methods=["GET", "POST"]),
            Route("/api/wait", self.wait, methods=["GET"]),
            Route("/api/flaky", self.flaky, methods=["GET"]),
            Route("/api/items", self.search_items, methods=["GET"]),
            Route("/api/items", self.create_item, methods=["POST"]),
            Route("/api/items/{item:int}", self.read_item, methods=["GET"]),
            WebSocketRoute("/api/echo", self.echo),
        ]
        return Starlette(routes=routes, lifespan=lifespan)

    @staticmethod
    async def health(_request: Request) -> JSONResponse:
        return _answer(HTTPStatus.OK, {"status": "ok"})

    @staticmethod
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        served_by = (websocket.scope.get("server") or ("", 0))[0]
        try:
            while True:
                message = await websocket.receive_text()
                await websocket.send_json(
                    {"served_by": served_by, "hostname": socket.gethostname(), "message": message[:1000]}
                )
        except WebSocketDisconnect:
            return

    @staticmethod
    async def work(request: Request) -> JSONResponse:
        await request.body()  # read to its end, so that the connection can take the next request
        milliseconds = work_milliseconds(request.url.query)
        if milliseconds is None:
            return _answer(HTTPStatus.BAD_REQUEST, BAD_MS)
        # In a thread, so that the server goes on accepting and answering while it burns.
        await asyncio.to_thread(burn_cpu, milliseconds)
        payload = {"served_by": _served_by(request), "hostname": socket.gethostname(), "cpu_ms": milliseconds}
        return _answer(HTTPStatus.OK, payload)

    async def wait(self, request: Request) -> JSONResponse:
        milliseconds = work_milliseconds(request.url.query)
        if milliseconds is None:
            return _answer(HTTPStatus.BAD_REQUEST, BAD_MS)
        queued_at = time.monotonic()
        async with self.wait_slots:
            started_at = time.monotonic()
            await asyncio.sleep(random.uniform(0.5, 1.5) * milliseconds / 1000)  # noqa: S311 - a demo's delay
        queued_ms = round(1000 * (started_at - queued_at))
        return _answer(HTTPStatus.OK, {"served_by": _served_by(request), "queued_ms": queued_ms})

    @staticmethod
    async def flaky(request: Request) -> JSONResponse:
        fraction = failure_fraction(request.url.query)
        if fraction is None:
            return _answer(HTTPStatus.BAD_REQUEST, {"error": "p must be a number in 0..1"})
        if random.random() < fraction:  # noqa: S311 - a demo's failures, not a secret
            return _answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "failed on purpose"})
        return _answer(HTTPStatus.OK, {"served_by": _served_by(request)})

    def _store(self) -> ItemStore:
        if self.store is None:
            raise UnavailableError("no data tier: DATA_ROUTER is not set")
        return self.store

    async def create_item(self, request: Request) -> JSONResponse:
        try:
            document = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            document = None
        value = document.get("value") if isinstance(document, dict) else None
        if not isinstance(value, str) or len(value) > MOST_VALUE_CHARACTERS:
            problem = f'the body must be {{"value": "..."}}, a string of at most {MOST_VALUE_CHARACTERS}'
            return _answer(HTTPStatus.BAD_REQUEST, {"error": problem})
        return await _unless_unavailable(self._created(value))

    async def _created(self, value: str) -> JSONResponse:
        return _answer(HTTPStatus.CREATED, {"id": await self._store().create(value)})

    async def read_item(self, request: Request) -> JSONResponse:
        return await _unless_unavailable(self._read(int(request.path_params["item"])))

    async def _read(self, item: int) -> JSONResponse:
        found = await self._store().get(item)
        if found is None:
            return _answer(HTTPStatus.NOT_FOUND, {"error": f"no item {item}"})
        value, origin = found
        return _answer(HTTPStatus.OK, {"id": item, "value": value, "from": origin})

    async def search_items(self, request: Request) -> JSONResponse:
        text = parse_qs(request.url.query).get("search", [""])[0]
        if len(text) > 100:
            return _answer(HTTPStatus.BAD_REQUEST, {"error": "search is at most 100 characters"})
        return await _unless_unavailable(self._search(text))

    async def _search(self, text: str) -> JSONResponse:
        matches, database = await self._store().search(text)
        return _answer(HTTPStatus.OK, {"search": text, "matches": matches, "database": database})


async def _unless_unavailable(answer: Awaitable[JSONResponse]) -> JSONResponse:
    try:
        return await answer
    except UnavailableError as error:
        log.warning("database unavailable", error=str(error))
        return _answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"database unavailable: {error}"})


def server(host: str, port: int, wait_workers: int, data: DataSettings | None = None) -> uvicorn.Server:
    """uvicorn serving the demo API; ``run()`` serves until SIGTERM (or ``should_exit``)."""
    config = uvicorn.Config(
        DemoApi(wait_workers, ItemStore(data) if data else None).application(),
        host=host,
        port=port,
        log_config=None,  # the process's own (structured) logging
        access_log=False,
        lifespan="on",
        # Idle keep-alive connections stay open longer than nginx keeps them (60 s), so
        # that nginx never sends a request on a connection the server is closing.
        timeout_keep_alive=75,
    )
    return uvicorn.Server(config)


def data_settings(environ: Mapping[str, str]) -> DataSettings | None:
    """The data tier's settings; None without DATA_ROUTER (the item endpoints then answer 503)."""
    host = read_str(environ, "DATA_ROUTER", "")
    if not host:
        return None
    return DataSettings(
        host=host,
        password=read_str(environ, "DATABASE_PASSWORD", "autoscaler-demo"),
        read_pool_size=read_int(environ, "DATABASE_READ_POOL", 10, minimum=1, maximum=100),
        write_pool_size=read_int(environ, "DATABASE_WRITE_POOL", 2, minimum=1, maximum=100),
    )


def main() -> None:
    port, wait_workers, data = load_or_exit(
        lambda environ: (
            read_port(environ, "PORT", 8000),
            read_int(environ, "WAIT_WORKERS", 4, minimum=1, maximum=MAX_WAIT_WORKERS),
            data_settings(environ),
        )
    )
    log.info(
        "demo api started", port=port, wait_workers=wait_workers, data_router=data.host if data else None
    )
    server("0.0.0.0", port, wait_workers, data).run()  # noqa: S104 - a service in a container
    log.info("demo api stopped")


if __name__ == "__main__":
    main()
