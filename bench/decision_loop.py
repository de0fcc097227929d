"""The autoscaler's check at 50, 500 and 2,000 services, per phase, beside another revision's.

    .venv/bin/python bench/decision_loop.py [--baseline REV] [--services 50 500 2000] [--checks 10]

Each service runs 10 tasks over 10 nodes, each node's collector reports its own tasks, and two
entry points answer a page in the format ``nginx/lua/metrics.lua`` writes (about 10 KB per
service: both histograms, the tries at each task, the requests by status). The Docker API,
the collectors and the entry points are the unit tests' fakes at the I/O boundary
(``tests/unit/fakes.py``); everything of the autoscaler's own runs as it does live. The clock
moves 30 s a check, and the CPU of a tenth of the services swings, so that some scale.

Both trees are measured in this run, one after the other, in processes of their own: the
working tree and ``--baseline`` (a git revision, checked out into a temporary folder). Per
check it prints the median and 95th percentile of the whole check, its phases, the time to
render ``/status`` and ``/metrics`` once, and the Raft writes (configs created and removed).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NODES = 10
TASKS_PER_SERVICE = 10
ENTRY_POINTS = ("10.0.2.1", "10.0.2.2")
COLLECTORS = tuple(f"10.0.1.{node}" for node in range(1, NODES + 1))
START = 1_800_000_000.0
CHECK_SECONDS = 30.0
PHASES = {
    # phase: the functions it is made of, as (module, attribute); a revision lacking one skips it.
    "collectors": (("autoscaler.daemon", "read_collectors"), ("autoscaler.intake", "read_collectors")),
    "entry points": (("autoscaler.daemon", "read_entry_points"), ("autoscaler.intake", "read_entry_points")),
    "policies": (("autoscaler.daemon", "service_policy"), ("autoscaler.policies", "service_policy")),
    "observations": (("autoscaler.daemon", "observe"),),
    "decisions": (("autoscaler.core", "decide"),),
    "saves": (("autoscaler.state_store", "ConfigStateStore.save"),),
    "snapshot for the endpoints": (("autoscaler.records", "snapshot"),),
}


def _page(services: list[str], served: int) -> str:
    """An entry point's counters after ``served`` requests per service, as metrics.lua writes them."""
    from nginx.config import DURATION_BUCKETS  # noqa: PLC0415 - from the tree under measurement

    edges = [f"{edge:.6g}" for edge in DURATION_BUCKETS] + ["+Inf"]
    lines = ["# HELP entrypoint_requests_total Requests.", "# TYPE entrypoint_requests_total counter"]
    for name in services:
        lines += [
            f'entrypoint_requests_total{{service="{name}",code="200"}} {served}',
            f'entrypoint_requests_total{{service="{name}",code="404"}} {served // 50}',
            f'entrypoint_requests_total{{service="{name}",code="503"}} {served // 500}',
        ]
    for family in ("entrypoint_request_duration_seconds", "entrypoint_upstream_response_duration_seconds"):
        lines += [f"# HELP {family} Durations.", f"# TYPE {family} histogram"]
        for name in services:
            labels = f'service="{name}"'
            for index, edge in enumerate(edges):
                count = served if index >= len(edges) // 3 else served * index // len(edges)
                lines.append(f'{family}_bucket{{{labels},le="{edge}"}} {count}')
            lines += [f"{family}_sum{{{labels}}} {served * 0.05:.6f}", f"{family}_count{{{labels}}} {served}"]
    lines += [
        "# HELP entrypoint_upstream_tries_total Tries.",
        "# TYPE entrypoint_upstream_tries_total counter",
    ]
    for name in services:
        for task in range(TASKS_PER_SERVICE):
            for status, count in (("200", served // TASKS_PER_SERVICE), ("502", served // 5000)):
                upstream = f"10.0.3.{task}:8000"
                lines.append(
                    f'entrypoint_upstream_tries_total{{service="{name}",upstream="{upstream}",'
                    f'status="{status}"}} {count}'
                )
    family = "entrypoint_requests_in_flight_seconds_total"
    lines += [f"# HELP {family} In flight.", f"# TYPE {family} counter"]
    lines += [f'{family}{{service="{name}"}} {served * 0.05:.6f}' for name in services]
    lines += ["# HELP entrypoint_requests_in_flight Now.", "# TYPE entrypoint_requests_in_flight gauge"]
    lines += [f'entrypoint_requests_in_flight{{service="{name}"}} 2' for name in services]
    return "\n".join(lines) + "\n"


class Scenario:
    """The fakes of one swarm of ``count`` services, and the clock the checks run on."""

    def __init__(self, count: int) -> None:
        from tests.unit.fakes import FakeDockerApi, service  # noqa: PLC0415 - from the tree under measurement

        class SpreadDockerApi(FakeDockerApi):  # type: ignore[misc] - the fakes are untyped
            """Every service's tasks, as many as its spec says, over the nodes in turn."""

            def tasks(self, filters: object = None) -> list[dict[str, Any]]:  # noqa: ARG002 - all run
                return [
                    {
                        "ID": f"{service_id}.{slot}",
                        "ServiceID": service_id,
                        "NodeID": f"node-{slot % NODES + 1}",
                        "Status": {"State": "running"},
                    }
                    for service_id, attributes in self.by_id.items()
                    for slot in range(1, attributes["Spec"]["Mode"]["Replicated"]["Replicas"] + 1)
                ]

        self.now = START
        self.names = [f"shop_service-{index}" for index in range(count)]
        labels = {"autoscaler.enable": "true", "autoscaler.max_replicas": "20"}
        specs = [
            service(f"s{index}", name, TASKS_PER_SERVICE, labels) for index, name in enumerate(self.names)
        ]
        self.api = SpreadDockerApi(specs)
        self.writes = 0
        for method in ("create_config", "remove_config"):
            real = getattr(self.api, method)
            setattr(self.api, method, self._counting(real))
        self.checks = 0

    def _counting(self, real: Callable[..., object]) -> Callable[..., object]:
        def counted(*arguments: object, **keywords: object) -> object:
            self.writes += 1
            return real(*arguments, **keywords)

        return counted

    def reports(self) -> dict[str, Any]:
        """Each node's collector: its own tasks, the CPU of every tenth service swinging."""
        swing = 90.0 if self.checks % 4 < 2 else 10.0
        by_node: dict[str, dict[str, Any]] = {host: {} for host in COLLECTORS}
        for task in self.api.tasks():
            index = int(task["ServiceID"][1:])
            host = COLLECTORS[int(task["NodeID"].split("-")[1]) - 1]
            entry = by_node[host].setdefault(
                self.names[index],
                {
                    "task_ids": [],
                    "cpu_percent": swing if index % 10 == 0 else 40.0 + index % 20,
                    "memory_percent": 30.0,
                    "sampled_at": self.now - 2,
                },
            )
            entry["task_ids"].append(task["ID"])
        return {
            host: {"node_id": f"node-{number}", "services": services}
            for number, (host, services) in enumerate(by_node.items(), start=1)
        }

    def pages(self) -> dict[str, str]:
        page = _page([name.removeprefix("shop_") for name in self.names], 1000 + 600 * self.checks)
        return dict.fromkeys(ENTRY_POINTS, page)


@contextmanager
def timed(phases: dict[str, float]) -> Iterator[None]:
    """Adds to ``phases`` the time spent in each phase's functions, for as long as it lasts."""
    import importlib  # noqa: PLC0415 - the modules of the tree under measurement

    patched: list[tuple[Any, str, Any]] = []
    for phase, places in PHASES.items():
        for module_name, attribute in places:
            try:
                owner: Any = importlib.import_module(module_name)
            except ImportError:  # not in this revision
                continue
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part, None)
            real = getattr(owner, name, None) if owner is not None else None
            if real is None:
                continue
            setattr(owner, name, _wrapped(real, phase, phases))
            patched.append((owner, name, real))
    try:
        yield
    finally:
        for owner, name, real in reversed(patched):
            setattr(owner, name, real)


def _wrapped(real: Callable[..., Any], phase: str, phases: dict[str, float]) -> Callable[..., object]:
    if asyncio.iscoroutinefunction(real):

        async def waited(*arguments: object, **keywords: object) -> object:
            started = time.perf_counter()
            try:
                return await real(*arguments, **keywords)
            finally:
                phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - started

        return waited

    def called(*arguments: object, **keywords: object) -> object:
        started = time.perf_counter()
        try:
            return real(*arguments, **keywords)
        finally:
            phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - started

    return called


def measure(count: int, checks: int) -> dict[str, Any]:
    """The checks of one scenario in this process's tree."""
    import httpx  # noqa: PLC0415

    from autoscaler.daemon import Autoscaler  # noqa: PLC0415
    from autoscaler.settings import load  # noqa: PLC0415
    from autoscaler.state_store import ConfigStateStore  # noqa: PLC0415
    from autoscaler.swarm import Swarm  # noqa: PLC0415
    from tests.unit.fakes import collector_transport, resolver_for  # noqa: PLC0415

    try:
        from autoscaler import records  # noqa: PLC0415
        from autoscaler.records import DaemonState  # noqa: PLC0415

        def publish_snapshot(state: DaemonState) -> object:
            return records.snapshot(state)  # looked up at each call: the phase's timing wraps it

        publish: Callable[[DaemonState], object] | None = publish_snapshot
    except ImportError:  # a revision before the endpoints read a snapshot of their own
        from autoscaler.daemon import DaemonState  # type: ignore[attr-defined, no-redef] # noqa: PLC0415

        publish = None

    scenario = Scenario(count)
    settings = load({"CHECK_INTERVAL": str(CHECK_SECONDS)})
    totals: list[float] = []
    phases: list[dict[str, float]] = []
    writes: list[int] = []
    scale_events = 0

    async def run() -> DaemonState:
        nonlocal scale_events
        pages: dict[str, str] = {}
        reports: dict[str, Any] = {}
        transport = collector_transport(reports, pages)
        async with httpx.AsyncClient(transport=transport) as client:
            daemon = Autoscaler(
                settings,
                Swarm(scenario.api),
                client,
                store=ConfigStateStore(scenario.api, None),
                clock=lambda: scenario.now,
                resolve=resolver_for(COLLECTORS, ENTRY_POINTS),
            )
            for _ in range(checks):
                reports.clear()
                reports.update(scenario.reports())
                pages.clear()
                pages.update(scenario.pages())
                before, spent = scenario.writes, {}
                with timed(spent):
                    started = time.perf_counter()
                    await daemon.check_once()
                    if publish is not None:  # the live loop's copy for the endpoints, part of a check
                        publish(daemon.state)
                    totals.append(time.perf_counter() - started)
                phases.append(spent)
                writes.append(scenario.writes - before)
                scenario.checks += 1
                scenario.now += CHECK_SECONDS
            scale_events = sum(daemon.state.scale_events.values())
            return daemon.state

    state = asyncio.run(run())
    scrapes = _render_times(state, scenario.now, settings.policy.metrics_max_age)
    problems = sorted({kind for kind, _ in state.problems.active})
    return {
        "services": count,
        "check_median_s": statistics.median(totals),
        "check_p95_s": _p95(totals),
        "phases_median_s": {
            phase: statistics.median(spent.get(phase, 0.0) for spent in phases) for phase in PHASES
        },
        "scrape_s": scrapes,
        "raft_writes_per_check": statistics.mean(writes),
        "raft_writes_most_in_a_check": max(writes),
        "scale_events": scale_events,
        "problem_kinds": problems,
    }


def _render_times(state: object, now: float, max_age: float) -> dict[str, float]:
    """Seconds to render /status and /metrics once from the state after the checks."""
    from prometheus_client.registry import CollectorRegistry  # noqa: PLC0415

    from autoscaler.api import routes  # noqa: PLC0415
    from autoscaler.telemetry import AutoscalerCollector  # noqa: PLC0415

    # The endpoints read the state itself in revisions before they read a published one.
    shown: Any = (lambda: state) if "current" in inspect.signature(routes).parameters else state
    registry = CollectorRegistry()
    registry.register(AutoscalerCollector(shown))
    handlers = routes(shown, registry, lambda: now, CHECK_SECONDS, max_age)
    scrapes = {}
    for path in ("/status", "/metrics"):
        started = time.perf_counter()
        handlers[path]()
        scrapes[path] = time.perf_counter() - started
    return scrapes


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def _in_tree(tree: Path, count: int, checks: int) -> dict[str, Any]:
    """``measure`` in a process whose imports come from ``tree``."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, __file__, "--measure", str(count), "--checks", str(checks)],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the measurement in {tree} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _print(count: int, figures: dict[str, dict[str, Any]]) -> None:
    names = list(figures)
    print(f"\n{count} services × {TASKS_PER_SERVICE} tasks, {NODES} nodes:")
    print(f"  {'':32}" + "".join(f"{name:>16}" for name in names))

    def row(label: str, values: list[Any], unit: str = "ms") -> None:
        cells = [f"{value * 1000:>14.1f}{unit}" if unit == "ms" else f"{value:>16}" for value in values]
        print(f"  {label:32}" + "".join(cells))

    row("check, median", [figures[name]["check_median_s"] for name in names])
    row("check, p95", [figures[name]["check_p95_s"] for name in names])
    for phase in PHASES:
        row(f"  {phase}", [figures[name]["phases_median_s"][phase] for name in names])
    for path in ("/status", "/metrics"):
        row(f"render {path}", [figures[name]["scrape_s"][path] for name in names])
    row("Raft writes a check, mean", [f"{figures[name]['raft_writes_per_check']:.1f}" for name in names], "")
    row("Raft writes, most in a check", [figures[name]["raft_writes_most_in_a_check"] for name in names], "")
    row("scale events", [figures[name]["scale_events"] for name in names], "")
    for name in names:
        if figures[name]["problem_kinds"]:
            print(f"  problems in {name}: {', '.join(figures[name]['problem_kinds'])}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default="HEAD~1", help="the git revision to compare with")
    parser.add_argument("--services", type=int, nargs="+", default=[50, 500, 2000])
    parser.add_argument("--checks", type=int, default=10)
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.measure is not None:
        # Only the tree on PYTHONPATH: the working tree's editable install would otherwise
        # supply the modules that tree lacks.
        sys.meta_path[:] = [finder for finder in sys.meta_path if "__editable__" not in repr(finder)]
        from common import logs  # noqa: PLC0415 - from the tree under measurement

        # The daemon's JSON logs, written as live but to nowhere: their cost counts, not their text.
        result, sys.stdout = sys.stdout, Path(os.devnull).open("w")  # noqa: SIM115 - for the process's life
        logs.configure()
        print(json.dumps(measure(arguments.measure, arguments.checks)), file=result)
        return
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", arguments.baseline],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="decision-loop-") as folder:
        baseline = Path(folder)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
        for count in arguments.services:
            figures = {
                f"baseline {revision}": _in_tree(baseline, count, arguments.checks),
                "working tree": _in_tree(ROOT, count, arguments.checks),
            }
            _print(count, figures)


if __name__ == "__main__":
    main()
