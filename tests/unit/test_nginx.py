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
    RoutesUnavailableError,
    UpstreamAgent,
    install,
    load,
)
from nginx.config import ProxySettings, render
from nginx.routes import Capacity, RoutesError, capacity_of, limit_lines

PROXY = ProxySettings(
    listen_port=8081,
    location="/api/",
    upstream_port=8000,
    workers="1",
    service="web",
    metrics_port=9145,
    control_port=10246,
)
LIMIT = {"replica_rps": 20, "burst_seconds": 2}


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
    def make(self, tmp_path, answers, refusals=(), tables=None):
        """An agent whose lookups give ``answers`` in turn and whose pushes fail ``refusals`` times first.

        Its routing tables are ``tables`` in turn (an exception is raised), or none that limits.
        """
        settings = AgentSettings(
            service="web", sync_interval=1, config_path=tmp_path / "nginx.conf", proxy=PROXY
        )
        queue, failures, pushed = list(answers), list(refusals), []
        routes = list(tables) if tables is not None else [{"services": []}] * len(answers)
        self.limits = []

        async def read_routes():
            table = routes.pop(0)
            if isinstance(table, Exception):
                raise table
            return table

        async def push_limits(lines):
            self.limits.append(lines)

        async def resolve(service):
            answer = queue.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        async def push(lines):
            if failures:
                raise PushFailedError(failures.pop(0))
            pushed.append(lines)

        return UpstreamAgent(
            settings, resolve, push, push_limits=push_limits, read_routes=read_routes
        ), pushed

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

    def test_the_rate_limit_is_one_tasks_capacity_times_the_tasks(self, tmp_path):
        limited = {"services": [{"service": "s_web", "name_in_stack": "web", "rate_limit": LIMIT}]}
        answers = [["10.0.1.5"], ["10.0.1.5", "10.0.1.6"], ["10.0.1.5", "10.0.1.6"], ["10.0.1.6"], []]
        tables = [limited, limited, {"services": []}, limited, limited]
        agent, _ = self.make(tmp_path, answers, tables=tables)
        for _ in answers:
            asyncio.run(agent.sync_once())
        # 20 a second a task, with two seconds' worth as burst; none without tasks.
        assert self.limits == [["web 20 40"], ["web 40 80"], [], ["web 20 40"], []]

    def test_an_unreadable_or_malformed_routing_table_keeps_the_last_limit(self, tmp_path):
        limited = {"services": [{"service": "web", "rate_limit": LIMIT}]}
        malformed = {
            "services": [{"service": "web", "rate_limit": {"replica_rps": "lots", "burst_seconds": 1}}]
        }
        unreadable = RoutesUnavailableError("ConnectError")
        tables = [limited, unreadable, unreadable, malformed, limited]
        agent, _ = self.make(tmp_path, [["10.0.1.5"]] * 5, tables=tables)
        with structlog.testing.capture_logs() as logs:
            for _ in tables:
                asyncio.run(agent.sync_once())
        assert self.limits == [["web 20 40"]]
        problems = [entry["error"] for entry in logs if entry["log_level"] == "error"]
        assert problems == ["ConnectError", "replica_rps is not a finite number: 'lots'"]
        assert agent.problems == {}

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
            ("ROUTES_URL", "http://autoscaler:8080/routes; deny all"),
            ("ROUTES_URL", "file:///etc/passwd"),
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


class TestRoutes:
    def test_a_service_is_found_by_its_name_or_its_name_in_its_stack(self):
        table = {"services": [{"service": "s_web", "name_in_stack": "web", "rate_limit": LIMIT}]}
        assert capacity_of(table, "web") == capacity_of(table, "s_web") == Capacity(20, 2)
        assert capacity_of(table, "other") is None
        assert capacity_of({"services": [{"service": "web", "rate_limit": None}]}, "web") is None

    @pytest.mark.parametrize(
        "table",
        [
            [],
            {"services": "web"},
            {"services": [{"service": "web", "rate_limit": 20}]},
            {"services": [{"service": "web", "rate_limit": {"replica_rps": 0, "burst_seconds": 1}}]},
            {"services": [{"service": "web", "rate_limit": {"replica_rps": True, "burst_seconds": 1}}]},
            {"services": [{"service": "web", "rate_limit": {"replica_rps": 5, "burst_seconds": -1}}]},
            {"services": [{"service": "web", "rate_limit": {"replica_rps": 5, "burst_seconds": 1e9}}]},
            {"services": [{"service": "web", "rate_limit": {"replica_rps": 5}}]},
        ],
    )
    def test_a_table_or_entry_that_is_not_one_is_an_error(self, table):
        with pytest.raises(RoutesError):
            capacity_of(table, "web")

    def test_the_limit_is_the_capacity_times_the_tasks_with_a_burst_of_at_least_one(self):
        assert limit_lines("web", Capacity(2.5, 0), 3) == ["web 7.5 1"]
        assert limit_lines("web", Capacity(2.5, 4), 3) == ["web 7.5 30"]
        assert limit_lines("web", Capacity(2.5, 4), 0) == []
        assert limit_lines("web", None, 3) == []
