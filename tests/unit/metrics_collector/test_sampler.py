import pytest

from metrics_collector.cgroups import Usage
from metrics_collector.sampler import Sampler, TaskIdentity

WEB_1 = TaskIdentity("c1", "stack_web", "t1", "stack_web.1")
WEB_2 = TaskIdentity("c2", "stack_web", "t2", "stack_web.2")
GIB = 1 << 30


def usage(cpu_seconds, memory=GIB // 4, cores=0.5, limit=GIB):
    return Usage(cpu_seconds, cores, memory, limit)


class TestSampler:
    def test_cpu_is_a_percent_of_the_limit_over_the_window(self):
        """CPU is the CPU time used over the window, in percent of the task's limit."""
        sampler = Sampler(window=10, host_memory=16 * GIB)
        sampler.record(100, {"c1": (WEB_1, usage(1.0))})
        sampler.record(105, {"c1": (WEB_1, usage(2.0))})  # 1 s of CPU in 5 s at a 0.5-core limit
        (task,) = sampler.tasks()
        assert task.cpu_percent == pytest.approx(40.0)
        assert task.memory_percent == pytest.approx(25.0)

    def test_a_single_sample_has_no_cpu_yet(self):
        """One sample gives no CPU: a rate needs two."""
        sampler = Sampler(window=10, host_memory=16 * GIB)
        sampler.record(100, {"c1": (WEB_1, usage(1.0))})
        assert sampler.tasks()[0].cpu_percent is None

    def test_samples_older_than_the_window_are_dropped(self):
        """Samples older than the window are dropped: a burst long ago no longer counts."""
        sampler = Sampler(window=10, host_memory=16 * GIB)
        sampler.record(100, {"c1": (WEB_1, usage(0.0, memory=GIB))})  # a burst long ago
        for at in range(110, 131, 5):
            sampler.record(at, {"c1": (WEB_1, usage((at - 110) * 0.1, memory=GIB // 2))})
        (task,) = sampler.tasks()
        assert task.cpu_percent == pytest.approx(20.0)  # 0.1 core of 0.5
        assert task.memory_percent == pytest.approx(50.0)

    def test_no_limit_means_one_core_and_the_hosts_memory(self):
        """A task without limits is measured against one core and the host's memory."""
        sampler = Sampler(window=10, host_memory=4 * GIB)
        sampler.record(0, {"c1": (WEB_1, Usage(0.0, None, GIB, None))})
        sampler.record(2, {"c1": (WEB_1, Usage(1.0, None, GIB, None))})
        (task,) = sampler.tasks()
        assert task.cpu_percent == pytest.approx(50.0)
        assert task.memory_percent == pytest.approx(25.0)

    def test_report_averages_a_services_tasks_and_forgets_gone_ones(self):
        """The report averages a service's tasks on the node and forgets containers gone."""
        sampler = Sampler(window=30, host_memory=16 * GIB)
        sampler.record(0, {"c1": (WEB_1, usage(0.0)), "c2": (WEB_2, usage(0.0, memory=GIB // 2))})
        sampler.record(10, {"c1": (WEB_1, usage(5.0)), "c2": (WEB_2, usage(1.0, memory=GIB // 2))})
        report = sampler.report("node-1", "node-id-1")
        assert (report["node"], report["node_id"]) == ("node-1", "node-id-1")
        assert report["services"]["stack_web"] == {
            "tasks": 2,
            "task_ids": ["t1", "t2"],
            "cpu_percent": 60.0,
            "memory_percent": 37.5,
            "sampled_at": 10,
        }
        sampler.record(15, {"c2": (WEB_2, usage(1.5, memory=GIB // 2))})
        assert sampler.report("node-1")["services"]["stack_web"]["task_ids"] == ["t2"]
