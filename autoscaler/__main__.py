"""``python -m autoscaler``: run the autoscaler daemon; ``python -m autoscaler simulate``: the backtest."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict

import docker
import httpx
import structlog
from prometheus_client.registry import CollectorRegistry

from autoscaler.api import OFF_THE_LOOP, routes
from autoscaler.daemon import Autoscaler
from autoscaler.leadership import Leadership
from autoscaler.lease_store import ConfigLeaseStore, engine_client
from autoscaler.settings import Settings, load
from autoscaler.state_store import ConfigStateStore
from autoscaler.swarm import Swarm
from autoscaler.telemetry import AutoscalerCollector
from common import http
from common.lifecycle import http_worker, run_workers, start

log = structlog.get_logger("autoscaler")


async def run(settings: Settings) -> None:
    instance = settings.instance
    api = docker.APIClient(base_url=instance.docker_host)
    # A renewal slower than a retry period is as good as failed.
    engine = engine_client(instance.docker_host, timeout=instance.lease.retry_period)
    async with httpx.AsyncClient(timeout=settings.collectors.timeout) as client, engine:
        scope = settings.state.scope
        leadership = Leadership(ConfigLeaseStore(engine, scope), instance.lease, instance.name)
        daemon = Autoscaler(
            settings, Swarm(api, scope), client, store=ConfigStateStore(api, scope), leadership=leadership
        )
        registry = CollectorRegistry()
        registry.register(AutoscalerCollector(daemon.published, leadership))
        endpoints = routes(
            daemon.published,
            registry,
            time.time,
            settings.loop.check_interval,
            settings.policy.metrics_max_age,
            leadership=leadership,
        )
        server = await http.serve(
            endpoints, settings.server.host, settings.server.port, in_thread=OFF_THE_LOOP
        )
        log.info(
            "autoscaler started",
            port=settings.server.port,
            scope=scope or "every service in the swarm",
            instance=instance.name,
            policy=asdict(settings.policy),
        )
        await run_workers(
            {"lease": leadership.run, "control-loop": daemon.run, "http-server": http_worker(server)}
        )
    api.close()


def main(argv: list[str]) -> None:
    if argv[:1] == ["simulate"]:
        from autoscaler.backtest.cli import main as simulate  # noqa: PLC0415 - the daemon does not need it

        simulate(argv[1:])
    elif argv:
        sys.exit(f"unknown command {argv[0]!r}: run with no arguments for the daemon, or 'simulate'")
    else:
        start(load, run)


if __name__ == "__main__":
    main(sys.argv[1:])
