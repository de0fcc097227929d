import asyncio
import threading
from http import HTTPStatus

import httpx

from common.http import Response, route, serve

ROUTES = {"/health": lambda: Response.json(HTTPStatus.OK, {"status": "ok"}), "/boom": lambda: 1 / 0}


class TestRoute:
    def test_unknown_path_lists_the_endpoints(self):
        """An unknown path is a 404 listing the endpoints there are."""
        response = route(ROUTES, "GET", "/nope")
        assert response.status == HTTPStatus.NOT_FOUND
        assert b"/health" in response.body

    def test_only_reads_are_served(self):
        """Only GET and HEAD are served."""
        assert route(ROUTES, "POST", "/health").status == HTTPStatus.METHOD_NOT_ALLOWED

    def test_query_strings_are_ignored(self):
        """A query string does not change which handler answers."""
        assert route(ROUTES, "GET", "/health?verbose=1").status == HTTPStatus.OK


class TestServe:
    def test_answers_over_a_real_socket(self):
        """Over a real socket: JSON answers, a handler's error is a 500, and HEAD has no body."""

        async def go():
            server = await serve(ROUTES, "127.0.0.1", 0)
            port = server.port
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

    def test_the_paths_named_in_thread_run_off_the_event_loop_and_the_others_on_it(self):
        """A costly handler in a worker thread leaves the loop free; the others share its thread."""
        threads = {}

        def where(name):
            def handler():
                threads[name] = threading.get_ident()
                return Response.text(HTTPStatus.OK, name)

            return handler

        async def go():
            threads["loop"] = threading.get_ident()
            server = await serve(
                {"/slow": where("slow"), "/fast": where("fast")}, "127.0.0.1", 0, in_thread={"/slow"}
            )
            port = server.port
            async with server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                return [(await client.get(path)).text for path in ("/slow", "/fast")]

        assert asyncio.run(go()) == ["slow", "fast"]
        assert threads["slow"] != threads["loop"]
        assert threads["fast"] == threads["loop"]

    def test_an_unfinished_request_head_over_the_limit_is_refused_and_serving_goes_on(self):
        """A head that goes on past the limit without ending is refused: it is not kept in memory."""

        async def go():
            async with await serve(ROUTES, "127.0.0.1", 0) as server:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000)
                await writer.drain()
                answer = await reader.read(100)
                writer.close()
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                    after = await client.get("/health")
            return answer, after

        answer, after = asyncio.run(go())
        assert answer.startswith(b"HTTP/1.1 400")
        assert after.status_code == HTTPStatus.OK
