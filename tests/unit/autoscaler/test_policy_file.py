"""The policy file: its entries, how they apply to a service, and every problem named by its line."""

import textwrap

import pytest

from autoscaler.policy_file import PolicyFileError, check_settings, parse_policy_file
from autoscaler.schedules import Schedule

FILE = textwrap.dedent(
    """\
    services:
      - selector: {team: shop}
        scaling_algorithm: target
        min_replicas: 2
      - name: shop_web
        min_replicas: 3
        paused: no
        schedules:
          - name: weekday-peak
            cron: "0 9 * * 1-5"
            timezone: Europe/Berlin
            duration: 2h
            min_replicas: 6
            max_replicas: 12
    """
)


SCHEDULE = "services:\n  - name: web\n    schedules:\n      - "
"""A file with one entry, up to its first schedule."""


def problem_of(text):
    with pytest.raises(PolicyFileError) as raised:
        parse_policy_file(textwrap.dedent(text))
    return raised.value


class TestPolicyFile:
    def test_entries_hold_settings_as_labels_would_and_schedules(self):
        """Settings read as the labels' text (a YAML boolean as false); a schedule keeps its fields."""
        by_selector, by_name = parse_policy_file(FILE).entries
        assert by_selector.selector == {"team": "shop"}
        assert by_selector.settings == {"SCALING_ALGORITHM": "target", "MIN_REPLICAS": "2"}
        assert by_name.settings == {"MIN_REPLICAS": "3", "PAUSED": "false"}
        assert by_name.setting_lines == {"MIN_REPLICAS": 6, "PAUSED": 7}
        assert by_name.schedules == (Schedule("weekday-peak", "0 9 * * 1-5", "Europe/Berlin", 7200, 6, 12),)

    def test_a_service_gets_every_matching_entry_in_order_and_their_schedules(self):
        """A later entry's setting overrides an earlier one's; an entry that does not match adds nothing."""
        policy_file = parse_policy_file(FILE)
        applied = policy_file.for_service("shop_web", {"team": "shop"})
        assert applied.settings == {"SCALING_ALGORITHM": "target", "MIN_REPLICAS": "3", "PAUSED": "false"}
        assert [schedule.name for schedule in applied.schedules] == ["weekday-peak"]
        assert policy_file.for_service("shop_api", {"team": "shop"}).settings == {
            "SCALING_ALGORITHM": "target",
            "MIN_REPLICAS": "2",
        }
        assert policy_file.for_service("shop_api", {"team": "ads"}).settings == {}

    @pytest.mark.parametrize("text", ["", "# nothing yet\n", "services: []\n"])
    def test_an_empty_file_has_no_entries(self, text):
        """A file with no entries changes nothing."""
        assert parse_policy_file(text).entries == ()

    @pytest.mark.parametrize(
        ("duration", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("1.5h", 5400), ("1d", 86400)]
    )
    def test_durations_in_seconds_or_with_a_unit(self, duration, seconds):
        """A duration is seconds, or a number with s, m, h or d."""
        text = SCHEDULE + f"{{cron: '0 9 * * *', duration: {duration}, min_replicas: 2}}\n"
        (schedule,) = parse_policy_file(text).entries[0].schedules
        assert (schedule.duration, schedule.timezone, schedule.max_replicas) == (seconds, "UTC", None)


class TestPolicyFileErrors:
    @pytest.mark.parametrize(
        ("text", "line", "words"),
        [
            ("services:\n  - name: web\n    min_replicas: [3\n", 4, "not YAML"),
            ("services: {web: 1}\n", 1, "must be a list"),
            ("service:\n  - name: web\n", 1, "unknown key service"),
            ("services:\n  - min_replicas: 3\n", 2, "needs a name or a selector"),
            ("services:\n  - name: web\n    min_replicas: 3\n    min_replicas: 4\n", 4, "given twice"),
            ("services:\n  - name: web\n    min_replica: 3\n", 3, "unknown setting min_replica"),
            ("services:\n  - name: web\n    min_replicas:\n", 3, "single value"),
            ("services:\n  - name: 'web; rm'\n", 2, "not a service name"),
            ("services:\n  - selector: {}\n", 2, "names no label"),
            (
                SCHEDULE + "{cron: '0 9 * *', duration: 60, min_replicas: 2}\n",
                4,
                "not a cron",
            ),
            (
                SCHEDULE + "{cron: '0 0 31 2 *', duration: 60, min_replicas: 2}\n",
                4,
                "no time",
            ),
            (
                SCHEDULE + "{cron: '@daily', duration: 60}\n",
                4,
                "needs min_replicas",
            ),
            (
                SCHEDULE + "{cron: '@daily', duration: 8d, min_replicas: 2}\n",
                4,
                "up to 7d",
            ),
            (
                SCHEDULE + "{cron: '@daily', duration: soon, min_replicas: 2}\n",
                4,
                "duration",
            ),
            (
                SCHEDULE + "{cron: '@daily', duration: 60, min_replicas: -1}\n",
                4,
                "whole number",
            ),
            (
                SCHEDULE + "{cron: '@daily', duration: 60, min_replicas: 5,\n         max_replicas: 4}\n",
                5,
                "below min_replicas",
            ),
            (
                SCHEDULE + "{cron: '@daily', duration: 60, min_replicas: 2, timezone: Mars/Base}\n",
                4,
                "time zone",
            ),
            (
                SCHEDULE + "{cron: '@daily', duration: 60, min_replicas: 2, every: day}\n",
                4,
                "unknown schedule key",
            ),
            ("base: &base {min_replicas: 3}\nservices:\n  - <<: *base\n", 3, "aliases"),
        ],
    )
    def test_each_problem_names_its_line(self, text, line, words):
        """A file that cannot be used says where and why."""
        error = problem_of(text)
        assert error.line == line
        assert words in error.problem

    def test_settings_are_held_to_their_variables_rules(self):
        """A value the label would refuse is refused in the file, at the setting's line, by its name."""
        policy_file = parse_policy_file(
            "services:\n  - name: web\n    max_replicas: 3\n    min_replicas: 5\n"
        )
        with pytest.raises(PolicyFileError) as raised:
            check_settings(policy_file, {})
        assert raised.value.line == 4
        assert raised.value.problem.startswith("min_replicas='5': is greater than MAX_REPLICAS=3")

    def test_settings_are_checked_over_the_environment(self):
        """An entry that contradicts the environment is refused; one that agrees with it passes."""
        policy_file = parse_policy_file("services:\n  - name: web\n    min_replicas: 5\n")
        check_settings(policy_file, {"MAX_REPLICAS": "10"})
        with pytest.raises(PolicyFileError) as raised:
            check_settings(policy_file, {"MAX_REPLICAS": "4"})
        assert raised.value.line == 3
