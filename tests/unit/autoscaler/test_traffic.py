"""The entry point's counters: windows, merging and percentiles."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from autoscaler.entrypoint_page import parse
from autoscaler.traffic import Counters, Reading, last_step, merged, since
from nginx.config import DURATION_BUCKETS
from tests.unit.fakes import counted, exposition


def exact(durations: list[float], q: float) -> float:
    ordered = sorted(durations)
    return ordered[math.ceil(q * len(ordered)) - 1]


def lognormal(count: int, median: float, seed: int) -> list[float]:
    generator = random.Random(seed)  # noqa: S311 - reproducible samples, not secrets
    return [generator.lognormvariate(math.log(median), 0.6) for _ in range(count)]


class TestCounters:
    @pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
    def test_percentiles_from_the_buckets_are_close_to_the_exact_ones(self, q):
        """Percentiles read from the histogram's buckets are within 5 % of the exact ones."""
        durations = lognormal(20_000, 0.08, seed=1)
        assert counted(durations).quantile(q) == pytest.approx(exact(durations, q), rel=0.05)

    @pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
    def test_merged_instances_give_the_percentile_of_all_their_requests(self, q):
        """Adding instances' buckets gives the percentile of all their requests, not a mean of percentiles."""
        fast, slow = lognormal(5_000, 0.02, seed=2), lognormal(1_000, 0.5, seed=3)
        together = counted(fast).plus(counted(slow))
        assert together.cumulative == counted(fast + slow).cumulative
        assert together.quantile(q) == pytest.approx(exact(fast + slow, q), rel=0.05)

    def test_no_requests_have_no_percentile(self):
        """Without requests there is no percentile, rather than zero."""
        assert counted([]).quantile(0.95) is None

    def test_a_percentile_beyond_the_last_edge_is_that_edge(self):
        """Beyond the last bucket the percentile is the last edge: a floor, never a guess above it."""
        assert counted([500.0] * 10).quantile(0.95) == DURATION_BUCKETS[-1]

    def test_a_percentile_in_the_first_bucket_interpolates_from_zero(self):
        """Within the first bucket the percentile is interpolated from zero."""
        assert counted([0.0005] * 4).quantile(0.5) == pytest.approx(0.0005)

    def test_the_difference_of_two_readings_is_what_happened_between_them(self):
        """The difference of two readings counts only the requests between them."""
        before, after = counted([0.01] * 5, errors=1), counted([0.01] * 5 + [0.2] * 3, errors=3)
        window = after.minus(before)
        assert (window.requests, window.errors) == (3, 2)
        assert window.quantile(0.5) == pytest.approx(counted([0.2] * 3).quantile(0.5))

    def test_an_instance_that_restarted_counts_from_its_restart(self):
        """Counters that went down mean a restart: the newer reading counts from zero."""
        before, after = counted([0.01] * 50), counted([0.2] * 3)
        assert after.minus(before) == after


def reading(**services: list[float]) -> Reading:
    return Reading({name: counted(durations) for name, durations in services.items()})


class TestWindows:
    def test_the_window_starts_at_the_newest_reading_old_enough(self):
        """A window starts at the newest reading at least a window old."""
        history = [
            (0.0, reading(web=[0.1] * 10)),
            (10.0, reading(web=[0.1] * 20)),
            (20.0, reading(web=[0.1] * 26)),
            (30.0, reading(web=[0.1] * 30)),
        ]
        counters, seconds = since(history, now=30.0, seconds=20.0)["web"]
        assert (counters.requests, seconds) == (10, 20.0)  # from the reading at 10 s

    def test_a_young_instance_counts_over_what_it_has(self):
        """An instance younger than the window counts over the time it has."""
        history = [(25.0, reading(web=[0.1] * 10)), (30.0, reading(web=[0.1] * 15))]
        counters, seconds = since(history, now=30.0, seconds=20.0)["web"]
        assert (counters.requests, seconds) == (5, 5.0)

    def test_one_reading_is_no_window(self):
        """One reading alone gives no window."""
        assert since([(30.0, reading(web=[0.1]))], now=30.0, seconds=20.0) == {}

    def test_a_service_new_within_the_window_counts_from_zero(self):
        """A service first counted within the window counts from zero."""
        history = [(0.0, reading(web=[0.1])), (20.0, reading(web=[0.1], api=[0.2] * 4))]
        counters, _ = since(history, now=20.0, seconds=20.0)["api"]
        assert counters.requests == 4

    def test_instances_add_up_their_requests_and_rates(self):
        """The instances' requests and rates add up, each rate over its own span."""
        first = {"web": (counted([0.01] * 100), 20.0)}
        second = {"web": (counted([1.0] * 100), 10.0)}
        windows, unmerged = merged([first, second])
        assert windows["web"].counters.requests == 200
        assert windows["web"].rate == pytest.approx(100 / 20 + 100 / 10)
        assert windows["web"].latency_ms(0.95) == pytest.approx(
            1000 * counted([0.01] * 100 + [1.0] * 100).quantile(0.95)
        )
        assert unmerged == set()

    def test_an_instance_with_other_buckets_is_left_out_and_named(self):
        """An instance whose buckets differ cannot be added: it is left out and named."""
        other = Counters((0.5, math.inf), (1.0, 1.0), 1.0, 0.0)
        windows, unmerged = merged([{"web": (counted([0.01]), 10.0)}, {"web": (other, 10.0)}])
        assert windows["web"].counters.requests == 1
        assert unmerged == {"web"}

    def test_the_error_percent_is_of_all_requests(self):
        """The error percent is of all requests in the window; none without requests."""
        windows, _ = merged([{"web": (counted([0.01] * 40, errors=2), 10.0)}])
        assert windows["web"].error_percent == pytest.approx(5.0)
        assert merged([{"web": (counted([]), 10.0)}])[0]["web"].error_percent is None


def busy(seconds: float | None, requests: int = 10) -> Counters:
    """Counters of ``requests`` fast requests and ``seconds`` request-seconds in flight."""
    return replace(counted([0.01] * requests), in_flight_seconds=seconds)


class TestConcurrency:
    def test_the_request_seconds_in_flight_are_read(self):
        """The request-seconds in flight are read from the page."""
        reading = parse(exposition("web", busy(42.5), {"200": 10}))
        assert reading.services["web"].in_flight_seconds == 42.5

    def test_an_entry_point_that_does_not_count_them_has_none(self):
        """An entry point that does not count them gives none, not zero."""
        reading = parse(exposition("web", busy(None), {"200": 10}))
        assert reading.services["web"].in_flight_seconds is None

    @pytest.mark.parametrize("value", ["NaN", "+Inf", "-3"])
    def test_a_value_that_is_not_a_count_leaves_the_service_out(self, value):
        """A value that is not a finite count leaves the service out and names it."""
        text = exposition("web", busy(None), {"200": 10})
        text += "# TYPE entrypoint_requests_in_flight_seconds_total counter\n"
        text += f'entrypoint_requests_in_flight_seconds_total{{service="web"}} {value}\n'
        reading = parse(text)
        assert "web" not in reading.services
        assert "web" in reading.malformed

    def test_concurrency_is_the_request_seconds_over_the_window_added_up_over_instances(self):
        """Little's law: 30 request-seconds in 10 s is 3 in flight on average; two instances add."""
        first = [(0.0, Reading({"web": busy(100.0)})), (10.0, Reading({"web": busy(130.0, 20)}))]
        second = [(0.0, Reading({"web": busy(0.0)})), (5.0, Reading({"web": busy(5.0, 15)}))]
        totals, _ = merged([since(first, 10.0, 10), since(second, 10.0, 10)])
        assert totals["web"].concurrency == pytest.approx(3 + 1)

    def test_an_instance_without_the_counter_makes_it_unknown(self):
        """If one instance lacks the counter, the service's concurrency is unknown rather than too low."""
        old = [(0.0, Reading({"web": busy(None)})), (10.0, Reading({"web": busy(None, 20)}))]
        new = [(0.0, Reading({"web": busy(0.0)})), (10.0, Reading({"web": busy(20.0, 20)}))]
        totals, _ = merged([since(new, 10.0, 10), since(old, 10.0, 10)])
        assert totals["web"].concurrency is None

    def test_the_last_step_is_the_two_newest_readings_if_they_are_close(self):
        """The surge window is the two newest readings, when they are close enough together."""
        history = [
            (0.0, Reading({"web": busy(0.0)})),
            (24.0, Reading({"web": busy(24.0, 20)})),
            (30.0, Reading({"web": busy(84.0, 30)})),
        ]
        ((counters, span),) = last_step(history, 12).values()
        assert (counters.in_flight_seconds, span) == (60.0, 6.0)
        assert last_step(history[:2], 12) == {}, "a step longer than allowed is no surge window"
        assert last_step(history[:1], 12) == {}
