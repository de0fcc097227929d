"""The pure plan of what the agent pushes to nginx."""

from nginx.plan import rate_limits, routes_while_reloading, upstream_changes, wanted_routes
from nginx.routes import Capacity, Route

OWN = Route("web", "web", "/api/", 8000)
SHOP = Route("s_shop", "shop", "/shop/", 9000)


class TestWantedRoutes:
    def test_the_own_route_comes_first_and_the_tables_follow_by_path(self):
        """The variables' route leads; the table's are sorted by path, whatever their order there."""
        blog = Route("s_blog", "blog", "/blog/", 80)
        wanted, why = wanted_routes(OWN, [SHOP, blog], {})
        assert (wanted, why) == ([OWN, blog, SHOP], {})

    def test_a_route_whose_path_or_name_is_taken_is_left_out_with_why(self):
        """A path or a name already routed cannot be routed twice; what the table left out stays listed."""
        same_path = Route("s_api", "api", "/api/", 9000)
        same_name = Route("s_web2", "web", "/web2/", 9000)
        wanted, why = wanted_routes(OWN, [same_path, same_name], {"'s_bad'": "no port"})
        assert wanted == [OWN]
        assert why == {
            "'s_api'": "its path or name is web's already",
            "'s_web2'": "its path or name is web's already",
            "'s_bad'": "no port",
        }


class TestRoutesWhileReloading:
    def test_old_and_new_routes_each_once(self):
        """Before a reload both the routes that go and those that come get their tasks."""
        blog = Route("s_blog", "blog", "/blog/", 80)
        assert routes_while_reloading([OWN, SHOP], [OWN, blog]) == [OWN, SHOP, blog]


class TestRateLimits:
    def test_a_malformed_capacity_keeps_the_last_one_read(self):
        """A table whose limit of a route cannot be read leaves that route's last limit in force."""
        table = {
            "services": [{"service": "s_shop", "name_in_stack": "shop", "rate_limit": {"replica_rps": "x"}}]
        }
        last = {"shop": Capacity(10, 1)}
        limits = rate_limits([OWN, SHOP], table, {"shop": ["10.0.0.1", "10.0.0.2"]}, last)
        assert limits.lines == ["shop 20 20"]
        assert list(limits.malformed) == ["shop"]
        assert limits.capacities["shop"] == Capacity(10, 1)

    def test_no_tasks_no_limit_line(self):
        """A route without tasks gets no limit: nothing would pass it."""
        table = {
            "services": [
                {
                    "service": "s_shop",
                    "name_in_stack": "shop",
                    "rate_limit": {"replica_rps": 5, "burst_seconds": 1},
                }
            ]
        }
        assert rate_limits([SHOP], table, {}, {}).lines == []


class TestUpstreamChanges:
    def test_only_routes_whose_tasks_changed_with_what_came_and_went(self):
        """An unchanged route is not listed; a changed one names the added and removed tasks."""
        before = {"web": ["10.0.0.1"], "shop": ["10.0.0.5", "10.0.0.6"]}
        after = {"web": ["10.0.0.1"], "shop": ["10.0.0.6", "10.0.0.7"]}
        (change,) = upstream_changes(before, after)
        assert (change.service, change.added, change.removed) == ("shop", ["10.0.0.7"], ["10.0.0.5"])
