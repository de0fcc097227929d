"""The three load profiles, what each expects of the autoscaler, and whether it held.

The expectations are for the demo API of this project's stack on a 2-core machine, as
the README's calibration section describes: each user asks for 20 ms of CPU and thinks
about two seconds between requests, so the demand grows with the users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PROFILE_PATH = "/api/work?ms=20"
PROFILE_THINK_TIME = 2.0
"""Seconds a profile's user waits between an answer and its next request, on average."""


@dataclass(frozen=True)
class Profile:
    users: int
    duration: float
    """Seconds of load."""
    ramp_up: float
    """Seconds over which the users start, one after another."""
    most_replicas: tuple[int, int]
    """The range the highest replica count of the run is expected in."""
    think_time: float = PROFILE_THINK_TIME
    path: str = PROFILE_PATH


PROFILES: dict[str, Profile] = {
    "light": Profile(users=25, duration=120, ramp_up=10, most_replicas=(2, 2)),
    "medium": Profile(users=50, duration=180, ramp_up=20, most_replicas=(3, 5)),
    "heavy": Profile(users=100, duration=300, ramp_up=30, most_replicas=(8, 10)),
}


@dataclass(frozen=True)
class ReplicaSample:
    elapsed: float
    """Seconds from the start of the run."""
    desired: int
    """The replicas the autoscaler set."""
    ready: int | None
    """The replicas running and healthy, when the autoscaler has measured them."""


@dataclass(frozen=True)
class Scaling:
    most: int | None
    """The highest replica count the autoscaler set during the run."""
    reached_most_at: float | None
    """Seconds from the start until it first set that count."""
    back_at: float | None
    """Seconds from the end of the load until it set ``floor`` again; None if it did not."""


def scaling_of(samples: Sequence[ReplicaSample], load_end: float, floor: int) -> Scaling:
    """The highest count, when it was reached, and when the count came back to ``floor``."""
    if not samples:
        return Scaling(None, None, None)
    most = max(sample.desired for sample in samples)
    reached = next(sample.elapsed for sample in samples if sample.desired == most)
    back = next(
        (sample.elapsed for sample in samples if sample.elapsed >= load_end and sample.desired <= floor),
        None,
    )
    return Scaling(most, reached, None if back is None else back - load_end)


def unmet(profile: Profile, scaling: Scaling, waited_for_scale_down: bool) -> list[str]:
    """The profile's expectations the run did not meet, in words; empty when all held."""
    low, high = profile.most_replicas
    expected = f"{low}" if low == high else f"{low}-{high}"
    if scaling.most is None:
        return ["the autoscaler's /status never named the service's replicas"]
    failures = []
    if not low <= scaling.most <= high:
        failures.append(f"the highest replica count was {scaling.most}, expected {expected}")
    if waited_for_scale_down and scaling.back_at is None:
        failures.append("the replicas did not come back down before the wait ended")
    return failures
