"""The agent's settings, read from the environment once at start."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.bounds import BALANCING_POLICIES, STICKY_MODES
from common.config import (
    ConfigError,
    read_choice,
    read_float,
    read_int,
    read_name,
    read_port,
    read_str,
    read_url_prefix,
)
from nginx.config import ProxySettings

MOST_WORKERS = 256
ROUTES_URL = re.compile(r"https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]{0,200})?")


@dataclass(frozen=True)
class AgentSettings:
    service: str
    """The Swarm service (or its alias on the shared network) whose tasks get the traffic."""
    sync_interval: float
    """Seconds between two look-ups of the running tasks."""
    config_path: Path
    proxy: ProxySettings
    routes_url: str = "http://tasks.autoscaler:8080/routes"
    """The autoscaler's routing table, read at every sync for the service's rate limit."""


def _workers(environ: Mapping[str, str]) -> str:
    """``auto`` or a number of worker processes."""
    if read_str(environ, "NGINX_WORKERS", "auto") == "auto":
        return "auto"
    return str(read_int(environ, "NGINX_WORKERS", 1, minimum=1, maximum=MOST_WORKERS))


def _routes_url(environ: Mapping[str, str]) -> str:
    value = read_str(environ, "ROUTES_URL", AgentSettings.routes_url)
    if not ROUTES_URL.fullmatch(value):
        raise ConfigError("ROUTES_URL", value, "must be an http:// URL of the autoscaler's /routes")
    return value


def load(environ: Mapping[str, str]) -> AgentSettings:
    service = read_name(environ, "UPSTREAM_SERVICE", "demo-api")
    return AgentSettings(
        routes_url=_routes_url(environ),
        service=service,
        sync_interval=read_float(environ, "UPSTREAM_SYNC_INTERVAL", 1.0, minimum=0.1, maximum=3600),
        config_path=Path(read_str(environ, "NGINX_CONFIG", "/etc/nginx/nginx.conf")),
        proxy=ProxySettings(
            listen_port=read_port(environ, "LISTEN_PORT", 80),
            location=read_url_prefix(environ, "PROXY_LOCATION", "/api/"),
            upstream_port=read_port(environ, "UPSTREAM_PORT", 8000),
            workers=_workers(environ),
            service=service,
            metrics_port=read_port(environ, "METRICS_PORT", 9145),
            control_port=read_port(environ, "CONTROL_PORT", 10246),
            balance=read_choice(environ, "BALANCE", "round_robin", BALANCING_POLICIES),
            sticky=read_choice(environ, "STICKY", "none", STICKY_MODES),
        ),
    )
