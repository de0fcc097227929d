"""What each service did over the last hour, for the status page: a point per check, its last changes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from autoscaler.core import Decision

HOUR = 3600.0
MOST_POINTS = 720
"""Points kept per service at most: an hour of checks every 5 s."""
MOST_CHANGES = 10
"""Changes kept per service."""


@dataclass(frozen=True)
class Point:
    """One check of one service."""

    at: float
    """When it was decided, in seconds since the epoch."""
    desired: int
    ready: int | None
    metric: str | None
    """The deciding metric, if one decided."""
    value: float | None
    threshold: float | None


@dataclass(frozen=True)
class Change:
    at: float
    replicas_from: int
    replicas_to: int
    message: str


@dataclass
class Timeline:
    points: deque[Point] = field(default_factory=lambda: deque(maxlen=MOST_POINTS))
    changes: deque[Change] = field(default_factory=lambda: deque(maxlen=MOST_CHANGES))

    def add(self, decision: Decision, ready: int | None, now: float, changed: bool) -> None:
        """Note a decision; ``changed``: it was carried out and changed the replicas."""
        reason = decision.reason
        self.points.append(
            Point(now, decision.desired_replicas, ready, reason.metric, reason.value, reason.threshold)
        )
        while self.points and self.points[0].at <= now - HOUR:
            self.points.popleft()
        if changed:
            self.changes.append(
                Change(now, decision.current_replicas, decision.desired_replicas, reason.message)
            )

    def copy(self) -> Timeline:
        return Timeline(deque(self.points, maxlen=MOST_POINTS), deque(self.changes, maxlen=MOST_CHANGES))
