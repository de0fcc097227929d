"""The autoscaler daemon's settings, read once at start from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from autoscaler.core import Policy
from autoscaler.policy import parse_policy, policy_environment
from common.config import read_choice, read_float, read_int, read_str
from common.logs import LEVELS


@dataclass(frozen=True)
class LoopSettings:
    check_interval: float
    """Seconds between two checks of every service."""


@dataclass(frozen=True)
class CollectorSettings:
    address: str
    """DNS name that resolves to every metrics-collector task (``tasks.<service>``)."""
    port: int
    timeout: float
    """Seconds to wait for one collector's answer."""


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int


@dataclass(frozen=True)
class Settings:
    loop: LoopSettings
    collectors: CollectorSettings
    server: ServerSettings
    policy: Policy
    """The default policy, before any service's labels."""
    policy_environment: dict[str, str]
    """The policy variables as set in the environment, for merging with labels."""
    log_level: str


def load(environ: Mapping[str, str]) -> Settings:
    """Settings from the environment; raises common.config.ConfigError on a bad value."""
    return Settings(
        loop=LoopSettings(check_interval=read_float(environ, "CHECK_INTERVAL", 30.0, minimum=0.1)),
        collectors=CollectorSettings(
            address=read_str(environ, "COLLECTOR_ADDRESS", "tasks.metrics-collector"),
            port=read_int(environ, "COLLECTOR_PORT", 8090, minimum=1),
            timeout=read_float(environ, "COLLECTOR_TIMEOUT", 5.0, minimum=0.1),
        ),
        server=ServerSettings(
            host=read_str(environ, "LISTEN_HOST", "0.0.0.0"),  # noqa: S104 - a service in a container
            port=read_int(environ, "PORT", 8080, minimum=1),
        ),
        policy=parse_policy(environ),
        policy_environment=policy_environment(environ),
        log_level=read_choice(environ, "LOG_LEVEL", "info", LEVELS),
    )
