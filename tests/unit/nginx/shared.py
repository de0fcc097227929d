"""What the nginx tests share: the entry point's settings, a route and a rate limit."""

from nginx.config import ProxySettings
from nginx.routes import Route

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

SHOP = Route(service="s_shop", counted_as="shop", path="/shop/", port=9000)
