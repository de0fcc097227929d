"""The data tier on the real swarm: PostgreSQL and Redis replicas follow their load, and nothing is lost."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import docker.models.containers
import httpx
import pytest

from tests.e2e.conftest import remove_volume
from tests.e2e.support import DEPLOY, ROOT, Background, Stack, deploy_environment, keep, wait_until
from tests.e2e.test_monitoring import query

pytestmark = pytest.mark.e2e

REPORT = ROOT / "build" / "e2e-data-tier.json"
SEED_ROWS = 100_000
"""Rows in the items table: a search reads them all, a few tens of milliseconds of a replica's CPU."""


def containers(stack: Stack, service: str) -> list[docker.models.containers.Container]:
    """The running containers of one of the stack's services."""
    label = f"com.docker.swarm.service.name={stack.service(service)}"
    return list(stack.docker.containers.list(filters={"label": label, "status": "running"}))


def psql(container: docker.models.containers.Container, query: str) -> tuple[int, list[str]]:
    """psql's status and lines for ``query`` in the app database, as docker exec -u postgres runs it."""
    result = container.exec_run(["psql", "-At", "-d", "app", "-c", query], user="postgres")
    return result.exit_code, [line for line in result.output.decode().splitlines() if line]


def sql(container: docker.models.containers.Container, query: str) -> list[str]:
    """What psql prints for ``query``; the test fails if psql does."""
    status, lines = psql(container, query)
    assert status == 0, lines
    return lines


def replicas(stack: Stack, service: str) -> int:
    spec = stack.docker.api.inspect_service(stack.service(service))["Spec"]
    return int(spec["Mode"]["Replicated"]["Replicas"])


def applications(container: docker.models.containers.Container) -> Counter[str]:
    """The demo API's connections to an instance, by pool (demo-api-read, demo-api-write); none yet: none."""
    query = "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'demo-api%'"
    status, lines = psql(container, query)
    return Counter(lines) if status == 0 else Counter()


class Traffic(Background):
    """Reads of one kind from several users, and a writer whose every item is kept to be read back."""

    def __init__(self, stack: Stack, read_path: Callable[[], str], users: int) -> None:
        self.stack, self.read_path, self.users = stack, read_path, users
        self.statuses: Counter[int | str] = Counter()
        self.written: dict[int, str] = {}
        self.write_failures: Counter[int | str] = Counter()
        self.lock = threading.Lock()

    def loops(self) -> list[Callable[[], None]]:
        return [self.read for _ in range(self.users)] + [self.write]

    def read(self) -> None:
        with httpx.Client(base_url=self.stack.entry, timeout=30) as client:
            while not self.stopped.is_set():
                try:
                    status: int | str = client.get(self.read_path()).status_code
                except httpx.HTTPError as error:
                    status = type(error).__name__
                with self.lock:
                    self.statuses[status] += 1

    def write(self) -> None:
        with httpx.Client(base_url=self.stack.entry, timeout=30) as client:
            while not self.stopped.is_set():
                value = uuid.uuid4().hex
                try:
                    answer = client.post("/api/items", json={"value": value})
                except httpx.HTTPError as error:
                    self.write_failures[type(error).__name__] += 1
                    continue
                if answer.status_code == 201:
                    self.written[answer.json()["id"]] = value
                else:
                    self.write_failures[answer.status_code] += 1
                self.stopped.wait(0.2)

    def failed(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 200)


def lost(stack: Stack, written: dict[int, str]) -> list[int]:
    """Items that do not read back with the value written."""
    with httpx.Client(base_url=stack.entry, timeout=30) as client:
        return [
            item
            for item, value in written.items()
            if client.get(f"/api/items/{item}").json().get("value") != value
        ]


@pytest.fixture(scope="module")
def data(stack: Stack) -> Stack:
    """The stack with its items table filled, written on the primary as an operator would."""
    wait_until(
        "the demo API writing",
        lambda: httpx.post(stack.entry + "/api/items", json={"value": "first"}, timeout=10).status_code,
        lambda status: status == 201,
        120,
    )
    (primary,) = containers(stack, "postgres")
    sql(primary, f"INSERT INTO items (value) SELECT md5(g::text) FROM generate_series(1, {SEED_ROWS}) g")  # noqa: S608 - a constant
    return stack


class TestPostgresReplicas:
    def test_follow_the_read_load_spread_reads_and_lose_nothing(self, data: Stack) -> None:
        """0 → replicas on connection load and back to 0; one replica killed on the way; no read fails."""
        stack = data
        (primary,) = containers(stack, "postgres")
        served: dict[str, Counter[str]] = {}
        started = time.monotonic()
        with Traffic(stack, lambda: "/api/items?search=abc", users=12) as traffic:
            wait_until(
                "a PostgreSQL replica", lambda: replicas(stack, "postgres-replica"), lambda n: n >= 1, 180
            )
            scaled_up_after = time.monotonic() - started
            first = wait_until(
                "a replica taking reads",
                lambda: next(
                    (c for c in containers(stack, "postgres-replica") if applications(c)["demo-api-read"]),
                    None,
                ),
                bool,
                180,
            )
            serving_after = time.monotonic() - started
            served[first.name] = applications(first)
            primary_during = applications(primary)
            # A replica's container dies under the read load: its reads go elsewhere.
            first.kill()
            killed_at = time.monotonic()
            while time.monotonic() - killed_at < 30:
                for container in containers(stack, "postgres-replica"):
                    if applications(container)["demo-api-read"]:
                        served.setdefault(container.name, applications(container))
                time.sleep(2)
            most = replicas(stack, "postgres-replica")
        statuses, written, write_failures = (
            dict(traffic.statuses),
            dict(traffic.written),
            dict(traffic.write_failures),
        )
        wait_until(
            "the replicas back to 0", lambda: replicas(stack, "postgres-replica"), lambda n: n == 0, 300
        )
        back_after = time.monotonic() - started
        missing = lost(stack, written)
        keep(
            REPORT,
            postgres_scaled_up_after_s=round(scaled_up_after, 1),
            postgres_replica_serving_after_s=round(serving_after, 1),
            postgres_replicas_most=most,
            postgres_back_to_0_after_s=round(back_after, 1),
            postgres_read_statuses=statuses,
            postgres_items_written=len(written),
            postgres_write_failures=write_failures,
            postgres_items_lost=len(missing),
            postgres_replicas_that_served={name: dict(counts) for name, counts in served.items()},
            postgres_primary_connections_during_load=dict(primary_during),
        )
        assert traffic.failed() == 0, statuses
        assert write_failures == {}
        assert written
        assert missing == []
        # Writes stay on the primary: each one succeeded (a standby refuses writes), and no replica had one.
        assert all(counts["demo-api-read"] and not counts["demo-api-write"] for counts in served.values()), (
            served
        )


class TestRedisReplica:
    def test_follows_the_cached_reads_and_they_never_fail(self, data: Stack) -> None:
        """0 → 1 on the commands a second that a replica takes over, and back, every cached read answered."""
        stack = data
        with httpx.Client(base_url=stack.entry, timeout=10) as client:
            items = [client.post("/api/items", json={"value": f"cached {n}"}).json()["id"] for n in range(20)]
        started = time.monotonic()
        with Traffic(
            stack, lambda: f"/api/items/{items[int(time.monotonic() * 1000) % len(items)]}", users=6
        ) as traffic:
            wait_until("a Redis replica", lambda: replicas(stack, "redis-replica"), lambda n: n == 1, 180)
            scaled_up_after = time.monotonic() - started
            wait_until("the replica serving", lambda: bool(containers(stack, "redis-replica")), bool, 60)
            time.sleep(15)  # reads on the replica for a while
        statuses = dict(traffic.statuses)
        wait_until("the replica gone", lambda: replicas(stack, "redis-replica"), lambda n: n == 0, 240)
        keep(
            REPORT,
            redis_scaled_up_after_s=round(scaled_up_after, 1),
            redis_back_to_0_after_s=round(time.monotonic() - started, 1),
            redis_read_statuses=statuses,
        )
        assert traffic.failed() == 0, statuses


class TestMetricSource:
    def test_a_worker_follows_the_length_of_its_redis_list(self, data: Stack) -> None:
        """A user's own worker, scaled on its queue's length (redis_exporter's redis_key_size)."""
        stack = data
        (image,) = {c.image.tags[0] for c in containers(stack, "redis")}
        network = f"{stack.name}_backend"
        common = ["docker", "service", "create", "--detach", "--quiet", "--network", network,
                  "--label", f"com.docker.stack.namespace={stack.name}"]  # fmt: skip
        exporter = [*common, "--name", stack.service("jobs-exporter"), image, "prometheus-redis-exporter",
                    "--redis.addr=redis://tasks.redis:6379", "--check-single-keys=db0=jobs"]  # fmt: skip
        labels = {
            "autoscaler.enable": "true",
            "autoscaler.min_replicas": "1",
            "autoscaler.max_replicas": "4",
            "autoscaler.scaling_algorithm": "target",
            "autoscaler.scaling_metrics": "external",
            # A service made with docker service create has its full name in DNS, not the stack's short one.
            "autoscaler.source.url": f"http://tasks.{stack.service('jobs-exporter')}:9121/metrics",
            "autoscaler.source.metric": "redis_key_size",
            "autoscaler.source.selector": "key=jobs",
            "autoscaler.source.per_replica": "true",
            # An empty list is no key in Redis, and no sample: that is 0 jobs.
            "autoscaler.source.absent_is_zero": "true",
            "autoscaler.source.scale_up_threshold": "20",
        }
        # Each worker takes a job every half second.
        work = "while true; do redis-cli -h tasks.redis BLPOP jobs 5 >/dev/null; sleep 0.5; done"
        worker = [*common, "--name", stack.service("worker"), "--replicas", "1"]
        worker += [option for key, value in labels.items() for option in ("--label", f"{key}={value}")]
        worker += [image, "bash", "-c", work]
        try:
            subprocess.run(exporter, check=True, capture_output=True, timeout=60)
            subprocess.run(worker, check=True, capture_output=True, timeout=60)
            (redis,) = containers(stack, "redis")
            wait_until("the worker running", lambda: containers(stack, "worker"), bool, 60)
            pushed = redis.exec_run(["redis-cli", "RPUSH", "jobs", *(f"job-{n}" for n in range(300))])
            assert pushed.exit_code == 0, pushed.output
            started = time.monotonic()
            most = wait_until("workers added", lambda: replicas(stack, "worker"), lambda n: n >= 3, 120)
            up_after = time.monotonic() - started
            wait_until(
                "the queue done",
                lambda: int(redis.exec_run(["redis-cli", "LLEN", "jobs"]).output),
                lambda n: n == 0,
                240,
            )
            wait_until("the workers back to 1", lambda: replicas(stack, "worker"), lambda n: n == 1, 180)
            keep(REPORT, worker_replicas_most=most, worker_scaled_up_after_s=round(up_after, 1),
                 worker_back_to_1_after_s=round(time.monotonic() - started, 1))  # fmt: skip
        finally:
            for name in ("worker", "jobs-exporter"):
                subprocess.run(
                    ["docker", "service", "rm", stack.service(name)], capture_output=True, check=False
                )


ALERT = "PostgresConnectionsHigh"
ENDED = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'flood'"


class TestConnectionAlert:
    def test_a_connection_flood_makes_the_alert_pending(self, data: Stack) -> None:
        """13 sessions held on the primary, with its own 2: above 80 % of its 17, the alert goes pending."""
        stack = data
        (primary,) = containers(stack, "postgres")
        session = "PGAPPNAME=flood psql -d app -c 'SELECT pg_sleep(300)' >/dev/null 2>&1 &"
        flood = f"for n in $(seq 13); do {session} done"
        primary.exec_run(["bash", "-c", flood], user="postgres", detach=True)
        started = time.monotonic()
        try:
            alert = wait_until(
                "PostgresConnectionsHigh pending",
                lambda: next(
                    (
                        a
                        for a in query(stack, "alerts")["alerts"]
                        if a["labels"]["alertname"] == "PostgresConnectionsHigh"
                    ),
                    None,
                ),
                lambda a: a["state"] in {"pending", "firing"},
                120,
            )
            keep(
                REPORT,
                connection_alert_pending_after_s=round(time.monotonic() - started, 1),
                connection_alert=alert,
            )
        finally:
            sql(primary, ENDED)


def deploy(*arguments: str) -> None:
    subprocess.run([str(DEPLOY), *arguments], env=deploy_environment(), check=True, timeout=900)


@pytest.mark.redeploys
class TestBackupAndRestore:
    def test_every_row_and_key_comes_back_on_a_fresh_stack(self, data: Stack, tmp_path: Path) -> None:
        """--backup, the stack removed with its volumes, a fresh deploy, --restore: all of it is back."""
        stack = data
        with httpx.Client(base_url=stack.entry, timeout=10) as client:
            written = {
                client.post("/api/items", json={"value": f"kept {n}"}).json()["id"]: f"kept {n}"
                for n in range(50)
            }
        (primary,) = containers(stack, "postgres")
        (redis,) = containers(stack, "redis")
        assert redis.exec_run(["redis-cli", "SET", "backup-check", "still here"]).exit_code == 0
        rows = sql(primary, "SELECT count(*), max(id) FROM items")
        backup = tmp_path / "backup.tar.gz"
        deploy("--backup", str(backup))
        deploy("--down")
        for volume in ("postgres-data", "redis-data"):
            remove_volume(f"{stack.name}_{volume}")
        deploy("--with-monitoring")
        (fresh,) = containers(stack, "postgres")
        assert fresh.id != primary.id
        deploy("--restore", str(backup))
        (primary,) = containers(stack, "postgres")
        (redis,) = containers(stack, "redis")
        restored_rows = sql(primary, "SELECT count(*), max(id) FROM items")
        missing = lost(stack, written)
        key = redis.exec_run(["redis-cli", "GET", "backup-check"]).output.decode().strip()
        keep(
            REPORT,
            backup_rows=rows,
            restored_rows=restored_rows,
            backup_items_lost=len(missing),
            backup_bytes=backup.stat().st_size,
        )
        assert restored_rows == rows
        assert missing == []
        assert key == "still here"
