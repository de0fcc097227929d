"""``python -m loadtest``: load an HTTP endpoint and report throughput, latency, errors and replicas.

Closed loop by default: ``--users`` users each send a request, wait for the answer,
think for ``--think-time`` seconds and send the next. ``--profile`` picks one of three
stated loads and checks what the autoscaler did against its expectation. ``--replay``
sends a request-rate trace open loop instead: on schedule, answered or not.

Every run is bounded: it stops after ``--duration`` seconds (or the replay's length) or
``--max-requests`` requests, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from autoscaler.backtest import trace as traces
from loadtest.profiles import PROFILES, Profile, scaling_of, unmet
from loadtest.report import (
    PER_SECOND_FILE,
    PLOT_FILE,
    SUMMARY_FILE,
    Second,
    Summary,
    per_second,
    plot,
    slow_seconds,
    summarize,
    write_per_second,
    write_summary,
)
from loadtest.schedule import Replay, arrival_times, replay_of
from loadtest.senders import Outcome, RealClock, Run, Users, closed_loop, open_loop
from loadtest.watch import ReplicaWatch, show_live

MAX_DURATION = 3600.0
"""Longest run accepted, in seconds."""
MOST_BEGIN_DELAY = 60.0
"""Seconds ahead that ``--begin-at`` may be: the time ./stress-test.sh needs to label the service."""

DEFAULTS = {"users": 10, "duration": 30.0, "path": "/api/work?ms=20", "think_time": 0.0, "ramp_up": 0.0}
"""The closed-loop settings when neither an option nor a profile gives them."""


RECORD_FIELDS = ("finished_at", "latency_ms", "status")


def write_record(outcomes: list[Outcome], path: Path) -> None:
    """One row per request: when it ended (seconds since the epoch), its latency and status."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(RECORD_FIELDS)
        for outcome in outcomes:
            writer.writerow((f"{outcome.finished_at:.6f}", f"{outcome.latency * 1000:.3f}", outcome.status))


def render_table(summary: Summary, url: str, load: str) -> str:
    latency = summary.latency_ms
    statuses = ", ".join(f"{status}: {count}" for status, count in summary.statuses.items())
    return "\n".join(
        [
            f"target        {url}",
            f"load          {load}",
            f"duration      {summary.duration_seconds:.1f} s",
            f"requests      {summary.requests}",
            f"throughput    {summary.requests_per_second:.1f} req/s",
            (
                f"latency (ms)  p50 {latency['p50']:.1f}  p95 {latency['p95']:.1f}  "
                f"p99 {latency['p99']:.1f}  max {latency['max']:.1f}"
            ),
            f"errors        {summary.errors}",
            f"statuses      {statuses}",
        ]
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    parser.add_argument("--target", default="http://127.0.0.1:80", help="base URL (default %(default)s)")
    parser.add_argument("--path", help=f"path and query (default {DEFAULTS['path']})")
    parser.add_argument("--users", type=int, help=f"concurrent users (default {DEFAULTS['users']})")
    parser.add_argument("--duration", type=float, help=f"seconds (default {DEFAULTS['duration']:g})")
    parser.add_argument("--think-time", type=float, help="a user's mean seconds between requests (default 0)")
    parser.add_argument("--ramp-up", type=float, help="seconds over which the users start (default 0)")
    parser.add_argument(
        "--profile", choices=sorted(PROFILES), help="a stated load, checked against its expectation"
    )
    parser.add_argument(
        "--replay", type=Path, help="send this request-rate trace (timestamp,count) open loop"
    )
    parser.add_argument("--start", help="--replay: first step, as in the file (YYYY-MM-DD HH:MM:SS)")
    parser.add_argument("--end", help="--replay: end of the window (exclusive)")
    parser.add_argument("--speedup", type=float, default=1.0, help="--replay: time compression (default 1)")
    parser.add_argument("--peak-rps", type=float, help="--replay: requests per second at the trace's peak")
    parser.add_argument(
        "--begin-at",
        type=float,
        help="--replay: send the first request at this wall time (seconds since the epoch), at most "
        f"{MOST_BEGIN_DELAY:g} s ahead",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=1000,
        help="--replay: unanswered requests at most; more are counted as not sent (default %(default)s)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=1_000_000,
        help="stop after this many requests (default %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    parser.add_argument(
        "--autoscaler",
        default="http://127.0.0.1:8080",
        help="the autoscaler, for the replicas (default %(default)s)",
    )
    parser.add_argument("--service", default="demo-api", help="the service whose replicas to show")
    parser.add_argument(
        "--wait-scale-down",
        action="store_true",
        help="after the load, wait until the replicas are back where they started",
    )
    parser.add_argument(
        "--scale-down-timeout",
        type=float,
        default=900.0,
        help="seconds to wait for that (default %(default)s)",
    )
    parser.add_argument(
        "--max-slow-seconds",
        type=float,
        help="--profile: also expect the p95 latency above 1 s in at most this many seconds",
    )
    parser.add_argument("--out", type=Path, help="write per_second.csv, summary.json and load.png here")
    parser.add_argument("--quiet", action="store_true", help="no live line")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--record", type=Path, help="write every request (end time, latency in ms, status) to this CSV file"
    )
    return parser


CLOSED_LOOP_OPTIONS = ("users", "duration", "think_time", "ramp_up")


def _check_replay(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> Replay:
    if arguments.profile or any(getattr(arguments, name) is not None for name in CLOSED_LOOP_OPTIONS):
        parser.error("--replay sets its own load: no --profile, --users, --duration, --think-time, --ramp-up")
    if arguments.peak_rps is None:
        parser.error("--replay needs --peak-rps")
    if arguments.max_in_flight < 1:
        parser.error("--max-in-flight must be at least 1")
    try:
        schedule = replay_of(
            traces.read(arguments.replay, arguments.start, arguments.end),
            arguments.speedup,
            arguments.peak_rps,
        )
    except (OSError, traces.TraceError) as error:
        parser.error(f"--replay {arguments.replay}: {error}")
    if schedule.duration > MAX_DURATION:
        parser.error(
            f"the replay lasts {schedule.duration:.0f} s: more than {MAX_DURATION:g}; "
            "raise --speedup or shorten the window"
        )
    begin_at = arguments.begin_at
    if begin_at is not None and not (math.isfinite(begin_at) and begin_at <= time.time() + MOST_BEGIN_DELAY):
        parser.error(f"--begin-at must be a time at most {MOST_BEGIN_DELAY:g} s ahead")
    return schedule


def _check_users(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> Users:
    """The closed-loop users: each option given, else the profile's, else the default."""
    profile: Profile | None = PROFILES[arguments.profile] if arguments.profile else None
    for name in (*CLOSED_LOOP_OPTIONS, "path"):
        if getattr(arguments, name) is None:
            setattr(arguments, name, getattr(profile, name) if profile else DEFAULTS[name])
    if arguments.users < 1:
        parser.error("--users must be at least 1")
    if not 0 < arguments.duration <= MAX_DURATION:
        parser.error(f"--duration must be in (0, {MAX_DURATION:g}]")
    if not (0 <= arguments.think_time <= MAX_DURATION and 0 <= arguments.ramp_up <= arguments.duration):
        parser.error("--think-time must be in [0, 3600] and --ramp-up in [0, --duration]")
    return Users(arguments.users, arguments.duration, arguments.think_time, arguments.ramp_up)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, checked; ``schedule`` holds the replay and ``load`` the users, whichever is asked for."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    arguments.schedule, arguments.load = None, None
    if arguments.replay is not None:
        arguments.schedule = _check_replay(parser, arguments)
        arguments.path = arguments.path or DEFAULTS["path"]
    else:
        if arguments.begin_at is not None:
            parser.error("--begin-at goes with --replay")
        arguments.load = _check_users(parser, arguments)
    if arguments.max_requests < 1:
        parser.error("--max-requests must be at least 1")
    if not (math.isfinite(arguments.timeout) and arguments.timeout > 0):
        parser.error("--timeout must be a positive number of seconds")
    if not 0 < arguments.scale_down_timeout <= MAX_DURATION:
        parser.error(f"--scale-down-timeout must be in (0, {MAX_DURATION:g}]")
    if arguments.max_slow_seconds is not None and not (
        arguments.profile and 0 <= arguments.max_slow_seconds <= MAX_DURATION
    ):
        parser.error(f"--max-slow-seconds goes with --profile and must be in [0, {MAX_DURATION:g}]")
    return arguments


@dataclass(frozen=True)
class Result:
    run: Run
    load_seconds: float
    """Seconds from the start to the last answer of the load."""
    watch: ReplicaWatch


async def execute(arguments: argparse.Namespace, url: str) -> Result:
    if arguments.begin_at is not None:
        # The replay's clock on the service's label starts then (see ./stress-test.sh).
        await asyncio.sleep(max(0.0, arguments.begin_at - time.time()))
    clock = RealClock()
    run = Run(clock, clock.now())
    schedule: Replay | None = arguments.schedule
    total = schedule.duration if schedule else arguments.duration
    connections = arguments.max_in_flight if schedule else arguments.users
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    watch = ReplicaWatch(arguments.autoscaler.rstrip("/") + "/status", arguments.service)
    stop = asyncio.Event()
    async with (
        httpx.AsyncClient(limits=limits, timeout=arguments.timeout) as client,
        httpx.AsyncClient() as status_client,
    ):

        async def send() -> str:
            try:
                return str((await client.get(url)).status_code)
            except httpx.HTTPError as error:
                return type(error).__name__

        background = [asyncio.create_task(watch.watch(run, status_client, stop), name="replica watch")]
        if not arguments.quiet:
            background.append(asyncio.create_task(show_live(run, total, watch, stop), name="live line"))
        if schedule is not None:
            times = itertools.islice(arrival_times(schedule), arguments.max_requests)
            await open_loop(run, send, times, max_in_flight=arguments.max_in_flight)
        else:
            await closed_loop(run, send, arguments.load, max_requests=arguments.max_requests)
        load_seconds = run.elapsed()
        if arguments.wait_scale_down:
            await _wait_scale_down(watch, load_seconds, arguments.scale_down_timeout)
        stop.set()
        await asyncio.gather(*background)
    return Result(run, load_seconds, watch)


async def _wait_scale_down(watch: ReplicaWatch, load_seconds: float, most_seconds: float) -> None:
    """Until the replicas set are back to those at the start, or ``most_seconds``."""
    for _ in range(math.ceil(most_seconds)):
        first, latest = watch.samples[:1], watch.latest()
        if first and latest and latest.elapsed >= load_seconds and latest.desired <= first[0].desired:
            return
        await asyncio.sleep(1)


def seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def report_of(
    arguments: argparse.Namespace, url: str, result: Result, summary: Summary, rows: list[Second]
) -> dict[str, Any]:
    run, samples = result.run, result.watch.samples
    slow = slow_seconds(rows)
    report: dict[str, Any] = {
        "target": url,
        **asdict(summary),
        "p95_above_1s": {"seconds": slow.count, "first_second": slow.first, "last_second": slow.last},
    }
    if arguments.schedule is not None:
        report["replay"] = {
            "trace": str(arguments.replay),
            "start": arguments.start,
            "end": arguments.end,
            "speedup": arguments.speedup,
            "peak_rps": arguments.peak_rps,
            "scheduled_requests": arguments.schedule.total(),
            "late_requests": run.late,
            "most_behind_seconds": round(run.most_behind, 3),
            "not_sent": run.not_sent,
        }
    else:
        report["users"] = arguments.users
        report["think_time_seconds"] = arguments.think_time
    scaling = scaling_of(samples, result.load_seconds, samples[0].desired if samples else 0)
    report["replicas"] = {
        "service": arguments.service,
        "at_start": samples[0].desired if samples else None,
        "most": scaling.most,
        "reached_most_after_seconds": seconds(scaling.reached_most_at),
        "back_after_load_seconds": seconds(scaling.back_at),
    }
    if arguments.profile:
        failures = unmet(PROFILES[arguments.profile], scaling, arguments.wait_scale_down)
        if arguments.max_slow_seconds is not None and slow.count > arguments.max_slow_seconds:
            failures.append(
                f"p95 was above 1 s for {slow.count} s, at most {arguments.max_slow_seconds:g} expected"
            )
        report["profile"] = {
            "name": arguments.profile,
            "expected_most_replicas": list(PROFILES[arguments.profile].most_replicas),
            "met": not failures,
            "unmet": failures,
        }
    return report


def seconds_of(arguments: argparse.Namespace, result: Result) -> list[Second]:
    schedule: Replay | None = arguments.schedule
    return per_second(
        result.run.outcomes,
        math.ceil(result.run.elapsed()),
        result.watch.samples,
        schedule.rate_at if schedule else None,
    )


def write_out(
    directory: Path, arguments: argparse.Namespace, rows: list[Second], report: dict[str, Any]
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    schedule: Replay | None = arguments.schedule
    write_per_second(directory / PER_SECOND_FILE, rows)
    write_summary(directory / SUMMARY_FILE, report)
    load = (
        f"replay of {arguments.replay.name} ×{arguments.speedup:g}, peak {arguments.peak_rps:g} req/s"
        if schedule
        else f"{arguments.profile or 'closed loop'}: {arguments.users} users, {arguments.path}"
    )
    plot(directory / PLOT_FILE, rows, load)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    url = arguments.target.rstrip("/") + arguments.path
    result = asyncio.run(execute(arguments, url))
    if arguments.record is not None:
        write_record(result.run.outcomes, arguments.record)
    summary = summarize(result.run.outcomes, result.load_seconds)
    rows = seconds_of(arguments, result)
    report = report_of(arguments, url, result, summary, rows)
    if arguments.out is not None:
        write_out(arguments.out, arguments, rows, report)
    if arguments.json:
        print(json.dumps(report, indent=2))
    else:
        load = "replay" if arguments.schedule else f"{arguments.users} users"
        print(render_table(summary, url, load))
        replicas = report["replicas"]
        print(f"replicas      most {replicas['most']} (after {replicas['reached_most_after_seconds']} s)")
        slow = report["p95_above_1s"]
        print(
            f"p95 above 1 s {slow['seconds']} s"
            + (f" (from {slow['first_second']} s to {slow['last_second']} s)" if slow["seconds"] else "")
        )
        if "profile" in report:
            verdict = (
                "met" if report["profile"]["met"] else "NOT met: " + "; ".join(report["profile"]["unmet"])
            )
            print(f"profile       {arguments.profile}: {verdict}")
    return 0 if report.get("profile", {}).get("met", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
