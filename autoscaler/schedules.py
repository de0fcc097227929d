"""Scheduled capacity: replica bounds raised (or capped) for a window that a cron expression starts.

A schedule is KEDA's cron trigger in the autoscaler's terms: from each time its cron
expression names, in its time zone, for its duration, the service's minimum is at least the
schedule's, and its maximum is the schedule's when it gives one. The schedule's minimum also
counts as a recommendation, as KEDA's cron trigger counts as a metric for the HPA: outside
every window the policy's own bounds apply, and the way down from a window goes through the
stabilization window and the rate limits. Pure: the time is given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from autoscaler.core import Policy

_JUST_AFTER = timedelta(microseconds=1)
"""croniter's previous time is strictly before its start: start just after ``now`` to include it."""


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    """Five fields (minute hour day month weekday), or six with seconds last, as croniter reads them."""
    timezone: str
    """The IANA time zone the cron expression is read in, e.g. ``Europe/Berlin``."""
    duration: float
    """Seconds each window lasts from its start."""
    min_replicas: int
    max_replicas: int | None = None
    """None: the policy's maximum (raised to the minimum if it is below it)."""

    def window_at(self, now: float) -> tuple[float, float]:
        """The start and end (seconds since the epoch) of the latest window started at or before ``now``."""
        moment = datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        start = croniter(self.cron, moment + _JUST_AFTER).get_prev(datetime).timestamp()
        return start, start + self.duration

    def next_start(self, now: float) -> float:
        """When the next window after ``now`` starts (seconds since the epoch)."""
        moment = datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        return float(croniter(self.cron, moment).get_next(datetime).timestamp())


@dataclass(frozen=True)
class ScheduleStatus:
    """Which schedules hold a service's bounds now, and which starts next; for /status and the logs."""

    active: tuple[str, ...] = ()
    active_until: float | None = None
    """When the last of the active windows ends."""
    min_replicas: int | None = None
    """The minimum the active schedules set; None while none is active."""
    max_replicas: int | None = None
    next_schedule: str | None = None
    next_start: float | None = None
    changes_at: float | None = None
    """The first time this status may change: the next start, or the end of an active window."""
    trace_time: float | None = None
    """While a replay's clock applies (see replay_clock): the trace's time the schedules were
    read at. The other times are then the trace's too."""

    def as_dict(self) -> dict[str, object]:
        return {
            "active": list(self.active),
            "active_until": _iso(self.active_until),
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "next": self.next_schedule,
            "next_start": _iso(self.next_start),
            "trace_time": _iso(self.trace_time),
        }


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat()


def status_at(schedules: tuple[Schedule, ...], now: float) -> ScheduleStatus:
    """The schedules whose window holds ``now``, the bounds they set together, and the next start.

    Of several active schedules the highest minimum and the highest maximum given apply.
    """
    if not schedules:
        return ScheduleStatus()
    active = []
    for schedule in schedules:
        start, end = schedule.window_at(now)
        if start <= now < end:
            active.append((schedule, end))
    next_name, next_start = min(
        ((schedule.name, schedule.next_start(now)) for schedule in schedules), key=lambda named: named[1]
    )
    maxima = [schedule.max_replicas for schedule, _ in active if schedule.max_replicas is not None]
    return ScheduleStatus(
        active=tuple(schedule.name for schedule, _ in active),
        active_until=max((end for _, end in active), default=None),
        min_replicas=max((schedule.min_replicas for schedule, _ in active), default=None),
        max_replicas=max(maxima, default=None),
        next_schedule=next_name,
        next_start=next_start,
        changes_at=min([next_start, *(end for _, end in active)]),
    )


def scheduled(policy: Policy, status: ScheduleStatus) -> Policy:
    """The policy with the bounds of the active schedules; the policy itself while none is active."""
    if status.min_replicas is None:
        return policy
    minimum = max(policy.min_replicas, status.min_replicas)
    maximum = status.max_replicas if status.max_replicas is not None else policy.max_replicas
    return dataclasses.replace(
        policy, min_replicas=minimum, max_replicas=max(maximum, minimum), scheduled_replicas=minimum
    )
