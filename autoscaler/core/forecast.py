"""An incremental Holt-Winters forecaster of a service's load. Pure: time is passed in.

Level and trend follow Holt's linear method; once ``SEASONAL_MEMORY`` whole seasons (two
days) have been seen, a multiplicative seasonal profile is added (Holt-Winters), each
slot's factor from its mean over those seasons: one season gives a slot one sample, and
an outage or a one-off spike in it would become a factor that amplifies the next day's
load many times. The profile is a factor per slot of the season, read and learned
between the centres of the two nearest slots, so that it has no steps: a jump of the
factor at a slot's edge would be read as a jump of the load. Every observation updates
the state in O(slots) at worst: nothing is ever refitted from the history. The
forecaster is an immutable value: ``observed`` returns the next one.

Smoothing is set by time constants in seconds rather than per-step factors, so the
forecaster behaves the same whatever the check interval. The constants are general
choices for web traffic, not fitted to any trace: the level follows within about a
minute, the trend over ten minutes, and a seasonal slot forgets over about two seasons.

The forecaster also scores itself: every forecast made for a future time is compared
with what was observed then. ``error`` (mean absolute error) decides whether the
forecasts can be trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TypeVar

LEVEL_TIME_CONSTANT = 60.0
"""Seconds: how fast the level follows the observations."""
TREND_TIME_CONSTANT = 600.0
"""Seconds: how fast the trend follows changes of the level."""
SEASON_SLOT = 300.0
"""Seconds of the season that share one seasonal factor."""
SEASONAL_MEMORY = 2.0
"""Seasons over which a seasonal factor forgets, and that its first value is the mean of."""
ERROR_TIME_CONSTANT = 1800.0
"""Seconds over which forecast errors are averaged."""
MIN_FACTOR = 0.05
"""Floor of a seasonal factor, so that a silent slot cannot divide by zero."""
MIN_SCORED = 5
"""Forecasts that must have been scored before the forecaster is trusted."""


def _smoothing(elapsed: float, time_constant: float) -> float:
    return 1.0 - math.exp(-elapsed / time_constant)


def slots_in(season: float) -> int:
    return max(1, round(season / SEASON_SLOT))


Number = TypeVar("Number", int, float)


def _with(values: tuple[Number, ...], index: int, value: Number) -> tuple[Number, ...]:
    return values[:index] + (value,) + values[index + 1 :]  # noqa: RUF005 - unpacking loses the type variable for mypy


@dataclass(frozen=True)
class Forecaster:
    horizon: float
    """Seconds ahead that forecasts are scored at."""
    season: float
    """Seconds in a season."""
    level: float | None = None
    """Deseasonalised load at ``last_at``; None before the first observation."""
    trend: float = 0.0
    """Change of the deseasonalised level per second."""
    seasonal: tuple[float, ...] | None = None
    """Factor of every slot of the season, once ``SEASONAL_MEMORY`` whole seasons have been seen."""
    error: float = 0.0
    scored: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    profile_sum: tuple[float, ...] = ()
    """Before the profile starts: the sum of the loads seen in every slot."""
    profile_count: tuple[int, ...] = ()
    pending: tuple[tuple[float, float], ...] = ()
    """(due time, forecast) of the forecasts not yet scored."""
    last_scored_at: float | None = None

    @classmethod
    def start(cls, horizon: float, season: float) -> Forecaster:
        slots = slots_in(season)
        return cls(horizon, season, profile_sum=(0.0,) * slots, profile_count=(0,) * slots)

    @cached_property
    def slots(self) -> int:
        return slots_in(self.season)

    @property
    def trusted(self) -> bool:
        return self.scored >= MIN_SCORED

    def _slot(self, at: float) -> int:
        return int((at % self.season) / self.season * self.slots) % self.slots

    def _nearest_slots(self, at: float) -> tuple[tuple[int, float], tuple[int, float]]:
        """The two slots whose centres are either side of ``at``, each with its weight there."""
        position = (at % self.season) / self.season * self.slots - 0.5
        before = math.floor(position)
        after_weight = position - before
        return (before % self.slots, 1.0 - after_weight), ((before + 1) % self.slots, after_weight)

    def factor_at(self, at: float) -> float:
        """The seasonal factor at ``at``: linear between the centres of the nearest slots."""
        if self.seasonal is None:
            return 1.0
        seasonal = self.seasonal
        return sum(seasonal[slot] * weight for slot, weight in self._nearest_slots(at))

    def forecast(self, at: float) -> float:
        """The load expected at time ``at`` (seconds since the epoch); 0 before any observation."""
        if self.level is None:
            return 0.0
        return max(0.0, (self.level + self.trend * (at - self.last_at)) * self.factor_at(at))

    def _scored(
        self, at: float, observed: float, censored: bool
    ) -> tuple[tuple[tuple[float, float], ...], float, int, float | None]:
        """(pending, error, scored, last_scored_at) after scoring the forecast due by ``at``."""
        index = 0
        while index < len(self.pending) and self.pending[index][0] <= at:
            index += 1
        pending = self.pending[index:]
        unchanged = (pending, self.error, self.scored, self.last_scored_at)
        if index == 0 or censored:
            return unchanged
        forecast = self.pending[index - 1][1]
        scale = max(observed, forecast)
        if scale <= 0:
            return unchanged
        elapsed = at - self.last_scored_at if self.last_scored_at is not None else ERROR_TIME_CONSTANT
        weight = _smoothing(max(elapsed, 1e-9), ERROR_TIME_CONSTANT) if self.scored else 1.0
        return (
            pending,
            self.error + weight * (abs(observed - forecast) / scale - self.error),
            self.scored + 1,
            at,
        )

    def with_season(self, at: float, level: float, trend: float) -> Forecaster | None:
        """The forecaster with its seasonal profile from the seasons seen; None if they were silent."""
        counts = self.profile_count
        means = [
            total / count if count else 0.0 for total, count in zip(self.profile_sum, counts, strict=True)
        ]
        seen = [mean for mean, count in zip(means, counts, strict=True) if count]
        overall = sum(seen) / len(seen) if seen else 0.0
        if overall <= 0:
            return None
        seasonal = tuple(
            max(MIN_FACTOR, (mean if count else overall) / overall)
            for mean, count in zip(means, counts, strict=True)
        )
        started = replace(self, seasonal=seasonal, profile_sum=(), profile_count=())
        factor = started.factor_at(at)
        return replace(started, level=level / factor, trend=trend / factor)

    def observed(self, at: float, value: float, censored: bool = False) -> Forecaster:
        """The forecaster after the load ``value`` was observed at time ``at``; times must increase.

        ``censored``: the value is only a lower bound (the service was saturated, so
        the demand beyond its capacity went unseen). It still moves the level, but no
        forecast is judged against it.
        """
        pending, error, scored, last_scored_at = self._scored(at, value, censored)
        level, trend, seasonal = value, self.trend, self.seasonal
        profile_sum, profile_count, first_at = self.profile_sum, self.profile_count, at
        if self.level is not None:
            elapsed = at - self.last_at
            if elapsed <= 0:
                return replace(
                    self,
                    pending=pending,
                    error=error,
                    scored=scored,
                    last_scored_at=last_scored_at,
                )
            first_at = self.first_at
            factor = self.factor_at(at)
            alpha = _smoothing(elapsed, LEVEL_TIME_CONSTANT)
            beta = _smoothing(elapsed, TREND_TIME_CONSTANT)
            level = alpha * (value / factor) + (1 - alpha) * (self.level + self.trend * elapsed)
            trend = beta * (level - self.level) / elapsed + (1 - beta) * self.trend
            if seasonal is not None:
                if level > 0:
                    # Each of the two slots the factor was read from learns in its share.
                    gamma = _smoothing(elapsed, SEASONAL_MEMORY * SEASON_SLOT)
                    for nearest, weight in self._nearest_slots(at):
                        updated = seasonal[nearest] + gamma * weight * (value / level - seasonal[nearest])
                        seasonal = _with(seasonal, nearest, max(MIN_FACTOR, updated))
            else:
                slot = self._slot(at)
                profile_sum = _with(profile_sum, slot, profile_sum[slot] + value)
                profile_count = _with(profile_count, slot, profile_count[slot] + 1)
        after = Forecaster(
            self.horizon,
            self.season,
            level,
            trend,
            seasonal,
            error,
            scored,
            first_at,
            at,
            profile_sum,
            profile_count,
            pending,
            last_scored_at,
        )
        if seasonal is None and self.level is not None and at - first_at >= SEASONAL_MEMORY * self.season:
            after = after.with_season(at, level, trend) or after
        due = at + self.horizon
        return replace(after, pending=(*pending, (due, after.forecast(due))))
