"""The live daemon: every CHECK_INTERVAL, observe each autoscaled service, decide, scale.

Nothing from outside can stop the loop: a malformed answer or an unexpected error
affects only the service, collector or task it belongs to; it is logged once, shown
in /status and counted in /metrics, and the other services are decided as usual.

What a check reads is in ``intake``, a service's policy in ``policies``, what it knows of
a service in ``observation``, the decision in ``core``, what is saved in ``state_keeper``
and what the endpoints show in ``records``; this module runs the loop, writes the
changes and takes turns with the other instances (``leadership``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from dataclasses import replace

import httpx
import structlog

from autoscaler import core
from autoscaler.collectors import Resolver, resolve_all
from autoscaler.core import Decision, Observation, Policy, ServiceState
from autoscaler.intake import Intake
from autoscaler.leadership import Leadership
from autoscaler.observation import Inputs, observe, seen_of, windows_of
from autoscaler.policies import policy_of
from autoscaler.policy_source import PolicyFileSource
from autoscaler.records import DaemonState, ServiceRecord, snapshot
from autoscaler.schedules import scheduled, status_at
from autoscaler.settings import Settings
from autoscaler.state_keeper import Saved, StateKeeper
from autoscaler.state_store import ConfigStateStore
from autoscaler.swarm import StaleServiceError, Swarm, SwarmService

log = structlog.get_logger("autoscaler")

STALE_RETRIES = 3
"""Times a service that changed under a decision is read and decided again within one check."""


class Autoscaler:
    def __init__(  # noqa: PLR0913 - the daemon's adapters, each replaceable in tests
        self,
        settings: Settings,
        swarm: Swarm,
        http: httpx.AsyncClient,
        *,
        store: ConfigStateStore | None = None,
        clock: Callable[[], float] = time.time,
        resolve: Resolver = resolve_all,
        leadership: Leadership | None = None,
        state: DaemonState | None = None,
    ) -> None:
        """``leadership``: the lease that says whether this instance acts; None: it always does.

        ``state``: what the daemon knows, kept across checks; a new one by default.
        """
        self.settings = settings
        self.state = DaemonState() if state is None else state
        self._published = snapshot(self.state)
        self._swarm = swarm
        self._intake = Intake(settings, self.state, swarm=swarm, http=http, resolve=resolve, clock=clock)
        self._keeper = None if store is None else StateKeeper(store, settings.state.save_interval)
        self._clock = clock
        self._leadership = leadership
        file = settings.policy_file
        self._policy_file = PolicyFileSource(
            file.path, file.entries, settings.policy_environment, self.state.problems
        )
        self._entries = file.entries

    def published(self) -> DaemonState:
        """The state as of the end of the last check: what the endpoints show, from any thread."""
        return self._published

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.settings.loop.check_interval
        surge_window = self.settings.entry_point.surge_window
        log.info("control loop started", check_interval=interval, surge_window=surge_window)
        next_check = time.monotonic()
        while not stop.is_set():
            try:
                await self._check()
            except Exception:
                # Every input is checked where it enters; this is the last line of defence.
                log.exception("check failed")
            self._published = snapshot(self.state)
            # A fixed schedule, so that cooldowns that are multiples of the interval end on a check.
            next_check = max(next_check + interval, time.monotonic())
            early_read = next_check - surge_window
            if early_read > time.monotonic():
                if await self._wait(stop, early_read - time.monotonic()):
                    break
                await self.read_requests()
            if await self._wait(stop, next_check - time.monotonic()):
                break
            if self._leadership is not None and self._leadership.acquired.is_set():
                # An instance that just took the lease checks at once, on a schedule of its own.
                next_check = time.monotonic()

    async def _check(self) -> None:
        """One check; a standby's is given up for one that acts when this instance takes the lease.

        A standby's check only reads, and may be waiting on a dead node's collector: acting
        at once matters more than its reading.
        """
        leadership = self._leadership
        if leadership is None or leadership.leading():
            await self.check_once()
            return
        check = asyncio.create_task(self.check_once(), name="standby-check")
        acquired = asyncio.create_task(leadership.acquired.wait(), name="lease-acquired")
        done, _ = await asyncio.wait([check, acquired], return_when=asyncio.FIRST_COMPLETED)
        if check in done:
            acquired.cancel()
            check.result()
            return
        check.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await check
        await self.check_once()

    async def _wait(self, stop: asyncio.Event, seconds: float) -> bool:
        """Sleep ``seconds``, or less if this instance takes the lease; True if the daemon stops."""
        waits = [asyncio.create_task(stop.wait(), name="stop-wait")]
        if self._leadership is not None:
            waits.append(asyncio.create_task(self._leadership.acquired.wait(), name="lease-acquired"))
        try:
            await asyncio.wait(waits, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return stop.is_set()

    async def read_requests(self) -> None:
        """The entry points' counters into the history only: where the next check's surge window starts."""
        await self._intake.early_requests()

    async def check_once(self) -> None:
        """One check, with Python's cyclic garbage collector held off until its end.

        A check allocates in proportion to the services (the collectors' reports, the
        entry points' counters), and the collections it sets off walk more of the heap, which
        also grows with the services (their histories), the more services there are: held
        off, a check's cost grows in proportion to the services instead of faster
        (bench/decision_loop.py). What the check made, all of it still in the youngest
        generations, is collected once at its end, as part of its time, without walking the
        older objects.
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            await self._check_once()
        finally:
            if collecting:
                gc.enable()
                gc.collect(generation=1)

    async def _check_once(self) -> None:
        state = self.state
        now = self._clock()
        state.last_check_at = now
        self._entries = self._policy_file.current()
        services = await self._intake.services()
        if services is None:
            return
        state.routes = await self._intake.routes()
        acting = self._acting()
        if acting:
            await self._load_state(services)
        inputs = await self._intake.inputs(services)
        for service in services:
            try:
                if acting:
                    await self._handle(service, inputs, now)
                else:
                    # A standby reads the policy only, so that its routing table is the active one's.
                    self._policy(service, state.services.setdefault(service.name, ServiceRecord()))
                state.problems.clear("decision", service.name)
            except Exception as error:
                log.exception("decision failed", service=service.name)
                state.problems.set("decision", service.name, repr(error))
        known = {service.name for service in services}
        for gone in set(state.services) - known:
            del state.services[gone]
        ids = {service.id for service in services}
        for gone in set(state.memory) - ids:
            del state.memory[gone]
        if acting:
            await self._save(services, now)
        state.last_successful_check_at = self._clock()

    def _acting(self) -> bool:
        """Whether this instance decides and writes in this check.

        An instance that starts a new term forgets what it remembered: what the others
        did meanwhile is in the saved state, which it reads again.
        """
        leadership = self._leadership
        if leadership is None:
            return True
        leadership.acquired.clear()
        term = leadership.term
        state = self.state
        if term is not None and term != state.acting_term:
            state.state_loaded = False
            state.memory.clear()
            state.saved = Saved(sequence=state.saved.sequence)
        elif term is None and state.acting_term is not None:
            # Deposed: its last decisions are no longer the swarm's, on /status or in /metrics.
            state.services.clear()
        state.acting_term = term
        return term is not None

    def _policy(self, service: SwarmService, record: ServiceRecord) -> Policy | None:
        """The service's policy now: its own, with the bounds of its schedules that are active."""
        applied = self._entries.for_service(service.name, service.labels)
        policy = policy_of(service, record, self.settings.policy_environment, self.state.problems, applied)
        now = self._clock()
        replayed = None if record.replay_clock is None else record.replay_clock.schedule_time(now)
        if replayed is None:
            record.schedule = status_at(applied.schedules, now)
        else:
            record.schedule = replace(status_at(applied.schedules, replayed), trace_time=replayed)
        return None if policy is None else scheduled(policy, record.schedule)

    def _may_write(self) -> bool:
        return self._leadership is None or self._leadership.leading()

    async def _load_state(self, services: list[SwarmService]) -> None:
        """Once, before the first decision: the state saved by the autoscaler that ran before.

        What belongs to services no longer autoscaled is left out, and removed by the next save.
        """
        state, keeper = self.state, self._keeper
        if state.state_loaded:
            return
        state.state_loaded = True
        if keeper is None:
            return
        try:
            loaded, unreadable = await asyncio.to_thread(keeper.load, state.saved, self._clock())
        except Exception as error:  # noqa: BLE001 - lost state means starting fresh, never stopping
            state.problems.set("state", "load", f"cannot read saved state, starting fresh: {error!r}")
            return
        names = {service.id: service.name for service in services}
        for subject, problem in unreadable.items():
            state.problems.set("state", names.get(subject, subject), f"{problem}; starting fresh")
        state.memory.update({key: value for key, value in loaded.items() if key in names})
        state.restored_services = len(state.memory)
        log.info("state restored", services=sorted(names[key] for key in state.memory))

    async def _handle(self, service: SwarmService, inputs: Inputs, now: float) -> None:
        state = self.state
        record = state.services.setdefault(service.name, ServiceRecord())
        policy = self._policy(service, record)
        if policy is None:
            return
        memory = state.memory.get(service.id, ServiceState())
        record.source = await self._intake.source(service, policy)
        requests = windows_of(service, inputs.requests, state.behind_entry_point)
        record.requests, record.recent_requests = requests.window, requests.recent
        changed = False
        for attempt in range(1, STALE_RETRIES + 1):
            observation = observe(service, seen_of(service, inputs, requests, record.source), policy)
            decision = core.decide(observation, policy, memory, now)
            self._record_decision(service, record, observation, decision, policy, now)
            if not decision.changes or policy.dry_run:
                memory = decision.state
                break
            if self._leadership is not None and not await self._leadership.confirm():
                # Deposed since the check began: the instance that holds the lease decides.
                state.problems.set("leadership", service.name, "lease lost before the write: not written")
                break
            try:
                await asyncio.to_thread(self._swarm.scale, service, decision.desired_replicas)
            except StaleServiceError as error:
                log.info(
                    "service changed under the decision; deciding again",
                    service=service.name,
                    error=str(error),
                )
                service = await asyncio.to_thread(self._swarm.inspect, service.id)
                # What changed may be the labels (a pause, new bounds): decide on those.
                changed_policy = self._policy(service, record)
                if changed_policy is None or attempt == STALE_RETRIES:
                    break
                policy = changed_policy
                continue
            except Exception as error:  # noqa: BLE001 - a refused update is reported and retried next check
                state.scale_failures[service.name] += 1
                state.problems.set("scale", service.name, repr(error))
                memory = decision.state
                break
            state.problems.clear("scale", service.name)
            state.problems.clear("leadership", service.name)
            memory = core.record_change(
                decision.state, now, decision.current_replicas, decision.desired_replicas
            )
            changed = True
            self._log_change(service, decision)
            break
        if record.decision is not None:
            ready = record.observation.ready_replicas if record.observation else None
            record.timeline.add(record.decision, ready, now, changed)
        state.memory[service.id] = memory

    def _record_decision(  # noqa: PLR0913, PLR0917 - one event gathers the whole decision
        self,
        service: SwarmService,
        record: ServiceRecord,
        observation: Observation,
        decision: Decision,
        policy: Policy,
        now: float,
    ) -> None:
        record.decision, record.decided_at, record.observation = decision, now, observation
        self.state.decisions[(service.name, decision.reason.action)] += 1
        log.info(
            "decision",
            service=service.name,
            current_replicas=decision.current_replicas,
            desired_replicas=decision.desired_replicas,
            dry_run=policy.dry_run,
            **decision.reason.as_dict(),
        )

    def _log_change(self, service: SwarmService, decision: Decision) -> None:
        direction = "up" if decision.desired_replicas > decision.current_replicas else "down"
        self.state.scale_events[(service.name, direction)] += 1
        log.info(
            "scaled",
            service=service.name,
            direction=direction,
            replicas_from=decision.current_replicas,
            replicas_to=decision.desired_replicas,
        )

    async def _save(self, services: list[SwarmService], now: float) -> None:
        """What a restart needs of every service's state, in one save (``autoscaler.state_keeper``)."""
        state, keeper = self.state, self._keeper
        if keeper is None or not self._may_write():
            return
        policies = {}
        for service in services:
            record = state.services.get(service.name)
            if record is not None and record.policy is not None and record.config_error is None:
                policies[service.id] = record.policy
        try:
            await asyncio.to_thread(keeper.save, state.saved, dict(state.memory), policies, now)
        except Exception as error:  # noqa: BLE001 - tried again at the next check
            state.problems.set("state", "save", f"cannot save state: {error!r}")
            return
        state.problems.clear("state", "save")
        for subject in state.problems.of_kind("state"):
            if subject != "load":
                # Unreadable when loaded: what this save wrote replaces it.
                state.problems.clear("state", subject)
