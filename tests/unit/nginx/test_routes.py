"""The routing table as the entry point reads it."""

import pytest

from nginx.routes import Capacity, RoutesError, capacity_of, limit_lines, routes_of
from tests.unit.nginx.shared import LIMIT, SHOP


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

    def test_a_route_keeps_its_balancing_policy_and_round_robin_without_one(self):
        """A route's balancing policy is the table's; a table without one (older) means round robin."""
        shop = {"service": "s_shop", "name_in_stack": "shop", "route": {"path": "/shop/", "port": 9000}}
        assert routes_of({"services": [shop]})[0][0].balance == "round_robin"
        shop["route"] = {"path": "/shop/", "port": 9000, "balance": "ewma"}
        assert routes_of({"services": [shop]})[0][0].balance == "ewma"
        assert routes_of({"services": [shop]})[0][0].sticky == "none"

    @pytest.mark.parametrize(
        ("route", "names"),
        [
            ({"path": "/x/ { return 200; }", "port": 80}, {}),
            ({"path": "x", "port": 80}, {}),
            ({"path": "/x/", "port": "80; deny all"}, {}),
            ({"path": "/x/", "port": 70000}, {}),
            ({"path": "/x/", "port": True}, {}),
            ({"path": "/x/", "port": 80, "balance": "random"}, {}),
            ({"path": "/x/", "port": 80, "balance": 'ewma"); os.exit()'}, {}),
            ({"path": "/x/", "port": 80, "balance": None}, {}),
            ({"path": "/x/", "port": 80, "sticky": "ip"}, {}),
            ({"path": "/x/", "port": 80, "sticky": 'cookie", "/"); os.exit()'}, {}),
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
