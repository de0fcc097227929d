"""The agent that keeps nginx's routes, tasks and limits equal to what runs."""

import asyncio

import pytest
import structlog

from nginx.adapters import LookupFailedError, PushFailedError, RoutesUnavailableError
from nginx.agent import UpstreamAgent
from nginx.process import ConfigRejectedError, install
from nginx.settings import AgentSettings
from tests.unit.nginx.shared import LIMIT, PROXY


class Outside:
    """The agent's outside: DNS and the routing table as a test sets them, and what reaches nginx.

    ``dns``: per service, its tasks' addresses or the LookupFailedError to raise; ``table``:
    the routing table or the RoutesUnavailableError to raise. A push fails while
    ``refusals`` last; a configuration containing "refused" is refused.
    """

    def __init__(self, refusals=()):
        self.dns = {}
        self.table = {"services": []}
        self.refusals = list(refusals)
        self.pushed, self.limits, self.configs = [], [], []

    async def resolve(self, service):
        return self._given(self.dns.get(service, []))

    async def read_routes(self):
        return self._given(self.table)

    @staticmethod
    def _given(answer):
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def push(self, lines):
        if self.refusals:
            raise PushFailedError(self.refusals.pop(0))
        self.pushed.append(lines)

    async def push_limits(self, lines):
        self.limits.append(lines)

    async def apply_config(self, config):
        if "refused" in config:
            raise ConfigRejectedError("nginx: [emerg] refused")
        self.configs.append(config)

    def agent(self, tmp_path):
        settings = AgentSettings(
            service="web", sync_interval=1, config_path=tmp_path / "nginx.conf", proxy=PROXY
        )
        return UpstreamAgent(
            settings,
            self.resolve,
            self.push,
            push_limits=self.push_limits,
            read_routes=self.read_routes,
            apply_config=self.apply_config,
        )

    def syncs(self, agent, changes):
        """One sync after each change: (dns, table), either None to keep it."""
        for dns, table in changes:
            self.dns = self.dns if dns is None else dns
            self.table = self.table if table is None else table
            asyncio.run(agent.sync_once())


def tasks_of(*answers):
    """The web service's tasks, one answer a sync, as (dns, table) changes."""
    return [({"web": answer}, None) for answer in answers]


class TestUpstreamAgent:
    def test_pushes_each_change_of_the_tasks(self, tmp_path):
        """Each change of the tasks DNS gives is pushed once; an unchanged list is not pushed again."""
        outside = Outside()
        agent = outside.agent(tmp_path)
        outside.syncs(agent, tasks_of(["10.0.1.5"], ["10.0.1.5"], ["10.0.1.6", "10.0.1.5"], ["10.0.1.6"]))
        first, both, last = (
            ["web 10.0.1.5:8000"],
            ["web 10.0.1.5:8000", "web 10.0.1.6:8000"],
            ["web 10.0.1.6:8000"],
        )
        assert outside.pushed == [first, both, last]
        assert agent.tasks == {"web": ["10.0.1.6"]}

    def test_a_failed_lookup_keeps_the_current_tasks(self, tmp_path):
        """A DNS lookup that fails keeps the tasks nginx has rather than empty them."""
        outside = Outside()
        agent = outside.agent(tmp_path)
        outside.syncs(agent, tasks_of(["10.0.1.5"], LookupFailedError("timeout")))
        assert (outside.pushed, agent.tasks) == ([["web 10.0.1.5:8000"]], {"web": ["10.0.1.5"]})

    def test_a_refused_push_is_logged_once_and_pushed_again_until_taken(self, tmp_path):
        """A push nginx refuses is one problem, pushed again at every sync until taken, then cleared."""
        outside = Outside(refusals=["connection refused"] * 3)
        agent = outside.agent(tmp_path)
        with structlog.testing.capture_logs() as logs:
            outside.syncs(agent, tasks_of(*[["10.0.1.5"]] * 4))
        assert [(entry["event"], entry.get("kind")) for entry in logs] == [
            ("input problem", "tasks"),
            ("input problem cleared", "tasks"),
            ("upstream updated", None),
        ]
        assert (outside.pushed, agent.tasks) == ([["web 10.0.1.5:8000"]], {"web": ["10.0.1.5"]})

    def test_the_rate_limit_is_one_tasks_capacity_times_the_tasks(self, tmp_path):
        """The limit pushed is one task's capacity times the tasks nginx sends to, following both."""
        limited = {"services": [{"service": "s_web", "name_in_stack": "web", "rate_limit": LIMIT}]}
        tasks = [["10.0.1.5"], ["10.0.1.5", "10.0.1.6"], ["10.0.1.5", "10.0.1.6"], ["10.0.1.6"], []]
        tables = [limited, limited, {"services": []}, limited, limited]
        outside = Outside()
        agent = outside.agent(tmp_path)
        outside.syncs(agent, [({"web": answer}, table) for answer, table in zip(tasks, tables, strict=True)])
        # 20 a second a task, with two seconds' worth as burst; none without tasks.
        assert outside.limits == [["web 20 40"], ["web 40 80"], [], ["web 20 40"], []]

    def test_an_unreadable_or_malformed_routing_table_keeps_the_last_limit(self, tmp_path):
        """An unreadable or malformed routing table keeps the last limit; each problem is logged once."""
        limited = {"services": [{"service": "web", "rate_limit": LIMIT}]}
        lots = {"replica_rps": "lots", "burst_seconds": 1}
        malformed = {"services": [{"service": "web", "rate_limit": lots}]}
        unreadable = RoutesUnavailableError("ConnectError")
        outside = Outside()
        agent = outside.agent(tmp_path)
        with structlog.testing.capture_logs() as logs:
            tables = [limited, unreadable, unreadable, malformed, limited]
            outside.syncs(agent, [({"web": ["10.0.1.5"]}, table) for table in tables])
        assert outside.limits == [["web 20 40"]]
        problems = [entry["problem"] for entry in logs if entry["log_level"] == "error"]
        assert problems == ["ConnectError", "replica_rps is not a finite number: 'lots'"]
        assert agent.problems.active == {}

    def test_a_route_added_or_gone_reloads_nginx_and_its_tasks_are_pushed(self, tmp_path):
        """A route added or gone reloads nginx, with the tasks of old and new routes pushed before."""
        shop = {"service": "s_shop", "name_in_stack": "shop", "route": {"path": "/shop/", "port": 9000}}
        outside = Outside()
        agent = outside.agent(tmp_path)
        dns = {"web": ["10.0.1.5"], "s_shop": ["10.0.2.9"]}
        outside.syncs(agent, [(dns, {"services": [shop]}), (None, None), (None, {"services": []})])
        assert [("location /shop/ {" in config) for config in outside.configs] == [True, False]
        # Before each reload, the old and the new routes' tasks; after it, the new ones' alone.
        both = ["web 10.0.1.5:8000", "shop 10.0.2.9:9000"]
        assert outside.pushed == [both, both, ["web 10.0.1.5:8000"]]
        assert [route.path for route in agent.routes] == ["/api/"]

    def test_a_route_whose_path_or_name_is_taken_is_left_out_and_logged_once(self, tmp_path):
        """A route whose path or name is taken is left out, logged once, and again if it comes back."""
        clash = {"service": "s_api", "name_in_stack": "api", "route": {"path": "/api/", "port": 9000}}
        outside = Outside()
        agent = outside.agent(tmp_path)
        with structlog.testing.capture_logs() as logs:
            outside.syncs(agent, [(None, {"services": [clash]}), (None, None)])
            assert agent.problems.active == {("route", "'s_api'"): "its path or name is web's already"}
            outside.syncs(agent, [(None, {"services": []}), (None, {"services": [clash]})])
        # Logged when it appeared, over when the clash went, logged again when it came back.
        errors = [(entry["kind"], entry["subject"]) for entry in logs if entry["log_level"] == "error"]
        assert errors == [("route", "'s_api'")] * 2
        assert (outside.configs, [route.path for route in agent.routes]) == ([], ["/api/"])

    def test_a_configuration_nginx_refuses_keeps_the_routes_it_has(self, tmp_path):
        """A configuration nginx -t refuses is not put in force: nginx keeps its routes."""
        refused = {"service": "s_refused", "name_in_stack": "refused", "route": {"path": "/x/", "port": 80}}
        outside = Outside()
        agent = outside.agent(tmp_path)
        outside.syncs(agent, [(None, {"services": [refused]}), (None, None)])
        assert [route.path for route in agent.routes] == ["/api/"]
        assert agent.problems.active == {("config", "routes"): "nginx: [emerg] refused"}

    def test_install_refuses_an_invalid_config(self, tmp_path):
        """install leaves no file behind when nginx -t refuses the configuration."""
        with pytest.raises(ConfigRejectedError):
            asyncio.run(install("this is not nginx", tmp_path / "nginx.conf"))
        assert not (tmp_path / "nginx.conf").exists()
