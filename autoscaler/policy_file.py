"""The optional policy file (POLICY_FILE): settings and schedules per service, by name or by labels.

    services:
      - name: shop_web              # this service (its full name, with the stack's prefix)
        min_replicas: 3             # any autoscaler.* label's name, without "autoscaler."
        schedules:
          - name: weekday-peak
            cron: "0 9 * * 1-5"     # croniter's five fields (or six, seconds last)
            timezone: Europe/Berlin # default UTC
            duration: 2h            # seconds, or a number with s, m, h or d
            min_replicas: 6
            max_replicas: 12        # optional
      - selector: {team: shop}      # every service with all these labels
        scaling_algorithm: target

Every entry that matches a service applies, in the file's order, a later one's setting
over an earlier one's; the service's own labels override them all, and the file overrides
the environment. The schedules of every matching entry apply. Parsing is pure: text in,
entries out, and every problem names its line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import CroniterError, croniter

from autoscaler.labels import LABEL_PREFIX, label_name
from autoscaler.policy import MOST_REPLICAS, POLICY_VARIABLES, parse_policy
from autoscaler.schedules import Schedule
from common.bounds import WEEK
from common.config import NAME, ConfigError

SETTINGS = {label_name(variable).removeprefix(LABEL_PREFIX): variable for variable in POLICY_VARIABLES}
"""An entry's setting names (the labels' names without ``autoscaler.``) and their variables."""
SETTING_OF = {variable: setting for setting, variable in SETTINGS.items()}
MOST_CHARACTERS = 4_000_000
MOST_ENTRIES = 10_000
MOST_SCHEDULES = 100
"""Per entry."""
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ENTRY_KEYS = {"name", "selector", "schedules"}
_SCHEDULE_KEYS = {"name", "cron", "timezone", "duration", "min_replicas", "max_replicas"}


class PolicyFileError(ValueError):
    """The file, or one of its entries, cannot be used; names the line."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class Entry:
    line: int
    name: str | None
    """The service's full name; None to match by ``selector`` alone."""
    selector: Mapping[str, str]
    """Labels a service must all have, with these values."""
    settings: Mapping[str, str]
    """Policy variables (environment names) and their values, as a label would give them."""
    setting_lines: Mapping[str, int]
    """The line of each setting, to name it when its value cannot be used."""
    schedules: tuple[Schedule, ...]

    def matches(self, service: str, labels: Mapping[str, str]) -> bool:
        if self.name is not None and self.name != service:
            return False
        return all(labels.get(label) == value for label, value in self.selector.items())


@dataclass(frozen=True)
class Applied:
    """What the file says of one service: its entries' settings merged, and their schedules."""

    settings: dict[str, str] = field(default_factory=dict)
    setting_lines: dict[str, int] = field(default_factory=dict)
    schedules: tuple[Schedule, ...] = ()


@dataclass(frozen=True)
class PolicyFile:
    entries: tuple[Entry, ...] = ()

    def for_service(self, service: str, labels: Mapping[str, str]) -> Applied:
        matching = [entry for entry in self.entries if entry.matches(service, labels)]
        return Applied(
            {variable: value for entry in matching for variable, value in entry.settings.items()},
            {variable: line for entry in matching for variable, line in entry.setting_lines.items()},
            tuple(schedule for entry in matching for schedule in entry.schedules),
        )


def _line(node: yaml.Node | yaml.Event) -> int:
    mark = node.start_mark
    return 1 if mark is None else int(mark.line) + 1


def _text(node: yaml.Node, what: str) -> str:
    """A scalar as a label would hold it: booleans as true or false, anything else as written."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        raise PolicyFileError(_line(node), f"{what} must be a single value")
    if node.tag == "tag:yaml.org,2002:bool":
        return "true" if node.value.lower() in {"true", "yes", "on", "y"} else "false"
    return str(node.value)


def _mapping(node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, int]]:
    """A mapping's keys, values and lines; a key given twice is an error, not a silent override."""
    if not isinstance(node, yaml.MappingNode):
        raise PolicyFileError(_line(node), f"{what} must be a mapping of names to values")
    seen: set[str] = set()
    items = []
    for key_node, value_node in node.value:
        key = _text(key_node, "a key")
        if key in seen:
            raise PolicyFileError(_line(key_node), f"{key} is given twice")
        seen.add(key)
        items.append((key, value_node, _line(key_node)))
    return items


def _sequence(node: yaml.Node, what: str, most: int) -> list[yaml.Node]:
    if not isinstance(node, yaml.SequenceNode):
        raise PolicyFileError(_line(node), f"{what} must be a list")
    if len(node.value) > most:
        raise PolicyFileError(_line(node), f"{what} holds more than {most:,} items")
    return list(node.value)


def _replicas(node: yaml.Node, what: str, lowest: int) -> int:
    text = _text(node, what)
    if not text.isascii() or not text.isdigit() or not lowest <= int(text) <= MOST_REPLICAS:
        raise PolicyFileError(
            _line(node), f"{what} must be a whole number from {lowest} to {MOST_REPLICAS:,}"
        )
    return int(text)


def _duration(node: yaml.Node) -> float:
    text = _text(node, "duration")
    found = _DURATION.fullmatch(text.strip())
    seconds = float(found[1]) * _UNIT_SECONDS[found[2]] if found else 0.0
    if not 0 < seconds <= WEEK:
        raise PolicyFileError(
            _line(node), f"duration {text!r} must be seconds, or a number with s, m, h or d, up to 7d"
        )
    return seconds


def _schedule(node: yaml.Node, entry: int, index: int) -> Schedule:
    fields = {key: (value, line) for key, value, line in _mapping(node, "a schedule")}
    for key, (_, line) in fields.items():
        if key not in _SCHEDULE_KEYS:
            raise PolicyFileError(
                line, f"unknown schedule key {key} (the keys: {', '.join(sorted(_SCHEDULE_KEYS))})"
            )
    for key in ("cron", "duration", "min_replicas"):
        if key not in fields:
            raise PolicyFileError(_line(node), f"a schedule needs {key}")
    cron_node = fields["cron"][0]
    cron = _text(cron_node, "cron")
    if not croniter.is_valid(cron):
        raise PolicyFileError(_line(cron_node), f"cron {cron!r} is not a cron expression")
    try:
        croniter(cron).get_next(float)
    except CroniterError:
        raise PolicyFileError(_line(cron_node), f"cron {cron!r} names no time that comes") from None
    timezone = "UTC"
    if "timezone" in fields:
        timezone_node = fields["timezone"][0]
        timezone = _text(timezone_node, "timezone")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise PolicyFileError(
                _line(timezone_node), f"timezone {timezone!r} is not a known time zone"
            ) from None
    minimum = _replicas(fields["min_replicas"][0], "min_replicas", 0)
    maximum = _replicas(fields["max_replicas"][0], "max_replicas", 1) if "max_replicas" in fields else None
    if maximum is not None and maximum < minimum:
        raise PolicyFileError(
            fields["max_replicas"][1], f"max_replicas {maximum} is below min_replicas {minimum}"
        )
    name = (
        _text(fields["name"][0], "name") if "name" in fields else f"entry at line {entry}, schedule {index}"
    )
    return Schedule(name, cron, timezone, _duration(fields["duration"][0]), minimum, maximum)


def _entry(node: yaml.Node) -> Entry:
    line = _line(node)
    name, selector, schedules = None, {}, []
    settings, setting_lines = {}, {}
    for key, value, key_line in _mapping(node, "an entry"):
        if key == "name":
            name = _text(value, "name")
            if not NAME.fullmatch(name):
                raise PolicyFileError(key_line, f"name {name!r} is not a service name")
        elif key == "selector":
            selector = {
                label: _text(text, f"label {label}") for label, text, _ in _mapping(value, "selector")
            }
            if not selector:
                raise PolicyFileError(key_line, "selector names no label")
        elif key == "schedules":
            items = _sequence(value, "schedules", MOST_SCHEDULES)
            schedules = [_schedule(item, line, index) for index, item in enumerate(items, 1)]
        elif key in SETTINGS:
            settings[SETTINGS[key]] = _text(value, key)
            setting_lines[SETTINGS[key]] = key_line
        else:
            raise PolicyFileError(
                key_line,
                f"unknown setting {key} (the settings are the autoscaler.* labels without autoscaler.)",
            )
    if name is None and not selector:
        raise PolicyFileError(line, "an entry needs a name or a selector")
    return Entry(line, name, selector, settings, setting_lines, tuple(schedules))


def _compose(text: str) -> yaml.Node | None:
    """The file's node tree; an alias is refused, since one can make a small file a huge tree."""
    if len(text) > MOST_CHARACTERS:
        raise PolicyFileError(1, f"longer than {MOST_CHARACTERS:,} characters")
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise PolicyFileError(_line(event), "aliases (*name) are not allowed")
    return yaml.compose(text, Loader=yaml.SafeLoader)


def parse_policy_file(text: str) -> PolicyFile:
    """The file's entries; PolicyFileError naming the line of the first problem."""
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise PolicyFileError(int(mark.line) + 1 if mark else 1, f"not YAML: {error.problem}") from None
    except yaml.YAMLError as error:
        raise PolicyFileError(1, f"not YAML: {error}") from None
    if root is None:
        return PolicyFile()
    top = {key: value for key, value, _ in _mapping(root, "the file")}
    unknown = set(top) - {"services"}
    if unknown:
        raise PolicyFileError(_line(root), f"unknown key {min(unknown)} (the file holds only services)")
    if "services" not in top:
        return PolicyFile()
    return PolicyFile(tuple(_entry(node) for node in _sequence(top["services"], "services", MOST_ENTRIES)))


def check_settings(policy_file: PolicyFile, environment: Mapping[str, str]) -> None:
    """PolicyFileError for the first entry whose settings the policy's rules refuse over ``environment``.

    Each entry is read as if it were the only one on a service without labels; a service
    that two entries match is read again, as a whole, when it is found.
    """
    for entry in policy_file.entries:
        try:
            parse_policy({**environment, **entry.settings}, overridden=entry.settings.keys())
        except ConfigError as error:
            raise PolicyFileError(
                entry.setting_lines.get(error.name, entry.line), described(error, entry.settings)
            ) from None


def described(error: ConfigError, settings: Mapping[str, str]) -> str:
    """A policy error in the file's own words: its setting's name, where the file set it."""
    if error.name in settings:
        return f"{SETTING_OF[error.name]}={error.value!r}: {error.problem}"
    return str(error)
