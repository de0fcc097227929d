"""The collector's settings, read from the environment."""

import pytest

from common.config import ConfigError
from metrics_collector.settings import load


class TestSettings:
    def test_the_engine_is_the_local_socket_unless_told(self):
        """Outside the stack the collector lists containers through the engine's own socket."""
        assert load({}).docker_host == "unix:///var/run/docker.sock"
        assert load({"DOCKER_HOST": "unix:///run/docker-api/docker.sock"}).docker_host == (
            "unix:///run/docker-api/docker.sock"
        )

    @pytest.mark.parametrize(
        ("environment", "variable"),
        [
            ({"DOCKER_HOST": "ssh://node-1"}, "DOCKER_HOST"),
            ({"DOCKER_HOST": "/var/run/docker.sock"}, "DOCKER_HOST"),
            ({"SAMPLE_INTERVAL": "nan"}, "SAMPLE_INTERVAL"),
            ({"SAMPLE_INTERVAL": "10", "METRICS_WINDOW": "5"}, "METRICS_WINDOW"),
            ({"PORT": "80000"}, "PORT"),
        ],
    )
    def test_a_bad_value_names_its_variable(self, environment, variable):
        """A value the collector cannot use stops it at start, naming the variable."""
        with pytest.raises(ConfigError) as raised:
            load(environment)
        assert raised.value.name == variable
