import asyncio
import shutil
import subprocess

import pytest
import structlog

from common.config import ConfigError
from nginx.adapters import LookupFailedError, PushFailedError, RoutesUnavailableError
from nginx.agent import UpstreamAgent
from nginx.config import ProxySettings, render, static_route
from nginx.process import ConfigRejectedError, install
from nginx.routes import Capacity, Route, RoutesError, capacity_of, limit_lines, routes_of
from nginx.settings import AgentSettings, load

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


def one_route(addresses):
    """The configuration of the variables' own route alone, its tasks at ``addresses``."""
    return render(PROXY, [static_route(PROXY)], {"web": addresses})


SHOP = Route(service="s_shop", counted_as="shop", path="/shop/", port=9000)


class TestRender:
    def test_nginx_starts_with_the_tasks_found(self):
        """The configuration written at start already holds the tasks found, sorted, behind the Lua
        balancer."""
        config = one_route(["10.0.1.7", "10.0.1.5"])
        assert 'require("configuration").init({"web 10.0.1.5:8000", "web 10.0.1.7:8000"})' in config
        assert "location /api/ {" in config
        assert "balancer_by_lua_block" in config

    def test_no_tasks_starts_with_none(self):
        """A service without tasks starts with an empty list, not a broken configuration."""
        assert 'require("configuration").init({})' in one_route([])

    def test_the_tasks_are_pushed_on_the_loopback_only(self):
        """The port the agent pushes to listens on 127.0.0.1 only: no one else can change the tasks."""
        assert "listen 127.0.0.1:10246;" in one_route([])

    def test_each_route_has_its_location_and_its_tasks(self):
        """Each route has its location, counted, limited and balanced under its own name."""
        config = render(PROXY, [static_route(PROXY), SHOP], {"web": ["10.0.1.5"], "shop": ["10.0.2.9"]})
        assert 'init({"web 10.0.1.5:8000", "shop 10.0.2.9:9000"})' in config
        assert 'require("monitor").init(' in config
        assert '{"web", "shop"})' in config
        location = (
            "location /shop/ {\n            access_by_lua_block {\n"
            '                require("monitor").start("shop")\n'
            '                require("ratelimit")'
        )
        assert location + '.admit("shop")' in config
        assert 'require("balancer").route("shop")' in config

    @pytest.mark.parametrize("addresses", [[], ["10.0.1.5"], [f"10.0.1.{n}" for n in range(2, 12)]])
    def test_nginx_accepts_what_is_rendered(self, addresses, tmp_path):
        """nginx -t accepts every configuration rendered, whatever the tasks."""
        assert nginx_accepts(render(PROXY, [static_route(PROXY), SHOP], {"web": addresses}), tmp_path)


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


class TestRoutes:
    def test_a_service_is_found_by_its_name_or_its_name_in_its_stack(self):
        """A service's capacity is found under its Swarm name or its name in its stack."""
        table = {"services": [{"service": "s_web", "name_in_stack": "web", "rate_limit": LIMIT}]}
        assert capacity_of(table, ("web",)) == capacity_of(table, ("s_web",)) == Capacity(20, 2)
        assert capacity_of(table, ("other",)) is None
        assert capacity_of({"services": [{"service": "web", "rate_limit": None}]}, ("web",)) is None

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
        """A table or an entry that is not what the autoscaler publishes is an error, not a missing limit."""
        with pytest.raises(RoutesError):
            capacity_of(table, ("web",))

    def test_the_limit_is_the_capacity_times_the_tasks_with_a_burst_of_at_least_one(self):
        """The limit is the capacity times the tasks, with a burst of at least one request; none without
        tasks."""
        assert limit_lines("web", Capacity(2.5, 0), 3) == ["web 7.5 1"]
        assert limit_lines("web", Capacity(2.5, 4), 3) == ["web 7.5 30"]
        assert limit_lines("web", Capacity(2.5, 4), 0) == []
        assert limit_lines("web", None, 3) == []


class TestRoutesOf:
    def test_every_entry_with_a_route_is_one(self):
        """Every entry of the table that has a route becomes one; the others have none."""
        table = {
            "services": [
                {"service": "s_shop", "name_in_stack": "shop", "route": {"path": "/shop/", "port": 9000}},
                {"service": "s_web", "name_in_stack": "web", "route": None},
            ]
        }
        assert routes_of(table) == ([SHOP], {})

    @pytest.mark.parametrize(
        ("route", "names"),
        [
            ({"path": "/x/ { return 200; }", "port": 80}, {}),
            ({"path": "x", "port": 80}, {}),
            ({"path": "/x/", "port": "80; deny all"}, {}),
            ({"path": "/x/", "port": 70000}, {}),
            ({"path": "/x/", "port": True}, {}),
            ({"path": "/x/", "port": 80}, {"service": 'x"); os.exit()'}),
            ({"path": "/x/", "port": 80}, {"name_in_stack": "x y"}),
            ("/x/", {}),
        ],
    )
    def test_an_entry_nginx_would_read_as_more_is_left_out_and_named(self, route, names):
        """An entry whose route or names nginx would read as more is left out and named, the others kept."""
        entry = {"service": "s_x", "name_in_stack": "x", "route": route, **names}
        routes, left_out = routes_of({"services": [entry, "junk"]})
        assert routes == []
        assert set(left_out) == {repr(entry["service"]), "entry 1"}
