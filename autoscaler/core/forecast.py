"""An incremental Holt-Winters forecaster of a service's load. Pure: time is passed in.

Level and trend follow Holt's linear method; once a whole season (a day) has been seen,
a multiplicative seasonal profile is added (Holt-Winters). Every observation updates
the state in O(1): nothing is ever refitted from the history.

Smoothing is set by time constants in seconds rather than per-step factors, so the
forecaster behaves the same whatever the check interval. The constants are general
choices for web traffic, not fitted to any trace: the level follows within about a
minute, the trend over ten minutes, and a seasonal slot forgets over about two seasons.

The forecaster also scores itself: every forecast made for a future time is compared
with what was observed then. ``error`` (mean absolute error) decides whether the
forecasts can be trusted; ``under`` (mean shortfall) is the headroom to provision.
"""

from __future__ import annotations

import math
from collections import deque

LEVEL_TIME_CONSTANT = 60.0
"""Seconds: how fast the level follows the observations."""
TREND_TIME_CONSTANT = 600.0
"""Seconds: how fast the trend follows changes of the level."""
SEASON_SLOT = 300.0
"""Seconds of the season that share one seasonal factor."""
SEASONAL_MEMORY = 2.0
"""Seasons over which a seasonal factor forgets."""
ERROR_TIME_CONSTANT = 1800.0
"""Seconds over which forecast errors are averaged."""
MIN_FACTOR = 0.05
"""Floor of a seasonal factor, so that a silent slot cannot divide by zero."""
MIN_SCORED = 5
"""Forecasts that must have been scored before the forecaster is trusted."""


def _smoothing(elapsed: float, time_constant: float) -> float:
    return 1.0 - math.exp(-elapsed / time_constant)


class Forecaster:
    def __init__(self, horizon: float, season: float) -> None:
        """``horizon``: seconds ahead that forecasts are scored at; ``season``: seconds in a season."""
        self.horizon = horizon
        self.season = season
        self.slots = max(1, round(season / SEASON_SLOT))
        self.level: float | None = None
        self.trend = 0.0
        """Change of the deseasonalised level per second."""
        self.seasonal: list[float] | None = None
        self.error = 0.0
        self.under = 0.0
        self.scored = 0
        self._first_at = 0.0
        self._last_at = 0.0
        self._profile_sum = [0.0] * self.slots
        self._profile_count = [0] * self.slots
        self._pending: deque[tuple[float, float]] = deque()
        self._last_scored_at: float | None = None

    @property
    def trusted(self) -> bool:
        return self.scored >= MIN_SCORED

    def _slot(self, at: float) -> int:
        return int((at % self.season) / self.season * self.slots) % self.slots

    def _factor(self, at: float) -> float:
        return 1.0 if self.seasonal is None else self.seasonal[self._slot(at)]

    def forecast(self, at: float) -> float:
        """The load expected at time ``at`` (seconds since the epoch); 0 before any observation."""
        if self.level is None:
            return 0.0
        return max(0.0, (self.level + self.trend * (at - self._last_at)) * self._factor(at))

    def _score(self, at: float, observed: float, censored: bool) -> None:
        due = None
        while self._pending and self._pending[0][0] <= at:
            due = self._pending.popleft()
        if due is None or censored:
            return
        forecast = due[1]
        scale = max(observed, forecast)
        if scale <= 0:
            return
        elapsed = at - self._last_scored_at if self._last_scored_at is not None else ERROR_TIME_CONSTANT
        weight = _smoothing(max(elapsed, 1e-9), ERROR_TIME_CONSTANT) if self.scored else 1.0
        self.error += weight * (abs(observed - forecast) / scale - self.error)
        self.under += weight * (max(0.0, observed - forecast) / scale - self.under)
        self.scored += 1
        self._last_scored_at = at

    def _start_season(self, at: float) -> None:
        means = [
            total / count if count else 0.0
            for total, count in zip(self._profile_sum, self._profile_count, strict=True)
        ]
        seen = [mean for mean, count in zip(means, self._profile_count, strict=True) if count]
        overall = sum(seen) / len(seen) if seen else 0.0
        if overall <= 0:
            return
        self.seasonal = [
            max(MIN_FACTOR, (mean if count else overall) / overall)
            for mean, count in zip(means, self._profile_count, strict=True)
        ]
        factor = self._factor(at)
        assert self.level is not None  # noqa: S101 - called only after the first observation
        self.level /= factor
        self.trend /= factor

    def observe(self, at: float, value: float, censored: bool = False) -> None:
        """Take the load observed at time ``at``; times must increase.

        ``censored``: the value is only a lower bound (the service was saturated, so
        the demand beyond its capacity went unseen). It still moves the level, but no
        forecast is judged against it.
        """
        self._score(at, value, censored)
        if self.level is None:
            self.level, self._first_at, self._last_at = value, at, at
        else:
            elapsed = at - self._last_at
            if elapsed <= 0:
                return
            factor = self._factor(at)
            previous = self.level
            alpha = _smoothing(elapsed, LEVEL_TIME_CONSTANT)
            beta = _smoothing(elapsed, TREND_TIME_CONSTANT)
            self.level = alpha * (value / factor) + (1 - alpha) * (previous + self.trend * elapsed)
            self.trend = beta * (self.level - previous) / elapsed + (1 - beta) * self.trend
            slot = self._slot(at)
            if self.seasonal is not None:
                if self.level > 0:
                    gamma = _smoothing(elapsed, SEASONAL_MEMORY * SEASON_SLOT)
                    updated = gamma * (value / self.level) + (1 - gamma) * self.seasonal[slot]
                    self.seasonal[slot] = max(MIN_FACTOR, updated)
            else:
                self._profile_sum[slot] += value
                self._profile_count[slot] += 1
                if at - self._first_at >= self.season:
                    self._start_season(at)
            self._last_at = at
        self._pending.append((at + self.horizon, self.forecast(at + self.horizon)))
