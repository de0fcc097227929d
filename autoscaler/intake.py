"""What a check reads from outside: the swarm's services, routes and tasks, the collectors,
the entry points, and a service's own metric source.

Each read reports what is wrong with it into the daemon's problems and never raises:
a read that fails leaves what it belongs to unknown, or keeps the last value where the
entry point relies on one (the routes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import structlog

from autoscaler.collectors import Reading, Resolver, read_collectors
from autoscaler.core import Policy
from autoscaler.entrypoint import RequestReading, read_entry_points
from autoscaler.observation import Inputs, running_by_service
from autoscaler.records import DaemonState
from autoscaler.routing import RoutedService, route_of
from autoscaler.settings import Settings
from autoscaler.sources import SourceReading, read_source
from autoscaler.swarm import RunningTask, Swarm, SwarmService, name_in_stack
from common.config import ConfigError

log = structlog.get_logger("autoscaler")


class Intake:
    """The daemon's reads, each into ``state``: what it shows and its problems."""

    def __init__(  # noqa: PLR0913 - the adapters a read goes through, each replaceable in tests
        self,
        settings: Settings,
        state: DaemonState,
        *,
        swarm: Swarm,
        http: httpx.AsyncClient,
        resolve: Resolver,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._state = state
        self._swarm = swarm
        self._http = http
        self._resolve = resolve
        self._clock = clock

    async def services(self) -> list[SwarmService] | None:
        """The autoscaled services; None when Docker cannot be read (the check then does nothing)."""
        problems = self._state.problems
        try:
            services, malformed = await asyncio.to_thread(self._swarm.autoscaled_services)
        except Exception as error:  # noqa: BLE001 - any failure to reach Docker is reported the same way
            problems.set("docker", "services", repr(error))
            return None
        problems.clear("docker", "services")
        problems.report("service_entry", malformed)
        return services

    async def routes(self) -> dict[str, RoutedService]:
        """Every routed service's route; a service whose route labels are bad is left out and reported."""
        state = self._state
        try:
            services, problems = await asyncio.to_thread(self._swarm.routed_services)
        except Exception as error:  # noqa: BLE001 - any failure to reach Docker is reported the same way
            state.problems.set("docker", "routes", repr(error))
            return state.routes  # the entry point keeps the routes it has
        state.problems.clear("docker", "routes")
        routes = {}
        for service in services:
            try:
                route = route_of(service.labels)
            except ConfigError as error:
                problems[service.name] = str(error)
                continue
            if route is not None:
                routes[service.name] = RoutedService(name_in_stack(service.name, service.labels), route)
        state.problems.report("route", problems)
        return routes

    async def inputs(self, services: list[SwarmService]) -> Inputs:
        """The running tasks, the collectors and the entry points, for every service."""
        tasks = await self._running_tasks()
        reading = await read_collectors(self._settings.collectors, self._http, self._resolve)
        self._note_collectors(reading, services, tasks)
        state = self._state
        requests, state.request_history = await read_entry_points(
            self._settings.entry_point, self._http, self._resolve, state.request_history, self._clock
        )
        self._note_entry_points(requests)
        return Inputs(reading, None if tasks is None else running_by_service(tasks), requests)

    async def early_requests(self) -> None:
        """The entry points' counters into the history only: where the next check's surge window starts."""
        state = self._state
        try:
            _, state.request_history = await read_entry_points(
                self._settings.entry_point, self._http, self._resolve, state.request_history, self._clock
            )
        except Exception:
            # The check reads them again and reports what is wrong; a surge window is then missing.
            log.exception("early read of the entry points failed")

    async def source(self, service: SwarmService, policy: Policy) -> SourceReading | None:
        """The service's metric source, if it has one; what its endpoints get wrong is its problem only."""
        if policy.source is None:
            return None
        reading = await read_source(policy.source, self._http, self._resolve, self._clock)
        if reading.problems:
            details = "; ".join(f"{url}: {problem}" for url, problem in sorted(reading.problems.items()))
            self._state.problems.set("source", service.name, details)
        else:
            self._state.problems.clear("source", service.name)
        return reading

    async def _running_tasks(self) -> list[RunningTask] | None:
        try:
            tasks = await asyncio.to_thread(self._swarm.running_tasks)
        except Exception as error:  # noqa: BLE001 - without the task list, coverage is estimated
            self._state.problems.set("docker", "tasks", repr(error))
            return None
        self._state.problems.clear("docker", "tasks")
        return tasks

    def _note_collectors(
        self, reading: Reading, services: list[SwarmService], tasks: list[RunningTask] | None
    ) -> None:
        state = self._state
        state.problems.report("collector", reading.errors)
        state.problems.report("collector_entry", reading.entry_problems)
        state.collectors_answered = reading.collectors_answered
        samples = [metrics.sampled_at for metrics in reading.services.values()]
        if samples:
            state.freshest_sample_at = max(samples)
        ids = {service.id for service in services}
        nodes = {task.node_id for task in tasks or () if task.service_id in ids}
        state.nodes_unmeasured = (
            sorted(nodes - reading.nodes) if reading.nodes or not reading.services else []
        )

    def _note_entry_points(self, requests: RequestReading) -> None:
        state = self._state
        state.problems.report("entrypoint", requests.errors)
        state.problems.report("entrypoint_too_large", requests.too_large)
        state.problems.report("entrypoint_entry", requests.entry_problems)
        state.entry_points_answered = requests.instances_answered
        if requests.instances_answered:
            state.requests_read_at = requests.read_at
        state.behind_entry_point.update(requests.counted)
