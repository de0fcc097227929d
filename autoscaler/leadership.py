"""The lease loop of one autoscaler instance: take the lease, renew it, or watch it.

Every ``retry_period`` the lease is read and, by the rules of ``autoscaler.lease``,
renewed or taken. Right before each scale write the daemon asks ``confirm()``, which
renews the lease once more: a deposed instance's renewal is refused (the record's
version moved on), and its write is never made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from autoscaler import lease
from autoscaler.lease import Elector, LeaseSettings, Record
from autoscaler.lease_store import LeaseStoreError
from common.lifecycle import sleep_unless_stopped

log = structlog.get_logger("autoscaler.leadership")


class LeaseStore(Protocol):
    async def read(self) -> Record: ...
    async def write(self, record: Record) -> int: ...


@dataclass(frozen=True)
class LeadershipStatus:
    instance: str
    active: bool
    active_since: float | None
    """Wall-clock seconds since the epoch when this instance last took the lease, while it holds it."""
    holder: str | None
    """The holder named by the lease as last read."""
    term: int | None
    problem: str | None
    """Why the last attempt failed, if it did."""


class Leadership:
    def __init__(
        self,
        store: LeaseStore,
        settings: LeaseSettings,
        instance: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.instance = instance
        self._store = store
        self._monotonic = monotonic
        self._clock = clock
        self._elector = Elector()
        self._since: float | None = None
        self._problem: str | None = None
        self._lock = asyncio.Lock()
        self.acquired = asyncio.Event()
        """Set when this instance takes the lease: the daemon checks at once."""

    def leading(self) -> bool:
        return lease.leading(self._elector, self._monotonic(), self.settings)

    @property
    def term(self) -> int | None:
        """This instance's term while it may act, else None."""
        return self._elector.term if self.leading() else None

    def status(self) -> LeadershipStatus:
        active = self.leading()
        observed = self._elector.observed
        return LeadershipStatus(
            instance=self.instance,
            active=active,
            active_since=self._since if active else None,
            holder=observed.holder if observed else None,
            term=observed.term if observed else None,
            problem=self._problem,
        )

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "lease loop started",
            instance=self.instance,
            lease_duration=self.settings.duration,
            renew_deadline=self.settings.renew_deadline,
            retry_period=self.settings.retry_period,
        )
        while not stop.is_set():
            await self.attempt()
            if await sleep_unless_stopped(stop, self.settings.retry_period):
                break

    async def attempt(self) -> None:
        """Read the lease, and renew or take it when the rules say so."""
        async with self._lock:
            was_leading = self.leading()
            try:
                record = await self._store.read()
                now = self._monotonic()
                self._elector = lease.observe(self._elector, record, now)
                wanted = lease.wanted_write(self._elector, self.instance, now, self.settings)
                if wanted is not None:
                    await self._write(wanted)
                self._problem = None
            except LeaseStoreError as error:
                self._fail(str(error))
            self._note_change(was_leading)

    async def confirm(self) -> bool:
        """Renew the lease now; True only if this instance still holds it afterwards."""
        async with self._lock:
            if not self.leading():
                return False
            observed = self._elector.observed
            term = self._elector.term
            if observed is None or term is None:  # leading() implies both
                return False
            try:
                await self._write(Record(self.instance, term, observed.version))
            except LeaseStoreError as error:
                self._fail(str(error))
            self._note_change(was_leading=True)
            return self.leading()

    async def _write(self, record: Record) -> None:
        started = self._monotonic()
        try:
            version = await self._store.write(record)
        except LeaseStoreError:
            self._elector = lease.refused(self._elector)
            raise
        # The lease counts from when the write was sent: an answer that was slow to come
        # back must not lengthen it.
        self._elector = lease.written(record, version, started)

    def _fail(self, problem: str) -> None:
        if problem != self._problem:
            log.warning("lease attempt failed", instance=self.instance, problem=problem)
        self._problem = problem

    def _note_change(self, was_leading: bool) -> None:
        now_leading = self.leading()
        if now_leading and not was_leading:
            self._since = self._clock()
            log.info("leadership acquired", instance=self.instance, term=self._elector.term)
            self.acquired.set()
        elif was_leading and not now_leading:
            self._since = None
            log.warning("leadership lost", instance=self.instance, problem=self._problem)
