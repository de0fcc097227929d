import asyncio
import shutil
import subprocess

import pytest
import structlog

from common.config import ConfigError
from nginx.agent import (
    AgentSettings,
    ConfigRejectedError,
    LookupFailedError,
    PushFailedError,
    UpstreamAgent,
    install,
    load,
)
from nginx.config import ProxySettings, render

PROXY = ProxySettings(
    listen_port=8081,
    location="/api/",
    upstream_port=8000,
    workers="1",
    service="web",
    metrics_port=9145,
    control_port=10246,
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
    def test_nginx_starts_with_the_tasks_found(self):
        config = render(["10.0.1.7", "10.0.1.5"], PROXY)
        assert 'require("configuration").init({"10.0.1.5:8000", "10.0.1.7:8000"})' in config
        assert "location /api/ {" in config
        assert "balancer_by_lua_block" in config

    def test_no_tasks_starts_with_none(self):
        assert 'require("configuration").init({})' in render([], PROXY)

    def test_the_tasks_are_pushed_on_the_loopback_only(self):
        assert "listen 127.0.0.1:10246;" in render([], PROXY)

    @pytest.mark.parametrize("addresses", [[], ["10.0.1.5"], [f"10.0.1.{n}" for n in range(2, 12)]])
    def test_nginx_accepts_what_is_rendered(self, addresses, tmp_path):
        assert nginx_accepts(render(addresses, PROXY), tmp_path)


class TestUpstreamAgent:
    def make(self, tmp_path, answers, refusals=()):
        """An agent whose lookups give ``answers`` in turn and whose pushes fail ``refusals`` times first."""
        settings = AgentSettings(
            service="web", sync_interval=1, config_path=tmp_path / "nginx.conf", proxy=PROXY
        )
        queue, failures, pushed = list(answers), list(refusals), []

        async def resolve(service):
            answer = queue.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        async def push(lines):
            if failures:
                raise PushFailedError(failures.pop(0))
            pushed.append(lines)

        return UpstreamAgent(settings, resolve, push), pushed

    def test_pushes_each_change_of_the_tasks(self, tmp_path):
        answers = [["10.0.1.5"], ["10.0.1.5"], ["10.0.1.6", "10.0.1.5"], ["10.0.1.6"]]
        agent, pushed = self.make(tmp_path, answers)
        for _ in answers:
            asyncio.run(agent.sync_once())
        assert pushed == [["10.0.1.5:8000"], ["10.0.1.5:8000", "10.0.1.6:8000"], ["10.0.1.6:8000"]]
        assert agent.addresses == ["10.0.1.6"]

    def test_a_failed_lookup_keeps_the_current_tasks(self, tmp_path):
        agent, pushed = self.make(tmp_path, [["10.0.1.5"], LookupFailedError("timeout")])
        asyncio.run(agent.sync_once())
        asyncio.run(agent.sync_once())
        assert (pushed, agent.addresses) == ([["10.0.1.5:8000"]], ["10.0.1.5"])

    def test_a_refused_push_is_logged_once_and_pushed_again_until_taken(self, tmp_path):
        answers = [["10.0.1.5"]] * 4
        agent, pushed = self.make(tmp_path, answers, refusals=["connection refused"] * 3)
        with structlog.testing.capture_logs() as logs:
            for _ in answers:
                asyncio.run(agent.sync_once())
        assert [entry["event"] for entry in logs] == [
            "nginx did not take the task list; keeping its current one",
            "upstream updated",
        ]
        assert (pushed, agent.addresses) == ([["10.0.1.5:8000"]], ["10.0.1.5"])

    def test_install_refuses_an_invalid_config(self, tmp_path):
        with pytest.raises(ConfigRejectedError):
            asyncio.run(install("this is not nginx", tmp_path / "nginx.conf"))
        assert not (tmp_path / "nginx.conf").exists()


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
