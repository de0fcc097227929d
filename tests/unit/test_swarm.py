import docker.errors
import pytest

from autoscaler.swarm import Swarm, parse_timestamp
from tests.unit.fakes import FakeDockerApi, service

LABELS = {"autoscaler.enable": "true"}


class TestSwarm:
    def test_lists_only_labelled_services(self):
        api = FakeDockerApi([service("a", "s_web", 3, LABELS), service("b", "s_db", 1, {})])
        (found,) = Swarm(api).autoscaled_services()
        assert (found.id, found.name, found.replicas, found.labels) == ("a", "s_web", 3, LABELS)
        assert found.updated_at == parse_timestamp("2026-01-01T00:00:00.123456Z")

    def test_a_global_service_has_no_replica_count(self):
        api = FakeDockerApi([service("g", "s_agent", None, LABELS)])
        assert Swarm(api).autoscaled_services()[0].replicas is None

    def test_scale_changes_only_the_replica_count(self):
        api = FakeDockerApi([service("a", "s_web", 3, LABELS)])
        Swarm(api).scale("a", 5)
        ((service_id, spec),) = api.updates
        assert service_id == "a"
        assert spec["mode"] == {"Replicated": {"Replicas": 5}}
        assert spec["task_template"] == {
            "ContainerSpec": {"Image": "demo:1"},
            "Networks": [{"Target": "net"}],
        }
        assert spec["endpoint_spec"] == {"Mode": "vip"}
        assert spec["labels"] == LABELS

    def test_scale_retries_on_a_version_conflict(self):
        api = FakeDockerApi([service("a", "s_web", 3, LABELS)], conflicts=2)
        Swarm(api).scale("a", 4)
        assert len(api.updates) == 1

    def test_scale_gives_up_after_repeated_conflicts(self):
        api = FakeDockerApi([service("a", "s_web", 3, LABELS)], conflicts=10)
        with pytest.raises(docker.errors.APIError):
            Swarm(api).scale("a", 4)


class TestParseTimestamp:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("1970-01-01T00:00:10.000000001Z", 10.0),
            ("1970-01-01T00:01:00Z", 60.0),
            ("", None),
            ("junk", None),
        ],
    )
    def test_parses_docker_times(self, text, expected):
        assert parse_timestamp(text) == expected
