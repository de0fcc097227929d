"""Reading and validating configuration values from the environment or from labels.

Every reader raises :class:`ConfigError` naming the variable and the value, so that a
daemon can stop at start with one clear line, and the autoscaler can report a bad
service label the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


class ConfigError(ValueError):
    """A configuration value that cannot be used."""

    def __init__(self, name: str, value: str, problem: str) -> None:
        super().__init__(f"{name}={value!r}: {problem}")
        self.name = name
        self.value = value
        self.problem = problem


def raw(source: Mapping[str, str], name: str) -> str | None:
    """The value of ``name``, or None where it is unset or empty.

    An empty value counts as unset, so that a stack file can pass ``${VAR:-}`` through.
    """
    value = source.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def parse_float(
    name: str, value: str, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(name, value, "not a number") from None
    if not math.isfinite(number):
        raise ConfigError(name, value, "not a finite number")
    if minimum is not None and number < minimum:
        raise ConfigError(name, value, f"must be at least {minimum:g}")
    if maximum is not None and number > maximum:
        raise ConfigError(name, value, f"must be at most {maximum:g}")
    return number


def parse_int(name: str, value: str, *, minimum: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(name, value, "not a whole number") from None
    if minimum is not None and number < minimum:
        raise ConfigError(name, value, f"must be at least {minimum}")
    return number


def read_float(
    source: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    value = raw(source, name)
    if value is None:
        return default
    return parse_float(name, value, minimum=minimum, maximum=maximum)


def read_int(source: Mapping[str, str], name: str, default: int, *, minimum: int | None = None) -> int:
    value = raw(source, name)
    if value is None:
        return default
    return parse_int(name, value, minimum=minimum)


def read_str(source: Mapping[str, str], name: str, default: str) -> str:
    value = raw(source, name)
    return default if value is None else value


def read_choice(source: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = read_str(source, name, default)
    if value not in choices:
        raise ConfigError(name, value, f"must be one of {', '.join(choices)}")
    return value
