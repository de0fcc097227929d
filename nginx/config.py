"""Rendering nginx's whole configuration from the list of running task addresses. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nginx.routes import Route

UPSTREAM_NAME = "backend"
LUA_DIRECTORY = Path(__file__).parent / "lua"
"""monitor.lua counts the requests, metrics.lua writes them out; configuration.lua keeps the
tasks and rate limits the agent pushes, balancer.lua picks a task for each try, ratelimit.lua
refuses what is above a service's limit; status.lua answers /nginx/status."""
CONFIGURATION_ZONE_SIZE = "1m"
"""Shared memory for the task list the agent pushes: room for thousands of tasks."""
COUNTERS_ZONE_SIZE = "10m"
"""Shared memory for the request counters; counts a full zone could not keep are counted as lost."""
RATE_ZONE_SIZE = "1m"
"""Shared memory for the rate limits' buckets: one number and one counter a service."""
BALANCING_ZONE_SIZE = "1m"
"""Shared memory for each task's requests in flight and average response time: three numbers a task."""

DECADE = (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8)
DURATION_BUCKETS = (*(round(step * 10.0**power, 6) for power in range(-3, 2) for step in DECADE), 100.0)
"""Upper edges of the request duration histogram's buckets, in seconds (1 ms to 100 s, then +Inf).

Ten to a decade, no two more than a third apart, so that a percentile read from them by
linear interpolation inside a bucket stays close to the exact one (Prometheus' default
buckets are up to 2.5 times apart).
"""


@dataclass(frozen=True)
class ProxySettings:
    listen_port: int
    location: str
    """URL prefix proxied to the tasks, e.g. ``/api/``."""
    upstream_port: int
    """Port the tasks listen on."""
    workers: str
    """nginx worker_processes: a number or ``auto``."""
    service: str
    """The name the proxied requests are counted under: the upstream service's."""
    metrics_port: int
    """Port of the request counters' ``/metrics``, apart from the proxied traffic."""
    control_port: int
    """Port on 127.0.0.1 where the agent pushes the tasks (``/configuration/backends``)."""
    balance: str = "round_robin"
    """How the route's requests are spread over its tasks: one of ``BALANCING_POLICIES``."""
    sticky: str = "none"
    """Whether a client keeps its task: one of ``STICKY_MODES``."""


def static_route(settings: ProxySettings) -> Route:
    """The route of the entry point's own variables (UPSTREAM_SERVICE, PROXY_LOCATION, UPSTREAM_PORT)."""
    return Route(
        settings.service,
        settings.service,
        settings.location,
        settings.upstream_port,
        settings.balance,
        settings.sticky,
    )


def backends(routes: Sequence[Route], tasks: Mapping[str, Sequence[str]]) -> list[str]:
    """The tasks as nginx's balancer takes them, ``<service> <ip>:<port>``, a route's in order.

    ``tasks``: per route's ``counted_as``, the addresses of its tasks.
    """
    return [
        f"{route.counted_as} {address}:{route.port}"
        for route in routes
        for address in sorted(tasks.get(route.counted_as, ()))
    ]


def _location(route: Route) -> str:
    chosen = f'"{route.counted_as}", "{route.balance}", "{route.sticky}", "{route.path}"'
    return f"""
        location {route.path} {{
            access_by_lua_block {{
                require("monitor").start("{route.counted_as}")
                require("ratelimit").admit("{route.counted_as}")
                require("balancer").route({chosen})
            }}
            header_filter_by_lua_block {{
                require("balancer").header_filter()
            }}
            log_by_lua_block {{
                require("monitor").log("{route.counted_as}")
                require("balancer").log()
            }}
            proxy_pass http://{UPSTREAM_NAME};
            proxy_http_version 1.1;
            # A WebSocket upgrade passes through, and stays on its task for its life; any
            # other request leaves the connection to the task open for the next.
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $entry_upstream_connection;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            # A task that refuses or fails a request before answering hands it to another
            # (an idempotent request, or any that never reached a task).
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
        }}
"""


def render(settings: ProxySettings, routes: Sequence[Route], tasks: Mapping[str, Sequence[str]]) -> str:
    """nginx.conf with a location per route, sent to ``tasks`` until the agent pushes others.

    Every value in a route was checked against a strict pattern (service names, URL
    prefixes, ports): none can add a directive. Routes must have distinct paths and names.
    """
    initial = ", ".join(f'"{backend}"' for backend in backends(routes, tasks))
    services = ", ".join(f'"{route.counted_as}"' for route in routes)
    locations = "".join(_location(route) for route in routes)
    edges = ", ".join(f"{edge:g}" for edge in DURATION_BUCKETS)
    return f"""# Written by the upstream agent from Swarm's running tasks; changes are overwritten.
load_module modules/ndk_http_module.so;
load_module modules/ngx_http_lua_module.so;
worker_processes {settings.workers};
error_log stderr warn;
pid /run/nginx.pid;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    keepalive_timeout 65s;

    # Everything the request counters read, in one variable: reading one costs less than
    # reading five (see monitor.lua). A map is evaluated when it is first read, in the log phase.
    map $status $entry_request {{
        default "$status $request_time $upstream_addr|$upstream_status|$upstream_response_time";
    }}

    map $http_upgrade $entry_upstream_connection {{
        default upgrade;
        "" "";
    }}

    lua_package_path "{LUA_DIRECTORY}/?.lua;;";
    # Shared memory outlives a reload, and the request counters with it.
    lua_shared_dict entrypoint_requests {COUNTERS_ZONE_SIZE};
    lua_shared_dict entrypoint_configuration {CONFIGURATION_ZONE_SIZE};
    lua_shared_dict entrypoint_rate {RATE_ZONE_SIZE};
    lua_shared_dict entrypoint_balancing {BALANCING_ZONE_SIZE};
    # Loaded by the master, as root, before the workers start: they inherit the modules
    # and never read the files themselves (as nobody, who may not be allowed to).
    init_by_lua_block {{
        require("monitor").init({{{edges}}}, {{{services}}})
        require("metrics")
        require("configuration").init({{{initial}}})
        require("balancing")
        require("sticky")
        require("balancer")
        require("ratelimit")
        require("status")
    }}
    init_worker_by_lua_block {{
        require("monitor").init_worker()
        require("balancer").init_worker()
        require("ratelimit").init_worker()
    }}

    upstream {UPSTREAM_NAME} {{
        server 0.0.0.1;  # never used: balancer.lua picks the task for every try
        balancer_by_lua_block {{
            require("balancer").balance()
        }}
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{settings.control_port};

        location = /configuration/backends {{
            client_body_buffer_size 1m;
            client_max_body_size 1m;
            content_by_lua_block {{
                require("configuration").backends()
            }}
        }}

        location = /configuration/rate_limits {{
            content_by_lua_block {{
                require("configuration").set_rate_limits()
            }}
        }}
    }}

    server {{
        listen {settings.metrics_port};

        location = /metrics {{
            content_by_lua_block {{
                require("metrics").write()
            }}
        }}

        location = /nginx/status {{
            content_by_lua_block {{
                require("status").write()
            }}
        }}

        # The tasks requests go to now, "<service> <ip>:<port>" a line.
        location = /nginx/upstream {{
            limit_except GET {{
                deny all;
            }}
            content_by_lua_block {{
                require("configuration").backends()
            }}
        }}
    }}

    server {{
        listen {settings.listen_port};

        location = /nginx-health {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
{locations}    }}
}}
"""
