"""nginx's configuration as the agent renders it."""

import shutil
import subprocess

import pytest

from nginx.config import render, static_route
from tests.unit.nginx.shared import PROXY, SHOP


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
        assert 'require("balancer").route("shop", "round_robin", "none", "/shop/")' in config

    @pytest.mark.parametrize("addresses", [[], ["10.0.1.5"], [f"10.0.1.{n}" for n in range(2, 12)]])
    def test_nginx_accepts_what_is_rendered(self, addresses, tmp_path):
        """nginx -t accepts every configuration rendered, whatever the tasks."""
        assert nginx_accepts(render(PROXY, [static_route(PROXY), SHOP], {"web": addresses}), tmp_path)
