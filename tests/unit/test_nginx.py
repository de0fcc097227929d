import asyncio
import shutil
import subprocess
from dataclasses import replace

import pytest
import structlog

from common.config import ConfigError
from nginx.agent import AgentSettings, ConfigRejectedError, LookupFailedError, UpstreamAgent, install, load
from nginx.config import ProxySettings, render, upstream_addresses

PROXY = ProxySettings(
    listen_port=8081, location="/api/", upstream_port=8000, workers="1", service="web", metrics_port=9145
)


def nginx_accepts(config, tmp_path):
    path = tmp_path / "nginx.conf"
    path.write_text(config)
    nginx = shutil.which("nginx")
    assert nginx, "nginx is required: run-tests.sh installs it"
    return (
        subprocess.run([nginx, "-t", "-q", "-c", str(path)], capture_output=True, check=False).returncode == 0
    )


class TestRender:
    def test_lists_exactly_the_tasks_least_connections_first(self):
        config = render(["10.0.1.7", "10.0.1.5"], PROXY)
        assert upstream_addresses(config) == ["10.0.1.5", "10.0.1.7"]
        assert "least_conn;" in config
        assert "server 10.0.1.5:8000 " in config
        assert "location /api/ {" in config

    def test_no_tasks_renders_a_server_marked_down(self):
        config = render([], PROXY)
        assert upstream_addresses(config) == []
        assert "server 127.0.0.1:9 down;" in config

    @pytest.mark.parametrize("addresses", [[], ["10.0.1.5"], [f"10.0.1.{n}" for n in range(2, 12)]])
    def test_nginx_accepts_what_is_rendered(self, addresses, tmp_path):
        assert nginx_accepts(render(addresses, PROXY), tmp_path)


class TestUpstreamAgent:
    def make(self, tmp_path, answers, proxy=PROXY):
        settings = AgentSettings(
            service="web", sync_interval=1, config_path=tmp_path / "nginx.conf", proxy=proxy
        )
        queue = list(answers)

        async def resolve(service):
            answer = queue.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        return UpstreamAgent(settings, resolve), settings

    def test_follows_the_tasks(self, tmp_path):
        agent, settings = self.make(tmp_path, [["10.0.1.5"], ["10.0.1.5", "10.0.1.6"], ["10.0.1.6"]])
        for _ in range(3):
            asyncio.run(agent.sync_once())
        assert upstream_addresses(settings.config_path.read_text()) == ["10.0.1.6"]
        assert agent.addresses == ["10.0.1.6"]

    def test_a_failed_lookup_keeps_the_current_upstream(self, tmp_path):
        agent, settings = self.make(tmp_path, [["10.0.1.5"], LookupFailedError("timeout")])
        asyncio.run(agent.sync_once())
        asyncio.run(agent.sync_once())
        assert upstream_addresses(settings.config_path.read_text()) == ["10.0.1.5"]

    def test_a_render_nginx_rejects_never_replaces_the_working_config(self, tmp_path):
        agent, settings = self.make(tmp_path, [["10.0.1.5"], ["10.0.1.6"]])
        asyncio.run(agent.sync_once())
        working = settings.config_path.read_text()
        broken = replace(PROXY, location="/api/ { no_such_directive on; }")
        agent.settings = replace(settings, proxy=broken)
        asyncio.run(agent.sync_once())
        assert settings.config_path.read_text() == working
        assert agent.addresses == ["10.0.1.5"]
        assert not (tmp_path / "nginx.conf.candidate").exists()

    def test_install_refuses_an_invalid_config(self, tmp_path):
        with pytest.raises(ConfigRejectedError):
            asyncio.run(install("this is not nginx", tmp_path / "nginx.conf"))
        assert not (tmp_path / "nginx.conf").exists()

    def test_a_rejected_render_is_tried_and_logged_once_until_the_tasks_change(self, tmp_path):
        agent, settings = self.make(
            tmp_path, [["10.0.1.5"], ["10.0.1.6"], ["10.0.1.6"], ["10.0.1.6"], ["10.0.1.7"]]
        )
        asyncio.run(agent.sync_once())
        agent.settings = replace(settings, proxy=replace(PROXY, location="/api/ { no_such_directive on; }"))
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                asyncio.run(agent.sync_once())
        assert [entry["event"] for entry in logs] == [
            "rendered configuration rejected; keeping the working one"
        ]
        agent.settings = settings
        asyncio.run(agent.sync_once())
        assert agent.addresses == ["10.0.1.7"]

    def test_a_write_error_keeps_the_working_config_and_the_agent_running(self, tmp_path):
        agent, settings = self.make(tmp_path, [["10.0.1.5"], ["10.0.1.6"], ["10.0.1.6"], ["10.0.1.6"]])
        asyncio.run(agent.sync_once())
        (tmp_path / "nginx.conf.candidate").mkdir()  # writing the candidate now fails with an OSError
        with structlog.testing.capture_logs() as logs:
            asyncio.run(agent.sync_once())
            asyncio.run(agent.sync_once())
        assert [entry["event"] for entry in logs] == [
            "cannot write the configuration; keeping the working one"
        ]
        assert upstream_addresses(settings.config_path.read_text()) == ["10.0.1.5"]
        (tmp_path / "nginx.conf.candidate").rmdir()
        asyncio.run(agent.sync_once())
        assert upstream_addresses(settings.config_path.read_text()) == ["10.0.1.6"]


class TestSettings:
    def test_the_service_counts_under_its_own_name(self):
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
        ],
    )
    def test_a_value_nginx_would_read_as_a_directive_is_refused(self, variable, value):
        with pytest.raises(ConfigError) as raised:
            load({variable: value})
        assert (raised.value.name, raised.value.value) == (variable, value)

    @pytest.mark.parametrize(
        ("environment", "location", "workers"),
        [({}, "/api/", "auto"), ({"PROXY_LOCATION": "/", "NGINX_WORKERS": "3"}, "/", "3")],
    )
    def test_locations_and_workers_that_are_only_that(self, environment, location, workers):
        proxy = load(environment).proxy
        assert (proxy.location, proxy.workers) == (location, workers)

    @pytest.mark.parametrize("name", ["we$b", 'web"; deny all; "', "-web"])
    def test_a_service_name_nginx_would_read_as_more_is_refused(self, name):
        with pytest.raises(ConfigError, match="UPSTREAM_SERVICE"):
            load({"UPSTREAM_SERVICE": name})
