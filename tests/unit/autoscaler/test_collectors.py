import asyncio
import math

import httpx
import pytest

from autoscaler.collectors import BadReportError, merge_reports, parse_report, read_collectors
from autoscaler.settings import CollectorSettings
from tests.unit.fakes import collector_transport, resolver_for

SETTINGS = CollectorSettings(address="tasks.metrics-collector", port=8090, timeout=1)


def entry(tasks, cpu, memory, at, first=1):
    ids = [f"t{n}" for n in range(first, first + tasks)]
    return {"tasks": tasks, "task_ids": ids, "cpu_percent": cpu, "memory_percent": memory, "sampled_at": at}


def report(tasks, cpu, memory, at, first=1, node_id=None):
    return {"node_id": node_id, "services": {"s_web": entry(tasks, cpu, memory, at, first)}}


def parsed(*reports):
    return [parse_report(r) for r in reports]


class TestMergeReports:
    def test_weights_each_node_by_its_tasks(self):
        """Nodes' reports merge into one per service, each node weighted by its tasks."""
        merged = merge_reports(parsed(report(3, 80.0, 10.0, 100.0), report(1, 40.0, 50.0, 90.0, first=4)))[
            "s_web"
        ]
        assert merged.task_ids == {"t1", "t2", "t3", "t4"}
        assert merged.cpu_percent == pytest.approx(70.0)
        assert merged.memory_percent == pytest.approx(20.0)
        assert merged.sampled_at == 90.0

    def test_a_node_without_cpu_yet_is_left_out_of_the_cpu_mean(self):
        """A node with no CPU figure yet is left out of the CPU mean rather than counted as zero."""
        merged = merge_reports(parsed(report(2, None, 10.0, 100.0), report(2, 60.0, 10.0, 100.0, first=3)))[
            "s_web"
        ]
        assert merged.cpu_percent == 60.0


class TestReadCollectors:
    def read(self, reports, addresses):
        async def go():
            async with httpx.AsyncClient(transport=collector_transport(reports)) as client:
                return await read_collectors(SETTINGS, client, resolver_for(addresses))

        return asyncio.run(go())

    def test_reads_every_collector(self):
        """Every collector behind the name is read, and the nodes that answered are known."""
        reading = self.read(
            {
                "10.0.0.1": report(1, 90.0, 10.0, 5.0, node_id="n1"),
                "10.0.0.2": report(1, 70.0, 10.0, 5.0, 2, "n2"),
            },
            ["10.0.0.1", "10.0.0.2"],
        )
        assert reading.collectors_answered == 2
        assert reading.services["s_web"].cpu_percent == 80.0
        assert reading.errors == {}
        assert reading.nodes == {"n1", "n2"}

    def test_a_failing_collector_is_reported_and_the_rest_used(self):
        """A collector that fails is reported, and the others' reports are used."""
        reading = self.read(
            {"10.0.0.1": report(1, 90.0, 10.0, 5.0), "10.0.0.2": None}, ["10.0.0.1", "10.0.0.2"]
        )
        assert reading.collectors_answered == 1
        assert reading.services["s_web"].cpu_percent == 90.0
        assert set(reading.errors) == {"10.0.0.2"}

    def test_an_unresolvable_name_is_an_error_not_a_crash(self):
        """A collector name that does not resolve is an error for the check, not a crash."""

        async def fail(host, port):
            raise OSError("Name or service not known")

        async def go():
            async with httpx.AsyncClient(transport=collector_transport({})) as client:
                return await read_collectors(SETTINGS, client, fail)

        reading = asyncio.run(go())
        assert reading.services == {}
        assert "cannot resolve" in reading.errors["tasks.metrics-collector"]


class TestParseReport:
    @pytest.mark.parametrize(
        "document",
        [[], None, "text", {"services": None}, {"services": []}, {}, {"node": "n"}],
    )
    def test_an_answer_that_is_not_a_report_is_refused(self, document):
        """An answer of the wrong shape is refused as a whole."""
        with pytest.raises(BadReportError):
            parse_report(document)

    @pytest.mark.parametrize(
        ("change", "problem"),
        [
            ({"cpu_percent": math.nan}, "cpu_percent is not a finite number"),
            ({"cpu_percent": math.inf}, "cpu_percent is not a finite number"),
            ({"memory_percent": "12"}, "memory_percent is not a finite number"),
            ({"cpu_percent": -3}, "cpu_percent out of range"),
            ({"cpu_percent": True}, "cpu_percent is not a finite number"),
            ({"sampled_at": None}, "sampled_at is not a time"),
            ({"task_ids": None}, "task_ids is not a list"),
            ({"task_ids": [1, 2]}, "task_ids is not a list"),
        ],
    )
    def test_a_bad_entry_drops_only_that_service(self, change, problem):
        """A bad entry drops only its service, with the problem named."""
        document = {
            "services": {"s_web": {**entry(1, 50.0, 10.0, 5.0), **change}, "s_db": entry(1, 5.0, 5.0, 5.0)}
        }
        report = parse_report(document)
        assert set(report.services) == {"s_db"}
        assert report.problems["s_web"].startswith(problem)

    def test_nan_in_the_json_text_is_refused_too(self):
        """NaN written in the JSON text itself is refused like any other non-finite number."""
        text = b'{"services": {"s_web": {"task_ids": ["t1"], "cpu_percent": NaN, "sampled_at": 5}}}'
        reading = TestReadCollectors().read({"10.0.0.1": text}, ["10.0.0.1"])
        assert reading.services == {}
        assert "cpu_percent" in reading.entry_problems["s_web at 10.0.0.1"]

    def test_an_answer_that_is_not_json_counts_as_that_collector_failing(self):
        """An answer that is not JSON counts as that collector failing."""
        reading = TestReadCollectors().read(
            {"10.0.0.1": b"<html>", "10.0.0.2": report(1, 70.0, 10.0, 5.0)}, ["10.0.0.1", "10.0.0.2"]
        )
        assert reading.collectors_answered == 1
        assert reading.errors["10.0.0.1"].startswith("not JSON")
