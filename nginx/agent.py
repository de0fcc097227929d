"""Keeps nginx's routes and upstreams equal to the services' running tasks.

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

What to push is worked out in ``nginx.plan``; the I/O is in ``nginx.adapters`` and
``nginx.process``; this module reads, plans, pushes, and keeps what nginx has.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict

import structlog

from common.lifecycle import sleep_unless_stopped
from common.problems import Problems
from nginx.adapters import (
    LookupFailedError,
    Pusher,
    PushFailedError,
    Resolver,
    RoutesReader,
    RoutesUnavailableError,
    http_pusher,
    http_routes_reader,
    resolve_tasks,
)
from nginx.config import backends, render, static_route
from nginx.plan import rate_limits, routes_while_reloading, upstream_changes, wanted_routes
from nginx.process import ConfigApplier, ConfigRejectedError, NginxProcess
from nginx.routes import Capacity, Route, RoutesError, routes_of
from nginx.settings import AgentSettings

log = structlog.get_logger("nginx_agent")


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
        self.nginx = NginxProcess(settings.config_path)
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
        self.problems = Problems()
        """Kinds: ``routes`` (the table), ``route`` (a service's), ``config``, ``tasks``, ``limit``
        (a service's), ``limits`` (the push)."""
        self._resolve = resolve
        self._push = push or http_pusher(settings.proxy)
        self._push_limits = push_limits or http_pusher(settings.proxy, "rate_limits")
        self._read_routes = read_routes or http_routes_reader(settings.routes_url)
        self._apply_config = apply_config or self.nginx.apply

    async def start_nginx(self) -> None:
        """Write the first configuration, every route with its tasks, and start nginx in the foreground."""
        await self._read_table()
        self.routes = self._wanted_routes()
        self.tasks = await self._lookup(self.routes)
        await self.nginx.start(render(self.settings.proxy, self.routes, self.tasks))
        log.info("routes and tasks at start", tasks=self.tasks)

    async def sync_once(self) -> None:
        await self._read_table()
        await self._sync_routes()
        await self._sync_tasks()
        await self._sync_limits()

    async def _read_table(self) -> None:
        """The autoscaler's routing table; the last one read is kept while it cannot be read."""
        try:
            table = await self._read_routes()
            self.table_routes, left_out = routes_of(table)
        except (RoutesUnavailableError, RoutesError) as error:
            self.problems.set("routes", "table", str(error), consequence="keeping the last table read")
            return
        self.problems.clear("routes", "table")
        self.table, self.table_left_out = table, left_out

    def _wanted_routes(self) -> list[Route]:
        wanted, left_out = wanted_routes(
            static_route(self.settings.proxy), self.table_routes, self.table_left_out
        )
        self.problems.report("route", left_out, consequence="the route is left out")
        return wanted

    async def _sync_routes(self) -> None:
        """A route added or gone is a change of nginx's configuration: checked, then reloaded.

        The tasks of the old and the new routes are pushed first; the next sync pushes the
        new routes' tasks alone.
        """
        wanted = self._wanted_routes()
        if wanted == self.routes:
            return
        tasks = {**(self.tasks or {}), **await self._lookup(wanted)}
        if not await self._push_tasks(routes_while_reloading(self.routes, wanted), tasks):
            return
        try:
            await self._apply_config(render(self.settings.proxy, wanted, tasks))
        except ConfigRejectedError as error:
            self.problems.set("config", "routes", str(error), consequence="nginx keeps its configuration")
            return
        self.problems.clear("config", "routes")
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
            self.problems.set("tasks", "push", str(error), consequence="nginx keeps its task list")
            return False
        self.problems.clear("tasks", "push")
        self.tasks = tasks
        return True

    async def _sync_tasks(self) -> None:
        tasks = await self._lookup(self.routes)
        if tasks == self.tasks:
            return
        previous = self.tasks or {}
        if not await self._push_tasks(self.routes, tasks):
            return
        for change in upstream_changes(previous, tasks):
            log.info("upstream updated", **asdict(change))

    async def _sync_limits(self) -> None:
        """Push every route's rate limit when it changed; a malformed one keeps the last read."""
        limits = rate_limits(self.routes, self.table, self.tasks or {}, self.capacities)
        self.capacities = limits.capacities
        self.problems.report("limit", limits.malformed, consequence="keeping the last rate limit read")
        if limits.lines == self.limits:
            return
        try:
            await self._push_limits(limits.lines)
        except PushFailedError as error:
            self.problems.set("limits", "push", str(error), consequence="nginx keeps its rate limits")
            return
        self.problems.clear("limits", "push")
        self.limits = limits.lines
        log.info("rate limit updated", limits=limits.lines)

    async def sync(self, stop: asyncio.Event) -> None:
        while not await sleep_unless_stopped(stop, self.settings.sync_interval):
            await self.sync_once()
