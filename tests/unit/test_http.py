import asyncio
from http import HTTPStatus

import httpx

from common.http import Response, route, serve

ROUTES = {"/health": lambda: Response.json(HTTPStatus.OK, {"status": "ok"}), "/boom": lambda: 1 / 0}


class TestRoute:
    def test_unknown_path_lists_the_endpoints(self):
        response = route(ROUTES, "GET", "/nope")
        assert response.status == HTTPStatus.NOT_FOUND
        assert b"/health" in response.body

    def test_only_reads_are_served(self):
        assert route(ROUTES, "POST", "/health").status == HTTPStatus.METHOD_NOT_ALLOWED

    def test_query_strings_are_ignored(self):
        assert route(ROUTES, "GET", "/health?verbose=1").status == HTTPStatus.OK


class TestServe:
    def test_answers_over_a_real_socket(self):
        async def go():
            server = await serve(ROUTES, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            async with server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                ok = await client.get("/health")
                failing = await client.get("/boom")
                head = await client.head("/health")
            return ok, failing, head

        ok, failing, head = asyncio.run(go())
        assert ok.json() == {"status": "ok"}
        assert ok.headers["content-type"] == "application/json"
        assert failing.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
        assert head.status_code == HTTPStatus.OK
        assert head.content == b""
