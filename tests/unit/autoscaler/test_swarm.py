import docker.errors
import pytest

from autoscaler.swarm import StaleServiceError, Swarm, parse_timestamp, service_from_api, task_from_api
from tests.unit.fakes import FakeDockerApi, service

LABELS = {"autoscaler.enable": "true"}


class TestSwarm:
    def test_lists_only_labelled_services(self):
        """Only services labelled autoscaler.enable=true are listed, with their id, name, replicas, labels
        and version."""
        api = FakeDockerApi([service("a", "s_web", 3, LABELS), service("b", "s_db", 1, {})])
        (found,), problems = Swarm(api).autoscaled_services()
        assert (found.id, found.name, found.replicas, found.labels, found.version) == (
            "a",
            "s_web",
            3,
            LABELS,
            10,
        )
        assert found.updated_at == parse_timestamp("2026-01-01T00:00:00.123456Z")
        assert problems == {}

    def test_a_scope_keeps_to_one_stack(self):
        """With a scope, only that stack's services are listed."""
        mine = {**LABELS, "com.docker.stack.namespace": "shop"}
        theirs = {**LABELS, "com.docker.stack.namespace": "blog"}
        api = FakeDockerApi([service("a", "shop_web", 3, mine), service("b", "blog_web", 3, theirs)])
        (found,), _ = Swarm(api, scope="shop").autoscaled_services()
        assert found.name == "shop_web"
        assert len(Swarm(api).autoscaled_services()[0]) == 2

    def test_a_malformed_service_is_reported_and_the_others_listed(self):
        """A service the API describes in a malformed way is reported; the others are listed."""
        broken = service("b", "s_bad", 3, LABELS)
        broken["Spec"]["Mode"]["Replicated"]["Replicas"] = "three"
        api = FakeDockerApi([service("a", "s_web", 3, LABELS), broken])
        found, problems = Swarm(api).autoscaled_services()
        assert [s.name for s in found] == ["s_web"]
        assert "replica count" in problems["b"]

    def test_a_global_service_has_no_replica_count(self):
        """A global service is listed without a replica count, for its label to be reported."""
        api = FakeDockerApi([service("g", "s_agent", None, LABELS)])
        assert Swarm(api).autoscaled_services()[0][0].replicas is None

    def test_scale_changes_only_the_replica_count(self):
        """Scaling writes the spec read with only the replica count changed."""
        api = FakeDockerApi([service("a", "s_web", 3, LABELS)])
        swarm = Swarm(api)
        swarm.scale(swarm.inspect("a"), 5)
        ((service_id, spec),) = api.updates
        assert service_id == "a"
        assert spec["mode"] == {"Replicated": {"Replicas": 5}}
        assert spec["task_template"] == {
            "ContainerSpec": {"Image": "demo:1"},
            "Networks": [{"Target": "net"}],
        }
        assert spec["endpoint_spec"] == {"Mode": "vip"}
        assert spec["labels"] == LABELS

    def test_a_service_changed_since_it_was_read_is_not_written(self):
        """A service changed since it was read is not written: the decision is made again."""
        api = FakeDockerApi([service("a", "s_web", 4, LABELS)])
        swarm = Swarm(api)
        read = swarm.inspect("a")
        api.set_replicas("a", 0)  # an operator pauses the service meanwhile
        with pytest.raises(StaleServiceError):
            swarm.scale(read, 5)
        assert api.updates == []
        assert swarm.inspect("a").replicas == 0

    def test_a_conflict_while_writing_is_a_stale_service(self):
        """A version conflict from the engine is a stale service, not an error."""
        api = FakeDockerApi([service("a", "s_web", 3, LABELS)], conflicts=1)
        swarm = Swarm(api)
        with pytest.raises(StaleServiceError):
            swarm.scale(swarm.inspect("a"), 4)
        assert api.updates == []

    def test_other_errors_are_raised(self):
        """Other refusals from the engine are raised, to be reported."""
        api = FakeDockerApi([service("a", "s_web", 3, LABELS)])
        swarm = Swarm(api)
        read = swarm.inspect("a")

        def refuse(*args, **kwargs):
            raise docker.errors.APIError("500 server error")

        api.update_service = refuse
        with pytest.raises(docker.errors.APIError):
            swarm.scale(read, 4)

    def test_running_tasks(self):
        """Only tasks running on a node count; a starting one, one without a node or junk does not."""
        api = FakeDockerApi([service("a", "s_web", 2, LABELS)])
        api.tasks_override = [
            {"ID": "t1", "ServiceID": "a", "NodeID": "n1", "Status": {"State": "running"}},
            {"ID": "t2", "ServiceID": "a", "NodeID": "n1", "Status": {"State": "starting"}},
            {"ID": "t3", "ServiceID": "a", "NodeID": None, "Status": {"State": "running"}},
            "junk",
        ]
        assert [(t.id, t.node_id) for t in Swarm(api).running_tasks()] == [("t1", "n1")]


class TestServiceFromApi:
    @pytest.mark.parametrize(
        "attributes",
        [
            None,
            {"ID": "a"},
            {"ID": "a", "Version": {"Index": 1}, "Spec": {"Name": "", "Mode": {}}},
            {"ID": "a", "Version": {"Index": "1"}, "Spec": {"Name": "n", "Mode": {}}},
            {"ID": "a", "Version": {"Index": 1}, "Spec": {"Name": "n", "Labels": {"x": 1}}},
            {
                "ID": "a",
                "Version": {"Index": 1},
                "Spec": {"Name": "n", "Mode": {"Replicated": {"Replicas": -1}}},
            },
        ],
    )
    def test_malformed_services_are_refused(self, attributes):
        """A service whose fields are missing or of the wrong kind is refused."""
        with pytest.raises((TypeError, ValueError)):
            service_from_api(attributes)

    def test_a_task_that_is_not_running_is_left_out(self):
        """A task that is not running is left out."""
        assert (
            task_from_api({"ID": "t", "ServiceID": "s", "NodeID": "n", "Status": {"State": "pending"}})
            is None
        )


class TestParseTimestamp:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("1970-01-01T00:00:10.000000001Z", 10.0),
            ("1970-01-01T00:01:00Z", 60.0),
            ("", None),
            ("junk", None),
            (None, None),
        ],
    )
    def test_parses_docker_times(self, text, expected):
        """Docker's timestamps, to the nanosecond, are seconds since the epoch; a bad one is none."""
        assert parse_timestamp(text) == expected
