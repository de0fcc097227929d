import asyncio
import shutil
import sys
from http import HTTPStatus

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from metrics_collector.cgroups import MalformedCgroupError, parse_cpu_max
from metrics_collector.containers import SERVICE_LABEL, TASK_ID_LABEL, TASK_NAME_LABEL, ContainerDirectory
from metrics_collector.daemon import CollectorMetrics, MetricsCollector, routes
from metrics_collector.sampler import Sampler
from metrics_collector.settings import SamplingSettings
from tests.unit.paths import CGROUP_FIXTURES


def container(container_id, service):
    labels = {SERVICE_LABEL: service, TASK_ID_LABEL: f"task-{container_id}", TASK_NAME_LABEL: f"{service}.1"}
    return {"Id": container_id, "Labels": labels}


class FakeContainerApi:
    """Answers the container listing as the Docker API would."""

    def __init__(self, containers):
        self.listed = containers
        self.calls = 0

    def containers(self, filters=None):
        self.calls += 1
        assert filters == {"label": SERVICE_LABEL, "status": "running"}
        return self.listed


class TestContainerDirectory:
    def test_lists_at_most_once_per_refresh_interval(self):
        """The Docker API is asked for containers at most once per refresh interval; non-task containers
        are left out."""
        api = FakeContainerApi([container("c1", "s_web"), {"Id": "plain", "Labels": {}}])
        directory = ContainerDirectory(api, refresh_interval=10)
        assert set(directory.tasks(0)) == {"c1"}
        directory.tasks(9)
        assert api.calls == 1
        directory.tasks(10)
        assert api.calls == 2


class TestMetricsCollector:
    def make(self, tmp_path, containers):
        root = tmp_path / "cgroup"
        shutil.copytree(CGROUP_FIXTURES / "v1_split", root)
        now = [1000.0]
        collector = MetricsCollector(
            SamplingSettings(interval=1, window=10, container_refresh_interval=0),
            ContainerDirectory(FakeContainerApi(containers), refresh_interval=0),
            root,
            Sampler(window=10, host_memory=1 << 34),
            clock=lambda: now[0],
        )
        return collector, root, now

    def test_samples_from_the_cgroup_files(self, tmp_path):
        """CPU is the cgroup usage gained over the time between samples, in percent of the limit."""
        collector, root, now = self.make(tmp_path, [container("aaaa1111", "s_web")])
        collector.sample_once()
        usage_file = root / "cpuacct" / "docker" / "aaaa1111" / "cpuacct.usage"
        usage_file.write_text(str(1_500_000_000 + 100_000_000))  # 0.1 s more CPU
        now[0] += 1
        collector.sample_once()
        service = collector.sampler.report("n")["services"]["s_web"]
        assert service["cpu_percent"] == 50.0  # 0.1 s in 1 s at a 0.2-core limit
        assert collector.health_problems(now[0]) == []

    def test_limits_are_read_again_only_after_the_containers_are_listed_again(self, tmp_path):
        """Swarm replaces a task to change its limits: read at each listing; the usage at each sample."""
        root = tmp_path / "cgroup"
        shutil.copytree(CGROUP_FIXTURES / "v1_split", root)
        now = [1000.0]
        collector = MetricsCollector(
            SamplingSettings(interval=1, window=10, container_refresh_interval=10),
            ContainerDirectory(FakeContainerApi([container("aaaa1111", "s_web")]), refresh_interval=10),
            root,
            Sampler(window=10, host_memory=1 << 34),
            clock=lambda: now[0],
        )
        usage_file = root / "cpuacct" / "docker" / "aaaa1111" / "cpuacct.usage"
        quota_file = root / "cpu" / "docker" / "aaaa1111" / "cpu.cfs_quota_us"
        cpu = 1_500_000_000
        percents = []
        for quota in ("20000", "40000", "40000"):
            quota_file.write_text(quota)  # 0.2 cores, then 0.4
            cpu += 100_000_000  # 0.1 s more CPU in each 5 s
            usage_file.write_text(str(cpu))
            now[0] += 5
            collector.sample_once()
            percents.append(collector.sampler.report("n")["services"]["s_web"]["cpu_percent"])
        # The new quota is written before the second sample, and read at the listing before the third.
        assert percents[1:] == [10.0, 5.0]

    def test_a_container_without_cgroup_is_skipped(self, tmp_path):
        """A container whose cgroup cannot be found is skipped and remembered."""
        collector, _, _ = self.make(tmp_path, [container("aaaa1111", "s_web"), container("zzzz", "s_db")])
        collector.sample_once()
        assert set(collector.sampler.report("n")["services"]) == {"s_web"}
        assert collector.unlocated == {"zzzz"}

    def test_a_container_that_vanishes_mid_read_is_skipped(self, tmp_path):
        """A container that stops between the listing and the read is skipped and counted as vanished."""
        collector, root, now = self.make(tmp_path, [container("aaaa1111", "s_web")])
        collector.sample_once()
        (root / "memory" / "docker" / "aaaa1111" / "memory.stat").unlink()
        now[0] += 1
        collector.sample_once()
        assert collector.vanished == 1
        assert collector.sampler.report("n")["services"] == {}

    def test_endpoints(self, tmp_path):
        """/health, /metrics and /v1/services answer from the last sample."""
        collector, _, now = self.make(tmp_path, [container("aaaa1111", "s_web")])
        registry = CollectorRegistry()
        registry.register(CollectorMetrics(collector))
        handlers = routes(collector, registry, "node-1", lambda: now[0])
        assert handlers["/health"]().status == HTTPStatus.SERVICE_UNAVAILABLE
        collector.sample_once()
        assert handlers["/health"]().status == HTTPStatus.OK
        now[0] += 10
        assert b"newest sample is 10s old" in handlers["/health"]().body
        text = handlers["/metrics"]().body.decode()
        names = {family.name for family in text_string_to_metric_families(text)}
        assert {
            "collector_task_memory_percent",
            "collector_service_tasks",
            "collector_last_sample_timestamp_seconds",
        } <= names


class TestMalformedCgroupFiles:
    @pytest.mark.parametrize(
        ("file", "content", "problem"),
        [
            ("memory/docker/aaaa1111/memory.limit_in_bytes", "", "memory limit: not a number"),
            ("cpu/docker/aaaa1111/cpu.cfs_period_us", "0\n", "CPU period 0 is not positive"),
            ("cpuacct/docker/aaaa1111/cpuacct.usage", "12x\n", "cpuacct.usage: not a number"),
            ("memory/docker/aaaa1111/memory.stat", "total_inactive_file lots\n", "memory.stat: not a number"),
        ],
    )
    def test_only_that_container_goes_unmeasured_and_it_is_logged_once(
        self, tmp_path, file, content, problem
    ):
        """A malformed cgroup file leaves only its container unmeasured, logged once and counted at every
        read."""
        collector, root, now = TestMetricsCollector().make(
            tmp_path, [container("aaaa1111", "s_web"), container("bbbb2222", "s_db")]
        )
        shutil.copytree(root / "cpuacct/docker/aaaa1111", root / "cpuacct/docker/bbbb2222")
        shutil.copytree(root / "cpu/docker/aaaa1111", root / "cpu/docker/bbbb2222")
        shutil.copytree(root / "memory/docker/aaaa1111", root / "memory/docker/bbbb2222")
        (root / file).write_text(content)
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                collector.sample_once()
                now[0] += 1
        assert set(collector.sampler.report("n")["services"]) == {"s_db"}
        assert problem in collector.unreadable()["aaaa1111"]
        assert [(entry["event"], entry["kind"], entry["service"]) for entry in logs] == [
            ("input problem", "cgroup", "s_web")
        ]
        assert collector.malformed_reads == 3

    def test_cpu_max_with_a_zero_period_is_malformed(self):
        """A CPU period of zero is malformed, not a division by zero."""
        with pytest.raises(MalformedCgroupError):
            parse_cpu_max("50000 0")


class AlternatingContainerApi:
    """200 task containers, a quarter of them replaced at every listing: series come and go."""

    def __init__(self, ids):
        self.ids = ids
        self.listings = 0

    def containers(self, filters=None):  # noqa: ARG002 - the filter is the collector's, checked above
        self.listings += 1
        shift = (self.listings % 4) * len(self.ids) // 4
        listed = self.ids[shift:] + self.ids[: shift // 2]
        return [container(container_id, f"s_web{index % 20}") for index, container_id in enumerate(listed)]


class TestSamplingWhileServing:
    def test_200_containers_sampled_while_the_endpoints_are_read_never_fail_a_read(self, tmp_path):
        """The reads run on the event loop while samples are taken, for two seconds: every one answers."""
        root = tmp_path / "cgroup"
        shutil.copytree(CGROUP_FIXTURES / "v1_split", root)
        ids = [f"c{index:07d}" for index in range(200)]
        for controller in ("cpu", "cpuacct", "memory"):
            for container_id in ids:
                shutil.copytree(
                    root / controller / "docker" / "aaaa1111", root / controller / "docker" / container_id
                )
        api = AlternatingContainerApi(ids)
        collector = MetricsCollector(
            SamplingSettings(interval=0, window=10, container_refresh_interval=0),
            ContainerDirectory(api, refresh_interval=0),
            root,
            Sampler(window=10, host_memory=1 << 34),
        )
        registry = CollectorRegistry()
        registry.register(CollectorMetrics(collector))
        handlers = routes(collector, registry, "n", lambda: 1000.0)
        failures, answers = [], [0]

        async def serve(stop):
            while not stop.is_set():
                for path in ("/v1/services", "/metrics"):
                    try:
                        assert handlers[path]().status == HTTPStatus.OK
                        answers[0] += 1
                    except Exception as error:  # noqa: BLE001 - every failure is what the test counts
                        failures.append(repr(error))
                await asyncio.sleep(0)

        async def go():
            stop = asyncio.Event()
            tasks = [asyncio.create_task(collector.run(stop)), asyncio.create_task(serve(stop))]
            await asyncio.sleep(2)
            stop.set()
            await asyncio.gather(*tasks)

        # Threads switch every microsecond rather than every 5 ms: a race shows within seconds.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            asyncio.run(go())
        finally:
            sys.setswitchinterval(switch_interval)
        assert failures == [], (len(failures), failures[:3])
        assert api.listings > 3
        assert answers[0] > 100
