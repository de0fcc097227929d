import asyncio
import csv
import heapq
import itertools
import json
import math
import random
import threading
import time
from collections.abc import Awaitable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from autoscaler.backtest.trace import TraceError, from_rows
from loadtest.__main__ import main, parse_arguments
from loadtest.profiles import PROFILES, ReplicaSample, Scaling, scaling_of, unmet
from loadtest.report import per_second, percentile, slow_seconds, summarize
from loadtest.schedule import Replay, arrival_times, replay_of
from loadtest.senders import Outcome, Run, Users, closed_loop, open_loop
from loadtest.watch import ReplicaWatch, live_line, replica_sample


class VirtualClock:
    """Time that passes only when every task waits: the earliest sleeper wakes, and time jumps to it.

    ``oversleep`` makes every sleep that long too long, as on a machine too busy to keep time.
    """

    def __init__(self, oversleep: float = 0.0) -> None:
        self.time = 0.0
        self.oversleep = oversleep
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._sleepers, (self.time + max(seconds, 0) + self.oversleep, next(self._order), wake)
        )
        await wake

    def run(self, main: Awaitable[None]) -> None:
        async def drive() -> None:
            task = asyncio.ensure_future(main)
            while not task.done():
                for _ in range(20):  # let every task that can run reach its next wait
                    await asyncio.sleep(0)
                if self._sleepers and not task.done():
                    self.time, _, wake = heapq.heappop(self._sleepers)
                    wake.set_result(None)
            await task

        asyncio.run(drive())


def trace(counts: list[float], step_minutes: int = 1):
    rows = [(f"2026-01-01 00:{i * step_minutes:02d}:00", str(c)) for i, c in enumerate(counts)]
    return from_rows(rows)


class TestArrivalTimes:
    def test_a_steady_trace_is_evenly_spaced(self):
        """A trace with the same count every minute sends evenly spaced requests at the peak rate."""
        replay = replay_of(trace([60, 60, 60]), speedup=60, peak_rps=10)
        times = list(arrival_times(replay))
        assert (replay.step_seconds, replay.duration, len(times)) == (1.0, 3.0, 30)
        assert times == pytest.approx([0.1 * k for k in range(30)])

    def test_each_step_sends_its_rate_and_the_peak_is_the_peak_rate(self):
        """Each step sends its own rate, scaled so that the busiest is the peak rate, in order."""
        replay = replay_of(trace([10, 20, 5, 0, 20]), speedup=6, peak_rps=20)
        assert replay.rates == (10, 20, 5, 0, 20)
        times = list(arrival_times(replay))
        per_step = [sum(1 for t in times if k * 10 <= t < (k + 1) * 10) for k in range(5)]
        assert per_step == [100, 200, 50, 0, 200]
        assert times == sorted(times)

    def test_requests_sent_before_any_moment_are_the_rate_integral_rounded_up(self):
        """At any moment, the requests sent so far are the integral of the rate, rounded up: no drift."""
        replay = replay_of(trace([3, 7, 1, 9, 4, 0, 2]), speedup=37, peak_rps=13.7)
        times = list(arrival_times(replay))
        for moment in [x * replay.duration / 200 for x in range(201)]:
            integral = sum(
                rate * min(max(moment - k * replay.step_seconds, 0), replay.step_seconds)
                for k, rate in enumerate(replay.rates)
            )
            expected = min(math.ceil(integral - 1e-9), replay.total())
            assert sum(1 for t in times if t < moment - 1e-9) == expected
        assert len(times) == replay.total()

    def test_fractions_of_a_request_carry_over_steps(self):
        """A rate below one request a step still sends, by carrying the fraction over steps."""
        replay = Replay(step_seconds=1.0, rates=(0.25,) * 8)
        assert list(arrival_times(replay)) == pytest.approx([0.0, 4.0])

    def test_a_missing_minute_sends_nothing(self):
        """A minute missing from the trace is a minute without requests, not one skipped over."""
        minutes = ["00:00", "00:01", "00:03", "00:04"]
        replay = replay_of(from_rows([(f"2026-01-01 {m}:00", "60") for m in minutes]), speedup=60, peak_rps=5)
        times = list(arrival_times(replay))
        assert replay.rates == (5, 5, 0, 5, 5)
        assert not [t for t in times if 2 <= t < 3]
        assert len(times) == 20

    @pytest.mark.parametrize(
        ("speedup", "peak"),
        [(0, 10), (-1, 10), (math.nan, 10), (math.inf, 10), (1, 0), (1, math.inf), (1, 1e6)],
    )
    def test_bad_speedups_and_peaks_are_refused(self, speedup, peak):
        """A speed-up or peak rate that is not a positive finite number is refused."""
        with pytest.raises(TraceError):
            replay_of(trace([1, 2]), speedup, peak)

    def test_a_window_without_requests_is_refused(self):
        """A window with no requests at all has no peak to scale to: refused."""
        with pytest.raises(TraceError, match="no requests"):
            replay_of(trace([0, 0, 0]), 1, 10)


def instant(clock: VirtualClock, log: list[float]):
    async def send() -> str:
        log.append(clock.now())
        return "200"

    return send


class TestOpenLoop:
    def test_requests_leave_at_their_times(self):
        """The open loop sends each request at its scheduled time, and the rows show the schedule met."""
        clock, sent = VirtualClock(), []
        run = Run(clock, clock.now())
        replay = replay_of(trace([6, 12, 3, 0, 9]), speedup=30, peak_rps=12)  # 2 s a minute
        times = list(arrival_times(replay))
        clock.run(open_loop(run, instant(clock, sent), times, max_in_flight=100))
        assert sent == pytest.approx(times)
        # Each second sends what its minute of the trace asks for, scaled to 12 at the peak.
        rows = per_second(run.outcomes, 10, [], scheduled=replay.rate_at)
        assert [row.sent for row in rows] == [6, 6, 12, 12, 3, 3, 0, 0, 9, 9]
        assert [row.scheduled for row in rows] == [6, 6, 12, 12, 3, 3, 0, 0, 9, 9]
        assert [o.sent_at for o in run.outcomes] == pytest.approx(times)
        assert (run.late, run.not_sent) == (0, 0)

    def test_slow_answers_do_not_hold_the_schedule(self):
        """Slow answers do not delay the next requests: the schedule is open loop."""
        clock, sent = VirtualClock(), []

        async def slow() -> str:
            sent.append(clock.now())
            await clock.sleep(5.0)  # every answer takes 5 s; a request leaves every 0.1 s
            return "200"

        run = Run(clock, clock.now())
        times = [0.1 * k for k in range(1, 31)]
        clock.run(open_loop(run, slow, times, max_in_flight=100))
        assert sent == pytest.approx(times)
        assert [o.latency for o in run.outcomes] == pytest.approx([5.0] * 30)
        assert run.late == 0

    def test_a_generator_that_falls_behind_says_so(self):
        """Requests sent late are counted, with how far behind the generator fell."""
        clock, sent = VirtualClock(oversleep=0.25), []
        run = Run(clock, clock.now())
        clock.run(open_loop(run, instant(clock, sent), [1.0, 2.0, 3.0], max_in_flight=100))
        assert sent == pytest.approx([1.25, 2.25, 3.25])
        assert run.late == 3
        assert run.most_behind == pytest.approx(0.25)

    def test_requests_beyond_the_in_flight_bound_are_counted_not_sent(self):
        """Beyond the in-flight bound requests are not sent, and are counted as not sent."""
        clock = VirtualClock()

        async def hung() -> str:
            await clock.sleep(100)
            return "504"

        run = Run(clock, clock.now())
        clock.run(open_loop(run, hung, [0.1 * k for k in range(1, 11)], max_in_flight=3))
        assert (len(run.outcomes), run.not_sent) == (3, 7)


class TestClosedLoop:
    def test_users_ramp_up_think_and_stop_at_the_duration(self):
        """Users start over the ramp-up, think between requests, and stop at the duration."""
        clock, sent = VirtualClock(), []
        run = Run(clock, clock.now())
        users = Users(count=4, duration=20, think_time=2.0, ramp_up=4)
        seeded = random.Random(7)  # noqa: S311 - a seeded generator for a repeatable test
        clock.run(closed_loop(run, instant(clock, sent), users, max_requests=1000, rng=seeded))
        # One user starts a second; each thinks 1 to 3 s, so the first answer's next comes after 1 s.
        assert {0.0, 1.0, 2.0, 3.0} <= set(sent)
        assert sorted(sent)[:2] == [0.0, 1.0]
        assert max(sent) < 20
        # Each user thinks 1 to 3 s: from its start to 20 s, 6 to 20 requests; 4 users.
        assert 4 * 6 <= len(sent) <= 4 * 20

    def test_a_user_waits_for_its_answer(self):
        """A user sends its next request only after its answer: the loop is closed."""
        clock, sent = VirtualClock(), []

        async def slow() -> str:
            sent.append(clock.now())
            await clock.sleep(3.0)
            return "200"

        run = Run(clock, clock.now())
        clock.run(closed_loop(run, slow, Users(count=1, duration=10), max_requests=100))
        assert sent == [0.0, 3.0, 6.0, 9.0]

    def test_stops_at_the_request_bound(self):
        """A closed-loop run stops at the request bound whatever the users would do."""
        clock, sent = VirtualClock(), []
        run = Run(clock, clock.now())
        clock.run(
            closed_loop(
                run, instant(clock, sent), Users(count=5, duration=100, think_time=1), max_requests=12
            )
        )
        assert len(run.outcomes) == 12


class TestSummarize:
    def test_percentiles_are_nearest_rank(self):
        """Percentiles are nearest rank, the way the report's readers compute them by hand."""
        values = [float(v) for v in range(1, 101)]
        assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 1.0)) == (50, 95, 100)

    def test_counts_errors_and_statuses(self):
        """Every answer but a 2xx is an error, and each status or exception is counted by name."""
        outcomes = [
            Outcome(0.010, "200"),
            Outcome(0.020, "200"),
            Outcome(0.5, "503"),
            Outcome(1.0, "ConnectError"),
        ]
        summary = summarize(outcomes, duration=2.0)
        assert (summary.requests, summary.errors, summary.requests_per_second) == (4, 2, 2.0)
        assert summary.statuses == {"200": 2, "503": 1, "ConnectError": 1}
        assert summary.latency_ms["p50"] == 20.0


class TestPerSecond:
    def test_rows_by_send_second_with_the_replicas_at_each_seconds_end(self):
        """Each second's row counts the requests sent in it, with the replicas as of the second's end."""
        outcomes = [
            Outcome(0.010, "200", sent_at=0.1),
            Outcome(0.030, "200", sent_at=0.5),
            Outcome(0.500, "503", sent_at=1.2),
            Outcome(0.020, "200", sent_at=3.7),
        ]
        samples = [ReplicaSample(0.5, 2, 2), ReplicaSample(2.2, 3, 2), ReplicaSample(3.1, 3, 3)]
        rows = per_second(outcomes, 5, samples, scheduled=lambda t: 10 * t)
        assert [(r.second, r.sent, r.ok, r.errors) for r in rows] == [
            (0, 2, 2, 0),
            (1, 1, 0, 1),
            (2, 0, 0, 0),
            (3, 1, 1, 0),
            (4, 0, 0, 0),
        ]
        assert [(r.desired_replicas, r.replicas) for r in rows] == [(2, 2), (2, 2), (3, 2), (3, 3), (3, 3)]
        assert (rows[0].p50_ms, rows[0].p99_ms, rows[2].p95_ms) == (10.0, 30.0, None)
        assert [r.scheduled for r in rows] == [5.0, 15.0, 25.0, 35.0, 45.0]

    def test_seconds_before_the_first_replica_reading_have_none(self):
        """Seconds before the first replica reading show none rather than a guess."""
        rows = per_second([], 2, [ReplicaSample(1.5, 4, None)])
        assert [(r.desired_replicas, r.replicas, r.scheduled) for r in rows] == [
            (None, None, None),
            (4, None, None),
        ]


class TestSlowSeconds:
    def test_counts_the_seconds_whose_p95_is_above_one_second(self):
        """Seconds without requests do not count; exactly 1 s is not above it."""
        outcomes = [
            Outcome(0.2, "200", sent_at=0.5),
            Outcome(1.5, "200", sent_at=1.1),
            Outcome(1.0, "200", sent_at=2.2),
            Outcome(3.0, "200", sent_at=4.9),
            Outcome(0.1, "200", sent_at=5.0),
        ]
        slow = slow_seconds(per_second(outcomes, 7, []))
        assert (slow.count, slow.first, slow.last) == (2, 1, 4)

    def test_a_run_served_well_has_none(self):
        """A run whose answers are all fast has no slow seconds."""
        slow = slow_seconds(per_second([Outcome(0.05, "200", sent_at=0.5)], 3, []))
        assert (slow.count, slow.first, slow.last) == (0, None, None)


class TestProfiles:
    def test_the_three_profiles_as_stated(self):
        """The light, medium and heavy profiles are the users, durations and replicas the README states."""
        stated = {name: (p.users, p.duration, p.most_replicas) for name, p in PROFILES.items()}
        assert stated == {
            "light": (25, 120, (2, 2)),
            "medium": (50, 180, (3, 5)),
            "heavy": (100, 300, (8, 10)),
        }
        assert all(p.think_time > 0 and p.ramp_up > 0 for p in PROFILES.values())

    def test_scaling_over_a_run(self):
        """The most replicas, when they were reached, and when the count came back to its floor after the
        load."""
        samples = [ReplicaSample(t, d, d) for t, d in [(0, 2), (30, 3), (60, 5), (90, 5), (200, 4), (400, 2)]]
        assert scaling_of(samples, load_end=180, floor=2) == Scaling(most=5, reached_most_at=60, back_at=220)
        assert scaling_of(samples[:5], load_end=180, floor=2).back_at is None
        assert scaling_of([], 10, 2) == Scaling(None, None, None)

    def test_expectations(self):
        """A profile's expectations name what was not met: the highest count, or no return to the floor."""
        heavy = PROFILES["heavy"]
        assert unmet(heavy, Scaling(9, 200, 100), waited_for_scale_down=True) == []
        assert unmet(heavy, Scaling(6, 200, None), waited_for_scale_down=False) == [
            "the highest replica count was 6, expected 8-10"
        ]
        assert unmet(PROFILES["light"], Scaling(3, 20, None), waited_for_scale_down=True) == [
            "the highest replica count was 3, expected 2",
            "the replicas did not come back down before the wait ended",
        ]
        assert unmet(heavy, Scaling(None, None, None), waited_for_scale_down=False) != []


class TestReplicaWatch:
    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            ({"services": {"stack_demo-api": {"desired_replicas": 3, "ready_replicas": 2}}}, (3, 2)),
            ({"services": {"demo-api": {"desired_replicas": 3}}}, (3, None)),
            ({"services": {"demo-api": {"desired_replicas": 3, "ready_replicas": -1}}}, (3, None)),
            ({"services": {"other": {"desired_replicas": 3}}}, None),
            ({"services": {"demo-api": {"desired_replicas": True}}}, None),
            ({"services": {"demo-api": {"desired_replicas": 2.5}}}, None),
            ({"services": {"demo-api": {"desired_replicas": -2}}}, None),
            ({"services": {"demo-api": {"config_error": "x"}}}, None),
            ({"services": ["demo-api"]}, None),
            ([], None),
            (None, None),
        ],
    )
    def test_replicas_from_status(self, status, expected):
        """The replicas set and ready are read from /status; anything malformed gives no sample."""
        sample = replica_sample(status, "demo-api", 7.0)
        assert (None if sample is None else (sample.desired, sample.ready)) == expected

    def test_a_failed_read_is_shown_and_the_next_good_one_clears_it(self):
        """A failed read of /status is shown until a good one clears it."""
        watch = ReplicaWatch("http://autoscaler/status", "demo-api")
        watch.read_once(1.0, ConnectionError())
        assert watch.problem == "http://autoscaler/status: ConnectionError"
        watch.read_once(2.0, {"services": {}})
        assert watch.problem == "http://autoscaler/status names no replicas of demo-api"
        watch.read_once(3.0, {"services": {"demo-api": {"desired_replicas": 4, "ready_replicas": 4}}})
        assert (watch.problem, watch.latest()) == (None, ReplicaSample(3.0, 4, 4))

    def test_the_live_line(self):
        """The live line shows progress, rate, percentiles, errors, requests in flight and replicas."""
        clock = VirtualClock()
        clock.time = 12.0
        run = Run(clock, 0.0)
        run.record(Outcome(0.05, "200", sent_at=9.0))
        run.record(Outcome(0.2, "503", sent_at=10.0))
        run.in_flight = 3
        line = live_line(run, 60, ReplicaSample(11, 4, 3))
        expected = "12/60 s 0.4 req/s p50 50 ms p95 200 ms errors 1 in flight 3 replicas 3/4"
        assert line.split() == expected.split()


class FakeAutoscaler(ThreadingHTTPServer):
    """Answers /status with the demo API at 3 replicas."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"services": {"s_demo-api": {"desired_replicas": 3, "ready_replicas": 3}}})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *_: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def autoscaler() -> Iterator[str]:
    server = FakeAutoscaler()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open() as file:
        return list(csv.DictReader(file))


class TestReportFiles:
    def test_a_closed_loop_run_leaves_its_seconds_summary_and_picture(self, demo_api, autoscaler, tmp_path):
        """A closed-loop run against a real demo API leaves its per-second rows, its summary and its
        picture."""
        out = tmp_path / "run"
        arguments = ["--target", demo_api, "--path", "/api/work?ms=1", "--users", "3", "--duration", "3"]
        code = main(
            [*arguments, "--think-time", "0.05", "--autoscaler", autoscaler, "--out", str(out), "--quiet"]
        )
        assert code == 0
        summary = json.loads((out / "summary.json").read_text())
        rows = rows_of(out / "per_second.csv")
        assert list(rows[0]) == [
            "second",
            "scheduled",
            "sent",
            "ok",
            "errors",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "replicas",
            "desired_replicas",
        ]
        assert [int(row["second"]) for row in rows] == list(range(len(rows)))
        assert len(rows) in {3, 4}
        assert sum(int(row["sent"]) for row in rows) == summary["requests"] > 0
        assert sum(int(row["ok"]) for row in rows) == summary["requests"] - summary["errors"]
        assert {row["scheduled"] for row in rows} == {""}
        assert {row["replicas"] for row in rows[1:]} == {"3"}
        assert summary["replicas"]["most"] == 3
        assert summary["p95_above_1s"] == {"seconds": 0, "first_second": None, "last_second": None}
        assert summary["users"] == 3
        assert (out / "load.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def test_a_replay_sends_its_schedule_and_reports_it(self, demo_api, autoscaler, tmp_path):
        """A replay sends its schedule against a real demo API and reports it beside what was sent."""
        trace_file = tmp_path / "trace.csv"
        trace_file.write_text("period,count\n2026-01-01 00:00:00,30\n2026-01-01 00:01:00,60\n")
        out = tmp_path / "replay"
        code = main(
            [
                "--target",
                demo_api,
                "--path",
                "/api/work?ms=1",
                "--replay",
                str(trace_file),
                "--speedup",
                "60",
                "--peak-rps",
                "20",
                "--autoscaler",
                autoscaler,
                "--out",
                str(out),
                "--quiet",
            ]
        )
        assert code == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["replay"]["scheduled_requests"] == 30 == summary["requests"]
        assert summary["replay"]["not_sent"] == 0
        rows = rows_of(out / "per_second.csv")
        assert [float(row["scheduled"]) for row in rows[:2]] == [10.0, 20.0]
        assert sum(int(row["sent"]) for row in rows) == 30


class TestArguments:
    @pytest.mark.parametrize(
        "arguments",
        [
            ["--users", "0"],
            ["--duration", "0"],
            ["--duration", "99999"],
            ["--think-time", "-1"],
            ["--duration", "10", "--ramp-up", "11"],
            ["--timeout", "nan"],
            ["--profile", "extreme"],
            ["--max-slow-seconds", "45"],
            ["--profile", "heavy", "--max-slow-seconds", "-1"],
            ["--begin-at", "0"],
        ],
    )
    def test_unbounded_or_bad_runs_are_refused(self, arguments):
        """A run without a bound, or with a bad value, is refused before anything is sent."""
        with pytest.raises(SystemExit):
            parse_arguments(arguments)

    def test_a_profile_sets_what_is_not_given(self):
        """A profile fills in only what the arguments leave out."""
        arguments = parse_arguments(["--profile", "medium", "--users", "7"])
        assert (arguments.users, arguments.duration, arguments.think_time) == (
            7,
            180,
            PROFILES["medium"].think_time,
        )
        assert arguments.path == PROFILES["medium"].path

    def test_a_replay_waits_for_its_begin_at(self, demo_api, tmp_path):
        """With --begin-at the replay's first request leaves at that wall time, not before."""
        trace_file = tmp_path / "t.csv"
        trace_file.write_text("period,count\n2026-01-01 00:00:00,5\n2026-01-01 00:00:01,5\n")
        record, begin = tmp_path / "r", time.time() + 1.5
        main(
            [
                *("--target", demo_api, "--path", "/api/work?ms=1", "--quiet", "--record", str(record)),
                *("--replay", str(trace_file), "--peak-rps", "2", "--begin-at", f"{begin}"),
                *("--autoscaler", "http://127.0.0.1:9"),
            ]
        )
        rows = record.read_text().splitlines()[1:]
        assert rows
        assert min(float(row.split(",")[0]) for row in rows) >= begin

    def test_a_replay(self, tmp_path):
        """A replay's arguments become its schedule: step length and rates."""
        trace_file = tmp_path / "t.csv"
        trace_file.write_text("period,count\n2026-01-01 00:00:00,5\n2026-01-01 00:01:00,10\n")
        arguments = parse_arguments(["--replay", str(trace_file), "--speedup", "6", "--peak-rps", "4"])
        assert arguments.schedule == Replay(step_seconds=10.0, rates=(2.0, 4.0))
        assert arguments.load is None

    @pytest.mark.parametrize(
        "extra",
        [
            ["--users", "5"],
            ["--profile", "light"],
            [],  # no --peak-rps
            ["--peak-rps", "10", "--speedup", "0.01"],  # 200 minutes
            ["--peak-rps", "10", "--start", "2026-02-01 00:00:00"],
            ["--peak-rps", "10", "--begin-at", f"{time.time() + 3600:.0f}"],
            ["--peak-rps", "10", "--begin-at", "nan"],
        ],
    )
    def test_bad_replays_are_refused(self, tmp_path, extra):
        """A replay mixed with closed-loop options, without a peak rate, too long, starting past the
        trace, or to begin more than a minute ahead is refused."""
        trace_file = tmp_path / "t.csv"
        trace_file.write_text("period,count\n2026-01-01 00:00:00,5\n2026-01-01 00:01:00,10\n")
        with pytest.raises(SystemExit):
            parse_arguments(["--replay", str(trace_file), *extra])

    def test_the_record_has_every_request(self, demo_api, tmp_path):
        """--record writes one row per request sent, with its status, time and latency."""
        started = time.time()
        main(
            [
                *("--target", demo_api, "--path", "/api/work?ms=1", "--max-requests", "12", "--quiet"),
                *("--record", str(tmp_path / "r"), "--autoscaler", "http://127.0.0.1:9"),
            ]
        )
        rows = rows_of(tmp_path / "r")
        assert len(rows) == 12
        assert all(row["status"] == "200" for row in rows)
        assert all(started <= float(row["finished_at"]) <= time.time() for row in rows)
        assert all(0 < float(row["latency_ms"]) < 5000 for row in rows)
