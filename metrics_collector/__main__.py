"""``python -m metrics_collector``: run the metrics collector on this node."""

from __future__ import annotations

import os
import socket
import time

import structlog
from prometheus_client.registry import CollectorRegistry

from common import http
from common.lifecycle import http_worker, run_workers, start
from metrics_collector.cgroups import host_memory_bytes
from metrics_collector.containers import ContainerDirectory
from metrics_collector.daemon import CollectorMetrics, MetricsCollector, routes
from metrics_collector.engine import EngineContainers
from metrics_collector.sampler import Sampler
from metrics_collector.settings import Settings, load

log = structlog.get_logger("metrics_collector")


async def run(settings: Settings) -> None:
    engine = EngineContainers(settings.docker_host)
    node = os.environ.get("NODE_NAME") or socket.gethostname()
    node_id = os.environ.get("NODE_ID") or None
    collector = MetricsCollector(
        settings.sampling,
        ContainerDirectory(engine, settings.sampling.container_refresh_interval),
        settings.cgroup_root,
        Sampler(settings.sampling.window, host_memory_bytes(settings.meminfo)),
    )
    registry = CollectorRegistry()
    registry.register(CollectorMetrics(collector))
    server = await http.serve(
        routes(collector, registry, node, time.time, node_id), settings.host, settings.port
    )
    log.info(
        "metrics collector started",
        node=node,
        node_id=node_id,
        port=settings.port,
        cgroup_root=str(settings.cgroup_root),
    )
    await run_workers({"sampling-loop": collector.run, "http-server": http_worker(server)})
    engine.close()


if __name__ == "__main__":
    start(load, run)
