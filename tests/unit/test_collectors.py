import asyncio

import httpx
import pytest

from autoscaler.collectors import merge_reports, read_collectors
from autoscaler.settings import CollectorSettings
from tests.unit.fakes import collector_transport, resolver_for

SETTINGS = CollectorSettings(address="tasks.metrics-collector", port=8090, timeout=1)


def report(tasks, cpu, memory, at):
    return {
        "services": {
            "s_web": {"tasks": tasks, "cpu_percent": cpu, "memory_percent": memory, "sampled_at": at}
        }
    }


class TestMergeReports:
    def test_weights_each_node_by_its_tasks(self):
        merged = merge_reports([report(3, 80.0, 10.0, 100.0), report(1, 40.0, 50.0, 90.0)])["s_web"]
        assert merged.tasks == 4
        assert merged.cpu_percent == pytest.approx(70.0)
        assert merged.memory_percent == pytest.approx(20.0)
        assert merged.sampled_at == 90.0

    def test_a_node_without_cpu_yet_is_left_out_of_the_cpu_mean(self):
        merged = merge_reports([report(2, None, 10.0, 100.0), report(2, 60.0, 10.0, 100.0)])["s_web"]
        assert merged.cpu_percent == 60.0


class TestReadCollectors:
    def read(self, reports, addresses):
        async def go():
            async with httpx.AsyncClient(transport=collector_transport(reports)) as client:
                return await read_collectors(SETTINGS, client, resolver_for(addresses))

        return asyncio.run(go())

    def test_reads_every_collector(self):
        reading = self.read(
            {"10.0.0.1": report(1, 90.0, 10.0, 5.0), "10.0.0.2": report(1, 70.0, 10.0, 5.0)},
            ["10.0.0.1", "10.0.0.2"],
        )
        assert reading.collectors_answered == 2
        assert reading.services["s_web"].cpu_percent == 80.0
        assert reading.errors == []

    def test_a_failing_collector_is_reported_and_the_rest_used(self):
        reading = self.read(
            {"10.0.0.1": report(1, 90.0, 10.0, 5.0), "10.0.0.2": None}, ["10.0.0.1", "10.0.0.2"]
        )
        assert reading.collectors_answered == 1
        assert reading.services["s_web"].cpu_percent == 90.0
        assert "10.0.0.2" in reading.errors[0]

    def test_an_unresolvable_name_is_an_error_not_a_crash(self):
        async def fail(host, port):
            raise OSError("Name or service not known")

        async def go():
            async with httpx.AsyncClient(transport=collector_transport({})) as client:
                return await read_collectors(SETTINGS, client, fail)

        reading = asyncio.run(go())
        assert reading.services == {}
        assert "cannot resolve" in reading.errors[0]
