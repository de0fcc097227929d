"""Keeps nginx's routes and upstreams equal to the services' running tasks, and supervises nginx.

The task list comes from Swarm's DNS: ``tasks.<service>`` resolves to the overlay
address of every running task (a task with a health check only once it is healthy).
This follows what Swarm runs — failures, rolling updates and manual scaling included —
and needs no Docker socket in this internet-facing container.

The configuration is written once, at start, with the tasks found then; every change
of the tasks after that is pushed to nginx (``/configuration/backends`` on 127.0.0.1),
whose balancer takes it without a reload: a reload would close the clients' idle
keep-alive connections.

The routes are UPSTREAM_SERVICE's at PROXY_LOCATION, and every service's the autoscaler's
routing table (``ROUTES_URL``) lists, from their ``entrypoint.*`` labels. A route added or
gone changes nginx's configuration: checked with ``nginx -t``, then reloaded.

A service with a rate limit (``autoscaler.replica_rps``) is limited to one task's
capacity times the tasks: the capacity comes from the routing table, the tasks from
DNS, and the limit is pushed to ``/configuration/rate_limits`` whenever either changes.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog

from common.config import (
    ConfigError,
    read_float,
    read_int,
    read_name,
    read_port,
    read_str,
    read_url_prefix,
)
from common.lifecycle import sleep_unless_stopped
from nginx.config import ProxySettings, backends, render, static_route
from nginx.routes import Capacity, Route, RoutesError, capacity_of, limit_lines, routes_of

log = structlog.get_logger("nginx_agent")

NGINX_STOP_TIMEOUT = 15.0
"""Seconds nginx gets to finish the requests in flight when the container stops."""


@dataclass(frozen=True)
class AgentSettings:
    service: str
    """The Swarm service (or its alias on the shared network) whose tasks get the traffic."""
    sync_interval: float
    """Seconds between two look-ups of the running tasks."""
    config_path: Path
    proxy: ProxySettings
    routes_url: str = "http://tasks.autoscaler:8080/routes"
    """The autoscaler's routing table, read at every sync for the service's rate limit."""


MOST_WORKERS = 256
ROUTES_URL = re.compile(r"https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]{0,200})?")


def _workers(environ: Mapping[str, str]) -> str:
    """``auto`` or a number of worker processes."""
    if read_str(environ, "NGINX_WORKERS", "auto") == "auto":
        return "auto"
    return str(read_int(environ, "NGINX_WORKERS", 1, minimum=1, maximum=MOST_WORKERS))


def _routes_url(environ: Mapping[str, str]) -> str:
    value = read_str(environ, "ROUTES_URL", AgentSettings.routes_url)
    if not ROUTES_URL.fullmatch(value):
        raise ConfigError("ROUTES_URL", value, "must be an http:// URL of the autoscaler's /routes")
    return value


def load(environ: Mapping[str, str]) -> AgentSettings:
    service = read_name(environ, "UPSTREAM_SERVICE", "demo-api")
    return AgentSettings(
        routes_url=_routes_url(environ),
        service=service,
        sync_interval=read_float(environ, "UPSTREAM_SYNC_INTERVAL", 1.0, minimum=0.1, maximum=3600),
        config_path=Path(read_str(environ, "NGINX_CONFIG", "/etc/nginx/nginx.conf")),
        proxy=ProxySettings(
            listen_port=read_port(environ, "LISTEN_PORT", 80),
            location=read_url_prefix(environ, "PROXY_LOCATION", "/api/"),
            upstream_port=read_port(environ, "UPSTREAM_PORT", 8000),
            workers=_workers(environ),
            service=service,
            metrics_port=read_port(environ, "METRICS_PORT", 9145),
            control_port=read_port(environ, "CONTROL_PORT", 10246),
        ),
    )


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


class ConfigRejectedError(Exception):
    """nginx -t refused a rendered configuration."""


async def _nginx(*arguments: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "nginx", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode is not None  # noqa: S101 - communicate() waits for the exit
    return process.returncode, output.decode(errors="replace").strip()


async def install(config: str, path: Path) -> None:
    """Replace the config at ``path`` only with one that ``nginx -t`` accepts."""
    candidate = path.with_name(path.name + ".candidate")
    candidate.write_text(config)
    status, output = await _nginx("-t", "-q", "-c", str(candidate))
    if status != 0:
        candidate.unlink(missing_ok=True)
        raise ConfigRejectedError(output)
    candidate.replace(path)


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


ConfigApplier = Callable[[str], Awaitable[None]]
"""Puts a rendered configuration in force, or raises ConfigRejectedError and changes nothing."""


class UpstreamAgent:
    def __init__(  # noqa: PLR0913 - the agent's inputs and outputs, each replaceable in tests
        self,
        settings: AgentSettings,
        resolve: Resolver = resolve_tasks,
        push: Pusher | None = None,
        *,
        push_limits: Pusher | None = None,
        read_routes: RoutesReader | None = None,
        apply_config: ConfigApplier | None = None,
    ) -> None:
        self.settings = settings
        self.routes: list[Route] = [static_route(settings.proxy)]
        """The routes in nginx's configuration: the variables' own first."""
        self.tasks: dict[str, list[str]] | None = None
        """Per route (its ``counted_as``): the tasks nginx sends requests to; None: to be pushed."""
        self.table: object = {"services": []}
        """The last routing table read."""
        self.table_routes: list[Route] = []
        self.table_left_out: dict[str, str] = {}
        """Per service: why the table's route of it is left out."""
        self.capacities: dict[str, Capacity | None] = {}
        """Per route: one task's capacity, as last read; None: no limit."""
        self.limits: list[str] = []
        """The rate limits nginx has."""
        self.problems: dict[str, str] = {}
        """Per input (tasks, routes, a route, a limit, limits, config): what is wrong with it now."""
        self._resolve = resolve
        self._push = push or http_pusher(settings.proxy)
        self._push_limits = push_limits or http_pusher(settings.proxy, "rate_limits")
        self._read_routes = read_routes or http_routes_reader(settings.routes_url)
        self._apply_config = apply_config or self._install_and_reload
        self._nginx: asyncio.subprocess.Process | None = None

    async def start_nginx(self) -> None:
        """Write the first configuration, every route with its tasks, and start nginx in the foreground."""
        await self._read_table()
        self.routes = self._wanted_routes()
        self.tasks = await self._lookup(self.routes)
        await install(render(self.settings.proxy, self.routes, self.tasks), self.settings.config_path)
        self._nginx = await asyncio.create_subprocess_exec(
            "nginx", "-c", str(self.settings.config_path), "-g", "daemon off;"
        )
        log.info("nginx started", pid=self._nginx.pid, tasks=self.tasks)

    async def _install_and_reload(self, config: str) -> None:
        await install(config, self.settings.config_path)
        if self._nginx is not None and self._nginx.returncode is None:
            self._nginx.send_signal(signal.SIGHUP)

    async def sync_once(self) -> None:
        await self._read_table()
        await self._sync_routes()
        await self._sync_tasks()
        await self._sync_limits()

    def _report(self, subject: str, event: str, problem: str) -> None:
        """Log a problem when it appears or changes, not at every sync while it lasts."""
        if self.problems.get(subject) != problem:
            log.error(event, subject=subject, error=problem)
        self.problems[subject] = problem

    def _report_all(self, kind: str, found: dict[str, str], event: str) -> None:
        """The problems of ``kind`` now, by subject: those no longer found are over."""
        for subject in [subject for subject in self.problems if subject.startswith(f"{kind} ")]:
            if subject.removeprefix(f"{kind} ") not in found:
                del self.problems[subject]
        for subject, problem in found.items():
            self._report(f"{kind} {subject}", event, problem)

    async def _read_table(self) -> None:
        """The autoscaler's routing table; the last one read is kept while it cannot be read."""
        try:
            table = await self._read_routes()
            self.table_routes, left_out = routes_of(table)
        except (RoutesUnavailableError, RoutesError) as error:
            self._report("routes", "cannot read the routing table; keeping the last one", str(error))
            return
        self.problems.pop("routes", None)
        self.table, self.table_left_out = table, left_out

    def _wanted_routes(self) -> list[Route]:
        """The variables' route, then the table's by path; one whose path or service is taken is left out."""
        wanted, left_out = [static_route(self.settings.proxy)], dict(self.table_left_out)
        for route in sorted(self.table_routes, key=lambda route: (route.path, route.service)):
            taken = next(
                (w for w in wanted if {w.path, w.counted_as, w.service} & {route.path, route.counted_as}),
                None,
            )
            if taken is not None:
                left_out[repr(route.service)] = f"its path or name is {taken.service}'s already"
                continue
            wanted.append(route)
        self._report_all("route", left_out, "a route in the routing table is left out")
        return wanted

    async def _sync_routes(self) -> None:
        """A route added or gone is a change of nginx's configuration: checked, then reloaded.

        The tasks of the old and the new routes are pushed first: the new workers start
        with the list pushed last (a reload keeps it), so a new route has its tasks from
        its first request, while the old workers pass over a service they do not route.
        The next sync pushes the new routes' tasks alone.
        """
        wanted = self._wanted_routes()
        if wanted == self.routes:
            return
        both = list(dict.fromkeys([*self.routes, *wanted]))
        tasks = {**(self.tasks or {}), **await self._lookup(wanted)}
        if not await self._push_tasks(both, tasks):
            return
        try:
            await self._apply_config(render(self.settings.proxy, wanted, tasks))
        except ConfigRejectedError as error:
            self._report(
                "config", "nginx refused the configuration of the new routes; keeping its own", str(error)
            )
            return
        self.problems.pop("config", None)
        log.info("routes updated", routes=[f"{route.path} {route.service}:{route.port}" for route in wanted])
        self.routes = wanted

    async def _lookup(self, routes: list[Route]) -> dict[str, list[str]]:
        """Every route's tasks; a route whose lookup failed keeps those nginx has."""
        found = {}
        for route in routes:
            try:
                found[route.counted_as] = await self._resolve(route.service)
            except LookupFailedError as error:
                log.warning(
                    "task lookup failed; keeping the current tasks", service=route.service, error=str(error)
                )
                found[route.counted_as] = (self.tasks or {}).get(route.counted_as, [])
        return found

    async def _push_tasks(self, routes: list[Route], tasks: dict[str, list[str]]) -> bool:
        """Whether nginx took the routes' tasks; if not, it keeps its own, and the next sync pushes again."""
        try:
            await self._push(backends(routes, tasks))
        except PushFailedError as error:
            self._report("tasks", "nginx did not take the task list; keeping its current one", str(error))
            return False
        self.problems.pop("tasks", None)
        self.tasks = tasks
        return True

    async def _sync_tasks(self) -> None:
        tasks = await self._lookup(self.routes)
        if tasks == self.tasks:
            return
        previous = self.tasks or {}
        if not await self._push_tasks(self.routes, tasks):
            return
        for service, addresses in tasks.items():
            before = previous.get(service, [])
            if addresses != before:
                log.info(
                    "upstream updated",
                    service=service,
                    servers=addresses,
                    added=sorted(set(addresses) - set(before)),
                    removed=sorted(set(before) - set(addresses)),
                )

    async def _sync_limits(self) -> None:
        """Push every route's rate limit: one task's capacity times the tasks nginx has."""
        limits, malformed = [], {}
        for route in self.routes:
            try:
                self.capacities[route.counted_as] = capacity_of(self.table, (route.service, route.counted_as))
            except RoutesError as error:
                malformed[route.counted_as] = str(error)
            tasks = len((self.tasks or {}).get(route.counted_as, []))
            limits += limit_lines(route.counted_as, self.capacities.get(route.counted_as), tasks)
        self._report_all("limit", malformed, "a rate limit is malformed; keeping the last")
        if limits == self.limits:
            return
        try:
            await self._push_limits(limits)
        except PushFailedError as error:
            self._report("limits", "nginx did not take the rate limit; keeping its current one", str(error))
            return
        self.problems.pop("limits", None)
        self.limits = limits
        log.info("rate limit updated", limits=limits)

    async def sync(self, stop: asyncio.Event) -> None:
        while not await sleep_unless_stopped(stop, self.settings.sync_interval):
            await self.sync_once()

    async def supervise(self, stop: asyncio.Event) -> None:
        """Wait for nginx; stop it gracefully with the daemon, or fail if it dies on its own."""
        process = self._nginx
        if process is None:
            raise RuntimeError("nginx was not started")
        exited = asyncio.create_task(process.wait(), name="nginx-exit")
        stopping = asyncio.create_task(stop.wait(), name="nginx-stop")
        await asyncio.wait([exited, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if process.returncode is None:
            process.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                await asyncio.wait_for(exited, NGINX_STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
            log.info("nginx stopped", returncode=process.returncode)
            return
        raise RuntimeError(f"nginx exited on its own with status {process.returncode}")
