"""The autoscaler daemon's settings, read once at start from the environment."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from autoscaler.core import Policy
from autoscaler.lease import LeaseSettings
from autoscaler.policy import parse_policy, policy_environment
from autoscaler.policy_file import PolicyFile
from autoscaler.policy_source import load_policy_file
from common.bounds import CHECK_INTERVAL, DAY
from common.config import (
    ConfigError,
    raw,
    read_choice,
    read_docker_host,
    read_float,
    read_name,
    read_port,
    read_str,
)
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
class EntryPointSettings:
    address: str
    """DNS name that resolves to every entry point (nginx) task (``tasks.<service>``)."""
    port: int
    """Port of the entry points' request counters (Prometheus text at /metrics)."""
    window: float
    """Seconds of requests that latency, errors and request rate are computed over."""
    surge_window: float
    """Seconds of the short window that shows a surge of concurrency: the entry points are read this
    long before each check as well, and the step from that reading to the check's is the window."""


@dataclass(frozen=True)
class StateSettings:
    scope: str | None
    """Act only on the services of this stack (``com.docker.stack.namespace``); None: every service."""
    save_interval: float
    """Seconds between two saves when nothing a restart needs changed; also between saves of a forecaster."""


@dataclass(frozen=True)
class InstanceSettings:
    name: str
    """This instance's name in the lease: unique among the instances (the stack uses the task's name)."""
    docker_host: str
    """The engine's API (``unix:///path`` or ``tcp://host:port``)."""
    lease: LeaseSettings


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int


@dataclass(frozen=True)
class PolicyFileSettings:
    path: Path | None
    """The policy file (POLICY_FILE), read again whenever it changes; None: no file."""
    entries: PolicyFile
    """Its entries as read at start."""


@dataclass(frozen=True)
class Settings:
    loop: LoopSettings
    collectors: CollectorSettings
    entry_point: EntryPointSettings
    server: ServerSettings
    state: StateSettings
    instance: InstanceSettings
    policy: Policy
    """The default policy, before any service's labels."""
    policy_environment: dict[str, str]
    """The policy variables as set in the environment, for merging with labels."""
    policy_file: PolicyFileSettings
    log_level: str


def _scope(environ: Mapping[str, str]) -> str | None:
    return None if raw(environ, "AUTOSCALER_SCOPE") is None else read_name(environ, "AUTOSCALER_SCOPE", "")


def _lease(environ: Mapping[str, str]) -> LeaseSettings:
    """Kubernetes' defaults (15 s, 10 s, 2 s); each shorter than the one before, as they must be."""
    duration = read_float(environ, "LEASE_DURATION", 15.0, minimum=1, maximum=3600)
    renew_deadline = read_float(environ, "LEASE_RENEW_DEADLINE", 10.0, minimum=0.5, maximum=3600)
    retry_period = read_float(environ, "LEASE_RETRY_PERIOD", 2.0, minimum=0.1, maximum=3600)
    if renew_deadline >= duration:
        raise ConfigError(
            "LEASE_RENEW_DEADLINE",
            raw(environ, "LEASE_RENEW_DEADLINE") or "10",
            "must be shorter than LEASE_DURATION",
        )
    if retry_period >= renew_deadline:
        raise ConfigError(
            "LEASE_RETRY_PERIOD",
            raw(environ, "LEASE_RETRY_PERIOD") or "2",
            "must be shorter than LEASE_RENEW_DEADLINE",
        )
    return LeaseSettings(duration, renew_deadline, retry_period)


def load(environ: Mapping[str, str]) -> Settings:
    """Settings from the environment; raises common.config.ConfigError on a bad value."""
    policy_variables = policy_environment(environ)
    return Settings(
        loop=LoopSettings(
            check_interval=read_float(
                environ, "CHECK_INTERVAL", 30.0, minimum=CHECK_INTERVAL[0], maximum=CHECK_INTERVAL[1]
            )
        ),
        collectors=CollectorSettings(
            address=read_str(environ, "COLLECTOR_ADDRESS", "tasks.metrics-collector"),
            port=read_port(environ, "COLLECTOR_PORT", 8090),
            timeout=read_float(environ, "COLLECTOR_TIMEOUT", 5.0, minimum=0.1, maximum=300),
        ),
        entry_point=EntryPointSettings(
            address=read_str(environ, "ENTRYPOINT_ADDRESS", "tasks.nginx"),
            port=read_port(environ, "ENTRYPOINT_PORT", 9145),
            window=read_float(environ, "METRICS_WINDOW", 30.0, minimum=1, maximum=DAY),
            surge_window=read_float(environ, "SURGE_WINDOW", 6.0, minimum=1, maximum=DAY),
        ),
        server=ServerSettings(
            host=read_str(environ, "LISTEN_HOST", "0.0.0.0"),  # noqa: S104 - a service in a container
            port=read_port(environ, "PORT", 8080),
        ),
        state=StateSettings(
            scope=_scope(environ),
            save_interval=read_float(environ, "STATE_SAVE_INTERVAL", 60.0, minimum=1, maximum=DAY),
        ),
        instance=InstanceSettings(
            name=read_str(environ, "AUTOSCALER_INSTANCE", socket.gethostname()),
            docker_host=read_docker_host(environ),
            lease=_lease(environ),
        ),
        policy=parse_policy(environ),
        policy_environment=policy_variables,
        policy_file=PolicyFileSettings(*load_policy_file(environ, policy_variables)),
        log_level=read_choice(environ, "LOG_LEVEL", "info", LEVELS),
    )
