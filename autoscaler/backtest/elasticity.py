"""The SPEC Research Group's elasticity metrics (Herbst et al., BUNGEE), over equal time steps.

``demand`` and ``supply`` are replica counts per step. A step whose demand is 0 adds
nothing to the accuracy metrics (the share of a zero demand is undefined), but counts
in the timeshares: supply above a zero demand is over-provisioned time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

SPEEDUP_FLOOR = 0.01
"""A metric of 0 counts as this (percent) in the speedup's ratios, which would otherwise be infinite."""


@dataclass(frozen=True)
class Elasticity:
    under_accuracy: float
    """θ_U: mean share of the demand not supplied, in percent."""
    over_accuracy: float
    """θ_O: mean supply beyond the demand, in percent of the demand."""
    under_timeshare: float
    """τ_U: percent of the time with less supply than demand."""
    over_timeshare: float
    """τ_O: percent of the time with more supply than demand."""
    jitter_per_min: float
    """(Σ|Δsupply| − Σ|Δdemand|) per minute: positive when the supply moves more than needed."""
    instability: float
    """Percent of steps where supply and demand do not move the same way."""


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def elasticity(demand: Sequence[int], supply: Sequence[int], step_seconds: float) -> Elasticity:
    if len(demand) != len(supply) or not demand:
        raise ValueError("demand and supply need the same, non-zero, number of steps")
    steps = len(demand)
    under = over = under_time = over_time = 0.0
    for d, s in zip(demand, supply, strict=True):
        if d > 0:
            under += max(0, d - s) / d
            over += max(0, s - d) / d
        under_time += d > s
        over_time += s > d
    moves_supply = moves_demand = disagreements = 0
    for index in range(1, steps):
        change_demand = demand[index] - demand[index - 1]
        change_supply = supply[index] - supply[index - 1]
        moves_demand += abs(change_demand)
        moves_supply += abs(change_supply)
        disagreements += _sign(change_supply) != _sign(change_demand)
    minutes = steps * step_seconds / 60
    return Elasticity(
        under_accuracy=100 * under / steps,
        over_accuracy=100 * over / steps,
        under_timeshare=100 * under_time / steps,
        over_timeshare=100 * over_time / steps,
        jitter_per_min=(moves_supply - moves_demand) / minutes,
        instability=100 * disagreements / (steps - 1) if steps > 1 else 0.0,
    )


def elastic_speedup(result: Elasticity, static: Elasticity) -> float:
    """Geometric mean of static / result over θ_U, θ_O, τ_U and τ_O: above 1 beats the static allocation."""
    pairs = (
        (static.under_accuracy, result.under_accuracy),
        (static.over_accuracy, result.over_accuracy),
        (static.under_timeshare, result.under_timeshare),
        (static.over_timeshare, result.over_timeshare),
    )
    logs = [math.log(max(a, SPEEDUP_FLOOR) / max(b, SPEEDUP_FLOOR)) for a, b in pairs]
    return math.exp(sum(logs) / len(logs))
