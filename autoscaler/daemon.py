"""The live daemon: every CHECK_INTERVAL, observe each autoscaled service, decide, scale."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import structlog

from autoscaler import core
from autoscaler.collectors import Reading, Resolver, read_collectors, resolve_all
from autoscaler.core import Decision, Observation, Policy, ServiceState
from autoscaler.policy import service_policy
from autoscaler.settings import Settings
from autoscaler.swarm import Swarm, SwarmService
from common.config import ConfigError
from common.lifecycle import sleep_unless_stopped

log = structlog.get_logger("autoscaler")


@dataclass
class ServiceRecord:
    """The latest word on one service, for /status and /metrics."""

    decision: Decision | None = None
    decided_at: float | None = None
    policy: Policy | None = None
    config_error: str | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None


@dataclass
class DaemonState:
    """Everything the endpoints report; written only by the control loop."""

    services: dict[str, ServiceRecord] = field(default_factory=dict)
    memory: dict[str, ServiceState] = field(default_factory=dict)
    """Per service id: what the decision core remembers."""
    scale_events: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Per (service, direction): changes made."""
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Per (service, action): decisions made."""
    scale_failures: Counter[str] = field(default_factory=Counter)
    last_check_at: float | None = None
    last_successful_check_at: float | None = None
    docker_error: str | None = None
    collector_errors: list[str] = field(default_factory=list)
    collectors_answered: int = 0
    freshest_sample_at: float | None = None


class Autoscaler:
    def __init__(
        self,
        settings: Settings,
        swarm: Swarm,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
        resolve: Resolver = resolve_all,
    ) -> None:
        self.settings = settings
        self.state = DaemonState()
        self._swarm = swarm
        self._http = http
        self._clock = clock
        self._resolve = resolve

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.settings.loop.check_interval
        log.info("control loop started", check_interval=interval)
        while not stop.is_set():
            started = time.monotonic()
            await self.check_once()
            elapsed = time.monotonic() - started
            if await sleep_unless_stopped(stop, max(0.0, interval - elapsed)):
                break

    async def check_once(self) -> None:
        state = self.state
        state.last_check_at = self._clock()
        try:
            services = await asyncio.to_thread(self._swarm.autoscaled_services)
        except Exception as error:  # noqa: BLE001 - any failure to reach Docker is reported the same way
            state.docker_error = repr(error)
            log.error("docker api unreachable", error=repr(error))
            return
        state.docker_error = None
        reading = await read_collectors(self.settings.collectors, self._http, self._resolve)
        self._note_collectors(reading)
        known = set()
        for service in services:
            known.add(service.name)
            await self._handle(service, reading)
        for gone in set(state.services) - known:
            del state.services[gone]
        state.last_successful_check_at = self._clock()

    def _note_collectors(self, reading: Reading) -> None:
        state = self.state
        state.collector_errors = reading.errors
        state.collectors_answered = reading.collectors_answered
        samples = [metrics.sampled_at for metrics in reading.services.values()]
        if samples:
            state.freshest_sample_at = max(samples)
        for error in reading.errors:
            log.warning("collector unreachable", error=error)

    async def _handle(self, service: SwarmService, reading: Reading) -> None:
        state = self.state
        record = state.services.setdefault(service.name, ServiceRecord())
        if service.replicas is None:
            record.config_error = "global service: only replicated services can be scaled"
            log.error("service skipped", service=service.name, error=record.config_error)
            return
        try:
            policy = service_policy(self.settings.policy_environment, service.labels)
        except ConfigError as error:
            record.config_error = str(error)
            log.error(
                "service skipped: bad label",
                service=service.name,
                label=error.name,
                value=error.value,
                error=error.problem,
            )
            return
        record.config_error = None
        record.policy = policy
        metrics = reading.services.get(service.name)
        observation = Observation(
            current_replicas=service.replicas,
            ready_replicas=metrics.tasks if metrics else None,
            cpu_percent=metrics.cpu_percent if metrics else None,
            memory_percent=metrics.memory_percent if metrics else None,
            sampled_at=metrics.sampled_at if metrics else None,
        )
        record.cpu_percent, record.memory_percent = observation.cpu_percent, observation.memory_percent
        # A service first seen counts as changed when its spec last changed, so that a
        # restarted autoscaler does not ignore a cooldown that is still running.
        memory = state.memory.setdefault(service.id, ServiceState(last_scaled_at=service.updated_at))
        now = self._clock()
        decision = core.decide(observation, policy, memory, now)
        record.decision, record.decided_at = decision, now
        state.decisions[(service.name, decision.reason.action)] += 1
        log.info(
            "decision",
            service=service.name,
            current_replicas=decision.current_replicas,
            desired_replicas=decision.desired_replicas,
            **decision.reason.as_dict(),
        )
        if not decision.changes:
            return
        try:
            await asyncio.to_thread(self._swarm.scale, service.id, decision.desired_replicas)
        except Exception as error:  # noqa: BLE001 - a failed update is logged and retried next check
            state.scale_failures[service.name] += 1
            log.error("scale failed", service=service.name, error=repr(error))
            return
        memory.record_change(now, decision.current_replicas, decision.desired_replicas)
        direction = "up" if decision.desired_replicas > decision.current_replicas else "down"
        state.scale_events[(service.name, direction)] += 1
        log.info(
            "scaled",
            service=service.name,
            direction=direction,
            replicas_from=decision.current_replicas,
            replicas_to=decision.desired_replicas,
        )
