"""Problems with what comes from outside, each logged once when it appears and once when it clears.

A bad label, a malformed collector answer, an unreadable cgroup file or a routing table
nginx refuses is seen again at every round of a daemon's loop; logging it every time
would bury everything else. Each round reports the whole set of problems of a kind;
what is new or changed is logged and counted, what has gone is logged as cleared.
The three daemons keep their problems in one of these.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger("problems")


@dataclass
class Problems:
    """The active problems by kind and subject.

    Each daemon names its kinds where it reports them; the autoscaler's are listed
    in the README, where ``/status`` is.
    """

    active: dict[tuple[str, str], str] = field(default_factory=dict)
    """(kind, subject) → problem."""
    appeared: Counter[str] = field(default_factory=Counter)
    """Per kind: how many problems have appeared (or changed)."""

    def report(self, kind: str, found: Mapping[str, str], **context: str) -> None:
        """The problems of ``kind`` now, by subject: all of them, replacing the last report.

        ``context`` goes into the log event of each new problem (what is done about it, say).
        """
        for gone in set(self.of_kind(kind)) - set(found):
            self.clear(kind, gone)
        for subject, problem in found.items():
            self.set(kind, subject, problem, **context)

    def set(self, kind: str, subject: str, problem: str, **context: str) -> None:
        """One problem of ``kind`` with ``subject``; logged and counted only when new or changed."""
        if self.active.get((kind, subject)) == problem:
            return
        self.active[(kind, subject)] = problem
        self.appeared[kind] += 1
        log.error("input problem", kind=kind, subject=subject, problem=problem, **context)

    def clear(self, kind: str, subject: str) -> None:
        if self.active.pop((kind, subject), None) is not None:
            log.info("input problem cleared", kind=kind, subject=subject)

    def copy(self) -> Problems:
        return Problems(dict(self.active), Counter(self.appeared))

    def of(self, subject: str) -> dict[str, str]:
        """Every active problem with ``subject``, by kind."""
        return {kind: problem for (kind, about), problem in self.active.items() if about == subject}

    def of_kind(self, kind: str) -> dict[str, str]:
        """Every active problem of ``kind``, by subject."""
        return {about: problem for (which, about), problem in self.active.items() if which == kind}

    def listing(self) -> list[dict[str, str]]:
        return [
            {"kind": kind, "subject": subject, "problem": problem}
            for (kind, subject), problem in sorted(self.active.items())
        ]
