"""When the autoscaler saves the services' states, and which parts: the keeper beside ``state_store``.

At the end of a check, the keeper saves every service's decision part in one document
as soon as one of them changed in a way that matters for a restart (a change made or
seen, a new stabilization peak: ``autoscaler.core.keeping``), and otherwise once
``STATE_SAVE_INTERVAL`` has passed since the last save, if anything differs at all. The
forecasters that differ from what was saved and have not been saved for
``STATE_SAVE_INTERVAL`` go with it, the longest unsaved first, at most
``FORECASTERS_PER_SAVE``: a forecaster learns a little at every check, and losing a
minute of that to a kill costs little. The store's writes per check are then one
document and the removal of those it supersedes, whatever the number of services.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from autoscaler.core import Policy, ServiceState, persisted
from autoscaler.core.keeping import matters_for_restart
from autoscaler.state_store import DECISION, FORECASTER, ConfigStateStore, Parts

FORECASTERS_PER_SAVE = 40
"""Forecasters in one save: a day's forecaster is a few KiB compressed, so 40 stay well
within a document beside the decision parts of thousands of services."""


def _decision(state: ServiceState) -> ServiceState:
    return replace(state, forecaster=None)


@dataclass
class Saved:
    """What this instance knows was saved of each service, kept by the control loop between checks."""

    states: dict[str, ServiceState] = field(default_factory=dict)
    """Per service id: its state as the newest saved parts say."""
    forecasters_saved_at: dict[str, float] = field(default_factory=dict)
    last_save_at: float | None = None
    sequence: int = 0


class StateKeeper:
    """The saves to make, given what was saved; the store does the writing.

    Its methods block on the store's I/O: the daemon calls them in a worker thread, one
    at a time, and nothing else touches ``Saved`` meanwhile.
    """

    def __init__(self, store: ConfigStateStore, save_interval: float) -> None:
        self._store = store
        self._interval = save_interval

    def load(self, saved: Saved, now: float) -> tuple[dict[str, ServiceState], dict[str, str]]:
        """Every service's saved state, and what is unreadable (see ``ConfigStateStore.load``)."""
        states, problems = self._store.load()
        saved.states = dict(states)
        saved.forecasters_saved_at = dict.fromkeys(states, now)
        saved.last_save_at = now
        return states, problems

    def entries(
        self, saved: Saved, memory: dict[str, ServiceState], policies: dict[str, Policy], now: float
    ) -> dict[str, Parts]:
        """The parts to save now, per service id; empty when nothing is due.

        ``memory`` is every autoscaled service's state; ``policies`` the policies of those
        that have one at this check (a service whose labels are bad keeps its state as it is).
        """
        urgent = any(
            matters_for_restart(saved.states.get(service), state, policies[service], now)
            for service, state in memory.items()
            if service in policies
        )
        if saved.last_save_at is not None and now - saved.last_save_at < self._interval and not urgent:
            return {}
        due = sorted(
            (
                service
                for service, state in memory.items()
                if state.forecaster != (known.forecaster if (known := saved.states.get(service)) else None)
                and now - saved.forecasters_saved_at.get(service, -math.inf) >= self._interval
            ),
            key=lambda service: saved.forecasters_saved_at.get(service, -math.inf),
        )[:FORECASTERS_PER_SAVE]
        changed = any(
            _decision(state) != _decision(saved.states.get(service, ServiceState()))
            for service, state in memory.items()
        )
        if not (urgent or changed or due or set(saved.states) - set(memory)):
            return {}
        entries: dict[str, Parts] = {
            service: {DECISION: persisted.dump(_decision(state))} for service, state in memory.items()
        }
        for service in due:
            forecaster = memory[service].forecaster
            entries[service][FORECASTER] = (
                None if forecaster is None else persisted.dump_forecaster(forecaster)
            )
        return entries

    def save(
        self, saved: Saved, memory: dict[str, ServiceState], policies: dict[str, Policy], now: float
    ) -> None:
        """Save what is due, if anything is."""
        entries = self.entries(saved, memory, policies, now)
        if not entries:
            return
        saved.sequence = max(saved.sequence + 1, int(now * 1000))
        self._store.save(saved.sequence, entries, set(memory))
        states = {}
        for service, state in memory.items():
            before = saved.states.get(service)
            if FORECASTER in entries[service]:
                states[service] = state
                saved.forecasters_saved_at[service] = now
            else:
                states[service] = replace(state, forecaster=before.forecaster if before else None)
        saved.states = states
        saved.last_save_at = now
