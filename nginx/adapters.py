"""The agent's I/O besides nginx's process: Swarm's DNS, nginx's control port, the routing table."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable

import httpx

from nginx.config import ProxySettings


class LookupFailedError(Exception):
    """DNS did not answer; the current upstream is kept."""


Resolver = Callable[[str], Awaitable[list[str]]]


async def resolve_tasks(service: str) -> list[str]:
    """The running tasks' addresses; empty when the service has none."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            f"tasks.{service}", None, family=socket.AF_INET, type=socket.SOCK_STREAM
        )
    except socket.gaierror as error:
        if error.errno in {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}:
            return []
        raise LookupFailedError(str(error)) from error
    return sorted({str(info[4][0]) for info in infos})


class PushFailedError(Exception):
    """nginx did not take the task list: it is pushed again at the next sync."""


Pusher = Callable[[list[str]], Awaitable[None]]


def http_pusher(settings: ProxySettings, what: str = "backends", timeout: float = 5.0) -> Pusher:
    """Pushes lines to nginx over its control port: ``backends`` (``ip:port``) or ``rate_limits``."""
    url = f"http://127.0.0.1:{settings.control_port}/configuration/{what}"

    async def push(lines: list[str]) -> None:
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.post(url, content="\n".join(lines))
        except httpx.HTTPError as error:
            raise PushFailedError(repr(error)) from error
        if response.status_code != httpx.codes.OK:
            raise PushFailedError(f"{response.status_code} {response.text.strip()}")

    return push


class RoutesUnavailableError(Exception):
    """The autoscaler's routing table could not be read: the last one read is kept."""


RoutesReader = Callable[[], Awaitable[object]]
MOST_ROUTES_BYTES = 4_000_000


def http_routes_reader(url: str, timeout: float = 2.0) -> RoutesReader:
    """Reads the routing table as JSON."""

    async def read() -> object:
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise RoutesUnavailableError(repr(error)) from error
        if len(response.content) > MOST_ROUTES_BYTES:
            raise RoutesUnavailableError(f"routing table too large: {len(response.content)} bytes")
        try:
            return json.loads(response.content)
        except ValueError as error:
            raise RoutesUnavailableError(f"not JSON: {error}") from error

    return read
