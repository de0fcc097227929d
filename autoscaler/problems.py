"""Problems with what comes from outside, each logged once when it appears and once when it clears.

A bad label, a malformed collector answer or an unreadable saved state is seen again
at every check; logging it every time would bury everything else. Each check
reports the whole set of problems of a kind; what is new or changed is logged and
counted, what has gone is logged as cleared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger("autoscaler")


@dataclass
class Problems:
    """The active problems by kind and subject.

    Kinds in use: ``collector`` (an answer), ``collector_entry`` (one entry of it),
    ``entrypoint`` (an entry point's counters), ``entrypoint_too_large`` (a page of counters
    over the bound, not read), ``entrypoint_entry`` (one service in them),
    ``docker`` (the API), ``service_entry`` (one service in its answer), ``label``, ``route``
    (a service's route labels, or a malformed entry of the routed services),
    ``decision`` (an unexpected error while deciding), ``scale`` (a refused update),
    ``state`` (the saved state).
    """

    active: dict[tuple[str, str], str] = field(default_factory=dict)
    """(kind, subject) → problem."""
    appeared: Counter[str] = field(default_factory=Counter)
    """Per kind: how many problems have appeared (or changed)."""

    def report(self, kind: str, found: Mapping[str, str]) -> None:
        """The problems of ``kind`` now, by subject: all of them, replacing the last report."""
        for gone in set(self.of_kind(kind)) - set(found):
            self.clear(kind, gone)
        for subject, problem in found.items():
            self.set(kind, subject, problem)

    def set(self, kind: str, subject: str, problem: str) -> None:
        """One problem of ``kind`` with ``subject``; logged and counted only when new or changed."""
        if self.active.get((kind, subject)) == problem:
            return
        self.active[(kind, subject)] = problem
        self.appeared[kind] += 1
        log.error("input problem", kind=kind, subject=subject, problem=problem)

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
