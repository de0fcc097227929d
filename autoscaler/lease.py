"""Which autoscaler instance acts: the rules of a lease, apart from where it is kept.

One record names the holder and its term. Every update of the record is conditional
on the version read, so two instances can never both write the same version. As in
Kubernetes' leader election, no instance trusts another's clock: a standby takes the
lease only after it has seen the record unchanged for ``duration`` seconds of its own
monotonic clock, and the holder stops acting once its last successful renewal is older
than ``renew_deadline``, which is shorter. The gap covers clocks that run at slightly
different rates and a renewal that was slow to be answered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class LeaseSettings:
    duration: float
    """Seconds a standby waits, from the last change of the record it saw, before taking the lease."""
    renew_deadline: float
    """Seconds the active instance goes on acting after its last successful renewal."""
    retry_period: float
    """Seconds between two attempts to take or renew the lease."""


@dataclass(frozen=True)
class Record:
    """The lease as kept: its holder ("" for none), its term, and the store's version of it."""

    holder: str
    term: int
    version: int


@dataclass(frozen=True)
class Elector:
    """What one instance knows of the lease."""

    observed: Record | None = None
    observed_at: float | None = None
    """Monotonic seconds when the record was last seen to change."""
    term: int | None = None
    """This instance's term while it holds the lease."""
    renewed_at: float | None = None
    """Monotonic seconds of this instance's last successful write of the record."""


def observe(elector: Elector, record: Record, now: float) -> Elector:
    """The elector after reading ``record`` at ``now``: a new version restarts the standby's wait."""
    if elector.observed is not None and elector.observed.version == record.version:
        return elector
    term = elector.term if record.holder and elector.term == record.term else None
    if elector.term is not None and term is None:
        return replace(elector, observed=record, observed_at=now, term=None, renewed_at=None)
    return replace(elector, observed=record, observed_at=now)


def wanted_write(elector: Elector, me: str, now: float, settings: LeaseSettings) -> Record | None:
    """The record to write now, conditional on the version observed; None to wait.

    The holder renews its own term. Anyone else takes the lease with the next term once
    the record has stood unchanged for the lease's duration; that includes an empty
    record, so that a record wiped by hand does not let a second instance in at once.
    """
    observed = elector.observed
    if observed is None or elector.observed_at is None:
        return None
    if elector.term is not None and observed.holder == me:
        return Record(me, elector.term, observed.version)
    if observed.holder == me or now - elector.observed_at >= settings.duration:
        # Held under this instance's name by an earlier run of it: that run is gone.
        return Record(me, observed.term + 1, observed.version)
    return None


def written(record: Record, new_version: int, now: float) -> Elector:
    """The elector after its conditional write of ``record``, sent at ``now``, succeeded."""
    kept = replace(record, version=new_version)
    return Elector(observed=kept, observed_at=now, term=record.term, renewed_at=now)


def refused(elector: Elector) -> Elector:
    """The elector after its write was refused: someone changed the record first."""
    return replace(elector, observed=None, observed_at=None, term=None, renewed_at=None)


def leading(elector: Elector, now: float, settings: LeaseSettings) -> bool:
    """Whether this instance may act: it holds a term renewed within the renew deadline."""
    return (
        elector.term is not None
        and elector.renewed_at is not None
        and now - elector.renewed_at < settings.renew_deadline
    )
