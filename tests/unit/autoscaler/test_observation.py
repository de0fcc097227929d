import pytest

from autoscaler.collectors import ServiceMetrics
from autoscaler.observation import Seen, ServiceWindows, observe, running_by_service
from autoscaler.policy import service_policy
from autoscaler.swarm import RunningTask, SwarmService

POLICY = service_policy({}, {})
NO_REQUESTS = ServiceWindows(behind=False, window=None, recent=None)
SERVICES = 500
TASKS_PER_SERVICE = 10


def swarm_tasks(services=SERVICES, per_service=TASKS_PER_SERVICE, nodes=10):
    """Every service's tasks over the nodes in turn: ``services`` × ``per_service`` tasks."""
    return [
        RunningTask(f"s{index}.{slot}", f"s{index}", f"node-{slot % nodes}")
        for index in range(services)
        for slot in range(per_service)
    ]


def web(replicas=3, service_id="s7"):
    return SwarmService(service_id, "shop_web", {}, replicas, None, 1)


def measured(*task_ids, cpu=50.0):
    return ServiceMetrics(frozenset(task_ids), cpu, 20.0, 1000.0)


class TestRunningByService:
    def test_each_service_gets_exactly_its_own_tasks_among_thousands(self):
        """5,000 tasks of 500 services: one pass gives each service its 10 and no other's."""
        index = running_by_service(swarm_tasks())
        assert len(index) == SERVICES
        assert index["s7"] == frozenset(f"s7.{slot}" for slot in range(TASKS_PER_SERVICE))
        assert sum(map(len, index.values())) == SERVICES * TASKS_PER_SERVICE

    def test_a_service_without_tasks_is_absent(self):
        """No entry for a service that runs nothing; the caller reads that as no tasks."""
        assert "s9" not in running_by_service(swarm_tasks(services=3))

    def test_no_tasks(self):
        """An empty swarm gives an empty index."""
        assert running_by_service([]) == {}


class TestObserve:
    @pytest.mark.parametrize(
        ("running", "measured_ids", "replicas", "ready", "unmeasured"),
        [
            # With the task list: ready are the running tasks measured; the rest are unmeasured.
            ({"a", "b", "c"}, {"a", "b", "c"}, 3, 3, 0),
            ({"a", "b", "c"}, {"a", "b"}, 3, 2, 1),
            ({"a", "b", "c"}, set(), 3, 0, 3),
            # A measured task that no longer runs is neither ready nor unmeasured.
            ({"a", "b"}, {"a", "b", "gone"}, 3, 2, 0),
            # Nothing runs yet: 0 ready is known.
            (set(), set(), 3, 0, 0),
            # Without the task list: the spec's replicas beyond those measured are unmeasured.
            (None, {"a", "b"}, 3, 2, 1),
            (None, {"a", "b", "c", "d"}, 3, 4, 0),
            # ... and with nothing measured, how many are ready is unknown.
            (None, set(), 3, None, 3),
        ],
    )
    def test_ready_and_unmeasured_replicas(self, running, measured_ids, replicas, ready, unmeasured):
        """The table of running and measured tasks against the replicas ready and unmeasured."""
        metrics = measured(*measured_ids) if measured_ids else None
        seen = Seen(metrics, None if running is None else frozenset(running), NO_REQUESTS, 0.0)
        observation = observe(web(replicas), seen, POLICY)
        assert (observation.ready_replicas, observation.unmeasured_tasks) == (ready, unmeasured)
        assert observation.current_replicas == replicas

    def test_one_service_among_thousands_of_tasks_counts_only_its_own(self):
        """A service of 10 tasks in a swarm of 5,000, 9 of them measured: 9 ready, 1 unmeasured."""
        index = running_by_service(swarm_tasks())
        metrics = measured(*(f"s7.{slot}" for slot in range(9)))
        observation = observe(web(10), Seen(metrics, index["s7"], NO_REQUESTS, 0.0), POLICY)
        assert (observation.ready_replicas, observation.unmeasured_tasks) == (9, 1)
        assert observation.cpu_percent == 50.0

    def test_without_metrics_the_usage_is_unknown(self):
        """No collector reported the service: CPU, memory and the sample time are unknown."""
        observation = observe(web(), Seen(None, frozenset({"a"}), NO_REQUESTS, 0.0), POLICY)
        assert (observation.cpu_percent, observation.memory_percent, observation.sampled_at) == (
            None,
            None,
            None,
        )

    def test_without_a_window_there_are_no_request_metrics(self):
        """An entry point that proxies to the service but has no window yet gives no request metrics."""
        requests = ServiceWindows(behind=True, window=None, recent=None)
        observation = observe(web(), Seen(None, frozenset(), requests, 0.0), POLICY)
        assert observation.behind_entry_point
        assert observation.requests is None
        assert observation.requests_read_at is None

    def test_a_global_service_is_refused(self):
        """Only replicated services are observed."""
        with pytest.raises(ValueError, match="global"):
            observe(web(None), Seen(None, frozenset(), NO_REQUESTS, 0.0), POLICY)
