"""The forecaster's seasonal profile: read and learned between slot centres."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoscaler.core.forecast import SEASON_SLOT, Forecaster

SEASON = 12 * SEASON_SLOT
"""A short season of 12 slots keeps the sequences short; the rules are the same for a day."""
STEP = 30.0


def with_profile(factors: tuple[float, ...]) -> Forecaster:
    return replace(Forecaster.start(horizon=90.0, season=SEASON), seasonal=factors, level=1.0)


def fed(loads: list[float]) -> Forecaster:
    """The forecaster after ``loads``, one a step from the season's start."""
    forecaster = Forecaster.start(horizon=90.0, season=SEASON)
    for index, load in enumerate(loads):
        forecaster = forecaster.observed(index * STEP, load)
    return forecaster


class TestSeasonalFactors:
    def test_a_slots_centre_reads_its_own_factor(self):
        """At the centre of a slot the factor is that slot's."""
        forecaster = with_profile((1.0, 3.0) + (1.0,) * 10)
        assert forecaster.factor_at(1.5 * SEASON_SLOT) == pytest.approx(3.0)

    def test_between_two_centres_the_factor_is_linear(self):
        """At a slot's edge, halfway between two centres, the factor is the mean of the two."""
        forecaster = with_profile((1.0, 3.0) + (1.0,) * 10)
        assert forecaster.factor_at(SEASON_SLOT) == pytest.approx(2.0)
        assert forecaster.factor_at(1.25 * SEASON_SLOT) == pytest.approx(2.5)

    def test_the_profile_wraps_around_the_season(self):
        """Past the last slot's centre the factor goes towards the first slot's."""
        forecaster = with_profile((3.0,) + (1.0,) * 11)
        assert forecaster.factor_at(SEASON) == pytest.approx(2.0)
        just_after = forecaster.factor_at(SEASON + 1.0)
        assert forecaster.factor_at(SEASON - 1.0) == pytest.approx(just_after, abs=0.02)

    def test_an_observation_teaches_both_nearest_slots(self):
        """An observation between two centres moves both slots' factors, the nearer one more."""
        before = with_profile((1.0,) * 12)
        after = before.observed(1.25 * SEASON_SLOT, 3.0)
        moved = [factor - 1.0 for factor in after.seasonal]
        assert moved[1] > moved[0] > 0
        assert all(change == 0 for change in moved[2:])


class TestSeasonalProfileOverTime:
    PER_SLOT = int(SEASON_SLOT / STEP)

    def season_with_outage(self) -> list[float]:
        """A season of load 1 with its fourth slot nearly silent, as in an outage."""
        return [1.0] * (3 * self.PER_SLOT) + [0.02] * self.PER_SLOT + [1.0] * (8 * self.PER_SLOT)

    def test_the_profile_starts_after_two_seasons(self):
        """No seasonal profile before two whole seasons have been seen; one at the first step after."""
        steps = int(2 * SEASON / STEP)
        assert fed([1.0] * steps).seasonal is None
        assert fed([1.0] * (steps + 1)).seasonal is not None

    def test_an_outage_in_one_of_the_two_seasons_is_halved(self):
        """A slot silent in one of the first two seasons starts near half the others' factor, not
        near zero."""
        profile = fed(self.season_with_outage() + [1.0] * (12 * self.PER_SLOT + 1)).seasonal
        assert profile is not None
        assert 0.4 < profile[3] / profile[0] < 0.6

    def test_an_outage_forecasts_no_jump_at_the_slots_edges_the_next_season(self):
        """After an outage in the first season and a steady load of 1 since, the third season's
        forecasts stay within twice the load, at the outage slot's edges too."""
        first_two = self.season_with_outage() + [1.0] * (12 * self.PER_SLOT)
        forecaster = fed(first_two)
        worst = 0.0
        for index in range(len(first_two), len(first_two) + 12 * self.PER_SLOT):
            at = index * STEP
            forecaster = forecaster.observed(at, 1.0)
            worst = max(worst, forecaster.forecast(at + 90.0))
        # A profile from the first season alone, read in steps, forecasts about 20 times the
        # load here (1 / 0.05, the factor's floor).
        assert worst < 2.0, worst
