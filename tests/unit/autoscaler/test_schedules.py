"""Scheduled capacity: when a schedule's window holds, and the bounds it sets."""

from datetime import UTC, datetime

from autoscaler.schedules import Schedule, ScheduleStatus, scheduled, status_at
from tests.unit.autoscaler.core.policies import OPEN

PEAK = Schedule("weekday-peak", "0 9 * * 1-5", "Europe/Berlin", 7200, 6, 12)


def at(text):
    """Seconds since the epoch of a UTC time written ``YYYY-MM-DD HH:MM``."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()


class TestSchedule:
    def test_a_window_starts_at_its_local_time_and_lasts_its_duration(self):
        """9:00 in Berlin is 8:00 UTC in winter; the window holds from its start up to, not at, its end."""
        start, end = PEAK.window_at(at("2026-12-07 08:30"))  # a Monday
        assert (start, end) == (at("2026-12-07 08:00"), at("2026-12-07 10:00"))
        assert PEAK.window_at(at("2026-12-07 08:00"))[0] == at("2026-12-07 08:00")
        assert PEAK.window_at(at("2026-12-07 07:59"))[0] == at("2026-12-04 08:00")  # the Friday before

    def test_the_local_time_follows_daylight_saving(self):
        """After the clocks go forward, 9:00 in Berlin is 7:00 UTC."""
        assert PEAK.window_at(at("2026-03-30 07:30"))[0] == at("2026-03-30 07:00")

    def test_the_next_start_skips_the_days_the_expression_leaves_out(self):
        """From Friday noon the next weekday window starts on Monday."""
        assert PEAK.next_start(at("2026-12-04 12:00")) == at("2026-12-07 08:00")


class TestStatusAt:
    NIGHT = Schedule("batch", "0 22 * * *", "UTC", 4 * 3600, 4)

    def test_outside_every_window_only_the_next_start_is_known(self):
        """Between windows no bound is set, and the earliest next start is named."""
        status = status_at((PEAK, self.NIGHT), at("2026-12-07 12:00"))
        assert (status.active, status.min_replicas, status.max_replicas) == ((), None, None)
        assert (status.next_schedule, status.next_start) == ("batch", at("2026-12-07 22:00"))

    def test_of_several_active_windows_the_highest_bounds_apply(self):
        """Two windows at once: the highest minimum, the highest maximum given, the later end."""
        early = Schedule("early", "30 7 * * *", "UTC", 3 * 3600, 8)
        status = status_at((PEAK, early), at("2026-12-07 09:00"))
        assert status.active == ("weekday-peak", "early")
        assert (status.min_replicas, status.max_replicas) == (8, 12)
        assert status.active_until == at("2026-12-07 10:30")

    def test_no_schedules_no_status(self):
        """A service without schedules has nothing to show."""
        assert status_at((), at("2026-12-07 09:00")) == ScheduleStatus()


class TestScheduled:
    def test_an_active_schedule_raises_the_minimum_and_sets_the_maximum(self):
        """The policy's 1 to 50 becomes the schedule's 6 to 12 while the window holds."""
        policy = scheduled(OPEN, ScheduleStatus(active=("peak",), min_replicas=6, max_replicas=12))
        assert (policy.min_replicas, policy.max_replicas) == (6, 12)

    def test_a_schedule_never_lowers_the_minimum_nor_a_maximum_below_it(self):
        """A schedule's smaller minimum leaves the policy's; a maximum below the minimum is raised to it."""
        policy = scheduled(OPEN, ScheduleStatus(active=("night",), min_replicas=0, max_replicas=0))
        assert (policy.min_replicas, policy.max_replicas) == (OPEN.min_replicas, OPEN.min_replicas)

    def test_without_an_active_schedule_the_policy_is_its_own(self):
        """Outside every window the policy is unchanged."""
        assert scheduled(OPEN, ScheduleStatus(next_schedule="peak")) is OPEN
