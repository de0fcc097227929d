"""What counting every request costs nginx: requests per second with and without it.

    .venv/bin/python bench/entrypoint_measurement.py [--rounds N] [--seconds S] [--connections C]
        [--upstream nginx|demo]

Needs nginx with its Lua module and wrk (``apt-get install nginx-light
libnginx-mod-http-lua wrk``), and runs as root (nginx's workers switch user).

Both configurations are the entry point's own (``nginx.config.render``); the baseline is
the same file without the ``log_by_lua_block`` that counts. With ``--upstream nginx``
(the default) the upstream is a second server block of the same nginx answering
``/api/health`` itself, so that no application limits the rate and nginx's own work is
what is measured: the worst case for the counters' share. With ``--upstream demo`` it is
one demo API process, as in the stack. The two configurations alternate for ``--rounds``
rounds, so that a busy machine weighs on both alike; the medians are compared.
"""

from __future__ import annotations

import argparse
import inspect
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import nginx.config
from nginx.config import ProxySettings

PROXY_PORT, METRICS_PORT, UPSTREAM_PORT, CONTROL_PORT = 18280, 18281, 18282, 18283
COUNTING = re.compile(r"\s*log_by_lua_block \{[^}]*\}\n")
UPSTREAM = f"""
    server {{
        listen 127.0.0.1:{UPSTREAM_PORT};
        location / {{
            keepalive_requests 1000000;
            return 200 "ok\\n";
        }}
    }}
}}
"""


SETTINGS = ProxySettings(
    listen_port=PROXY_PORT,
    location="/api/",
    upstream_port=UPSTREAM_PORT,
    workers="1",
    service="demo-api",
    metrics_port=METRICS_PORT,
    control_port=CONTROL_PORT,
)
"""The entry point's settings here."""


def one_task(config: ModuleType, settings: object) -> str:
    """The configuration that a revision's ``nginx/config.py`` renders for one task on 127.0.0.1.

    Revisions before several routes render ``(addresses, settings)``; later ones
    ``(settings, routes, tasks)``.
    """
    if next(iter(inspect.signature(config.render).parameters)) == "addresses":
        return str(config.render(["127.0.0.1"], settings))
    route = config.static_route(settings)
    return str(config.render(settings, [route], {route.counted_as: ["127.0.0.1"]}))


def rendered(config: ModuleType, settings: object, directory: Path, own_upstream: bool = True) -> str:
    """The entry point's configuration for one task on 127.0.0.1, its pid file in ``directory``.

    With ``own_upstream``, the task is a server block of the same nginx answering by itself.
    """
    text = one_task(config, settings).replace("pid /run/nginx.pid;", f"pid {directory}/nginx.pid;")
    if own_upstream:
        text = text[: text.rstrip().rfind("}")] + UPSTREAM.lstrip("\n")
    return text


def configuration(directory: Path, counted: bool, own_upstream: bool = True) -> Path:
    text = rendered(nginx.config, SETTINGS, directory, own_upstream)
    if not counted:
        text, removed = COUNTING.subn("\n", text)
        assert removed == 1, "the rendered configuration no longer counts in one log_by_lua_block"  # noqa: S101
    path = directory / ("counted.conf" if counted else "uncounted.conf")
    path.write_text(text)
    return path


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nginx did not listen on {port}")


def requests_per_second(config: Path, seconds: int, connections: int) -> float:
    nginx = subprocess.Popen(["nginx", "-c", str(config), "-g", "daemon off;"])
    try:
        wait_for_port(PROXY_PORT)
        output = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{PROXY_PORT}/api/health"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=15)
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"requests failed:\n{output}")
    match = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    if match is None:
        raise SystemExit(f"wrk said:\n{output}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--upstream", choices=("nginx", "demo"), default="nginx")
    arguments = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install nginx-light libnginx-mod-http-lua wrk")
    own = arguments.upstream == "nginx"
    demo = None
    if not own:
        environment = {"PORT": str(UPSTREAM_PORT), "LOG_LEVEL": "warning"}
        demo = subprocess.Popen([sys.executable, "-m", "demo_api"], env=environment)
        wait_for_port(UPSTREAM_PORT)
    try:
        with tempfile.TemporaryDirectory() as name:
            directory = Path(name)
            configs = {counted: configuration(directory, counted, own) for counted in (False, True)}
            rates: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(arguments.rounds):
                for counted in (False, True):
                    rates[counted].append(
                        requests_per_second(configs[counted], arguments.seconds, arguments.connections)
                    )
    finally:
        if demo is not None:
            demo.terminate()
            demo.wait(timeout=15)
    baseline, measured = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"{'configuration':<24}{'median req/s':>14}   every round")
    for label, counted in (("without counting", False), ("with counting", True)):
        figures = " ".join(f"{rate:.0f}" for rate in rates[counted])
        print(f"{label:<24}{statistics.median(rates[counted]):>14.0f}   {figures}")
    print(f"throughput lost to counting: {100 * (1 - measured / baseline):.1f} %")


if __name__ == "__main__":
    main()
