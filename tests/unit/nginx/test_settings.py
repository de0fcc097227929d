"""The agent's settings, read from the environment."""

import pytest

from common.config import ConfigError
from nginx.settings import load


class TestSettings:
    def test_the_service_counts_under_its_own_name(self):
        """The entry point's own service is counted and balanced under UPSTREAM_SERVICE."""
        settings = load({"UPSTREAM_SERVICE": "web", "METRICS_PORT": "9200"})
        assert (settings.service, settings.proxy.service, settings.proxy.metrics_port) == ("web", "web", 9200)

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("PROXY_LOCATION", "/ { return 200 'x'; } location /api/"),
            ("PROXY_LOCATION", "api/"),
            ("PROXY_LOCATION", "/api/;"),
            ("NGINX_WORKERS", "1; error_log /tmp/x debug"),
            ("NGINX_WORKERS", "0"),
            ("NGINX_WORKERS", "many"),
            ("ROUTES_URL", "http://autoscaler:8080/routes; deny all"),
            ("ROUTES_URL", "file:///etc/passwd"),
        ],
    )
    def test_a_value_nginx_would_read_as_a_directive_is_refused(self, variable, value):
        """A setting that would end a directive in nginx's configuration is refused at start."""
        with pytest.raises(ConfigError) as raised:
            load({variable: value})
        assert (raised.value.name, raised.value.value) == (variable, value)

    @pytest.mark.parametrize(
        ("environment", "location", "workers"),
        [({}, "/api/", "auto"), ({"PROXY_LOCATION": "/", "NGINX_WORKERS": "3"}, "/", "3")],
    )
    def test_locations_and_workers_that_are_only_that(self, environment, location, workers):
        """A location is a URL prefix and workers are auto or a number: nothing else reaches nginx."""
        proxy = load(environment).proxy
        assert (proxy.location, proxy.workers) == (location, workers)

    @pytest.mark.parametrize("name", ["we$b", 'web"; deny all; "', "-web"])
    def test_a_service_name_nginx_would_read_as_more_is_refused(self, name):
        """A service name that nginx would read as more than a name is refused at start."""
        with pytest.raises(ConfigError, match="UPSTREAM_SERVICE"):
            load({"UPSTREAM_SERVICE": name})
