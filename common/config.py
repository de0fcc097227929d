"""Reading and validating configuration values from the environment or from labels.

Every reader raises :class:`ConfigError` naming the variable and the value, so that a
daemon can stop at start with one clear line, and the autoscaler can report a bad
service label the same way. Numbers are plain ASCII decimals (no ``1_000``, no
other scripts' digits, no ``nan`` or ``inf``), and every number has a lower and an
upper bound, so that no value from outside can make a daemon allocate or wait
without limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

HIGHEST_PORT = 65_535

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_WHOLE = re.compile(r"[+-]?[0-9]{1,18}")
TRUE_WORDS = ("true", "yes", "1", "on")
FALSE_WORDS = ("false", "no", "0", "off")


Number = TypeVar("Number", int, float)


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


def _bounded(name: str, value: str, number: Number, minimum: Number, maximum: Number) -> Number:
    if number < minimum:
        raise ConfigError(name, value, f"must be at least {minimum:g}")
    if number > maximum:
        raise ConfigError(name, value, f"must be at most {maximum:g}")
    return number


def parse_float(name: str, value: str, *, minimum: float, maximum: float) -> float:
    if not _DECIMAL.fullmatch(value):
        raise ConfigError(name, value, "not a number")
    return _bounded(name, value, float(value), minimum, maximum)


def parse_int(name: str, value: str, *, minimum: int, maximum: int) -> int:
    if not _WHOLE.fullmatch(value):
        raise ConfigError(name, value, "not a whole number")
    return _bounded(name, value, int(value), minimum, maximum)


def parse_bool(name: str, value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(name, value, "must be true or false")


def read_float(
    source: Mapping[str, str], name: str, default: float, *, minimum: float, maximum: float
) -> float:
    value = raw(source, name)
    if value is None:
        return default
    return parse_float(name, value, minimum=minimum, maximum=maximum)


def read_int(source: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    value = raw(source, name)
    if value is None:
        return default
    return parse_int(name, value, minimum=minimum, maximum=maximum)


def read_port(source: Mapping[str, str], name: str, default: int) -> int:
    return read_int(source, name, default, minimum=1, maximum=HIGHEST_PORT)


def read_bool(source: Mapping[str, str], name: str, default: bool) -> bool:
    value = raw(source, name)
    return default if value is None else parse_bool(name, value)


def read_str(source: Mapping[str, str], name: str, default: str) -> str:
    value = raw(source, name)
    return default if value is None else value


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
"""A Swarm service or stack name."""


def read_name(source: Mapping[str, str], name: str, default: str) -> str:
    """A Swarm service or stack name: letters, digits, ``_ . -``, at most 63 characters."""
    value = read_str(source, name, default)
    if not NAME.fullmatch(value):
        raise ConfigError(name, value, "must be a service or stack name (letters, digits, _ . -)")
    return value


URL_PREFIX = re.compile(r"/[A-Za-z0-9._~/-]{0,200}")
"""A URL prefix: no space, brace, semicolon or quote, nothing nginx could read as more."""


def read_url_prefix(source: Mapping[str, str], name: str, default: str) -> str:
    """A URL prefix such as ``/api/``: nothing nginx would read as more than a location.

    No space, brace, semicolon or quote can pass, so no value can add a directive.
    """
    value = read_str(source, name, default)
    if not URL_PREFIX.fullmatch(value):
        raise ConfigError(name, value, "must be a URL prefix: /, then letters, digits and . _ ~ / -")
    return value


def read_docker_host(source: Mapping[str, str]) -> str:
    """DOCKER_HOST: the engine's API at ``unix:///path`` or ``tcp://host:port``."""
    value = read_str(source, "DOCKER_HOST", "unix:///var/run/docker.sock")
    if not value.startswith(("unix:///", "tcp://")):
        raise ConfigError("DOCKER_HOST", value, "must be unix:///path or tcp://host:port")
    return value


def read_choice(source: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = read_str(source, name, default)
    if value not in choices:
        raise ConfigError(name, value, f"must be one of {', '.join(choices)}")
    return value
