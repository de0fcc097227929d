"""The metrics collector's settings, read once at start from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.bounds import DAY
from common.config import ConfigError, read_choice, read_docker_host, read_float, read_port, read_str
from common.logs import LEVELS


@dataclass(frozen=True)
class SamplingSettings:
    interval: float
    """Seconds between two readings of every container."""
    window: float
    """Seconds of history that CPU and memory percentages are computed over."""
    container_refresh_interval: float
    """Seconds between two listings of the node's containers through the Docker API."""


@dataclass(frozen=True)
class Settings:
    sampling: SamplingSettings
    cgroup_root: Path
    meminfo: Path
    docker_host: str
    """The Docker API the containers are listed through: in the stack, the filtered view of
    the ``docker-api`` service, which answers nothing but that listing."""
    host: str
    port: int
    log_level: str


def load(environ: Mapping[str, str]) -> Settings:
    interval = read_float(environ, "SAMPLE_INTERVAL", 5.0, minimum=0.1, maximum=3600)
    window = read_float(environ, "METRICS_WINDOW", 30.0, minimum=0.1, maximum=DAY)
    if window < interval:
        raise ConfigError("METRICS_WINDOW", f"{window:g}", f"must be at least SAMPLE_INTERVAL={interval:g}")
    return Settings(
        sampling=SamplingSettings(
            interval=interval,
            window=window,
            container_refresh_interval=read_float(
                environ, "CONTAINER_REFRESH_INTERVAL", 10.0, minimum=0, maximum=3600
            ),
        ),
        cgroup_root=Path(read_str(environ, "CGROUP_ROOT", "/sys/fs/cgroup")),
        meminfo=Path(read_str(environ, "MEMINFO_PATH", "/proc/meminfo")),
        docker_host=read_docker_host(environ),
        host=read_str(environ, "LISTEN_HOST", "0.0.0.0"),  # noqa: S104 - a service in a container
        port=read_port(environ, "PORT", 8090),
        log_level=read_choice(environ, "LOG_LEVEL", "info", LEVELS),
    )
