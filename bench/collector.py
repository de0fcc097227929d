"""What the collector costs per container, beside Docker's own stats endpoint, in one run.

    .venv/bin/python bench/collector.py [--containers 200] [--samples 20] [--image IMAGE]

Starts ``--containers`` idle containers labelled as Swarm tasks (``sleep``, 32 MiB and
0.05 CPU each) in this machine's engine, then measures, alternately so that a busy
machine weighs on both alike:

- **collector**: one sample as the collector takes it (``MetricsCollector.read`` and
  ``apply``: the cached listing, the cgroup files, the sampler), over every container;
- **listing**: the collector's container listing (it runs once per
  CONTAINER_REFRESH_INTERVAL, 10 s by default, not every sample);
- **docker stats**: Docker's ``/containers/{id}/stats?stream=false&one-shot=true`` for
  every container, what a collector built on the Docker API would call, 32 at a time
  (one at a time, each waits for the engine's next collection, up to a second).

It prints the medians per container and removes the containers it started, by id.
Needs a running engine and a local image with ``sleep`` (the stack's base image, which
``./deploy-autoscaling.sh`` builds, is found by default). Runs as root (cgroup files).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

from metrics_collector.cgroups import host_memory_bytes
from metrics_collector.containers import SERVICE_LABEL, TASK_ID_LABEL, TASK_NAME_LABEL, ContainerDirectory
from metrics_collector.daemon import MetricsCollector
from metrics_collector.sampler import Sampler
from metrics_collector.settings import SamplingSettings

BENCH_LABEL = "swarm-autoscaler.bench"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _image(client: docker.DockerClient, chosen: str | None) -> str:
    if chosen:
        return chosen
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(("swarm-autoscaler-base:", "swarm-autoscaler:")):
                return str(tag)
    sys.exit("no image with sleep found: pass --image, or run ./deploy-autoscaling.sh once")


def _start(client: docker.DockerClient, image: str, count: int) -> list[str]:
    def one(index: int) -> str:
        container = client.containers.run(
            image,
            ["sleep", "3600"],
            detach=True,
            labels={
                BENCH_LABEL: "1",
                SERVICE_LABEL: f"bench_s{index % 20}",
                TASK_ID_LABEL: f"task{index}",
                TASK_NAME_LABEL: f"bench_s{index % 20}.{index}",
            },
            mem_limit="32m",
            nano_cpus=50_000_000,
            network_mode="none",
        )
        return str(container.id)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def _seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


STATS_AT_ONCE = 32


def _docker_stats(api: docker.APIClient, containers: list[str]) -> None:
    """Docker's one-shot stats of every container, as a collector built on the Docker API reads them."""
    with ThreadPoolExecutor(STATS_AT_ONCE) as pool:
        list(pool.map(lambda container: api.stats(container, stream=False, one_shot=True), containers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--image")
    options = parser.parse_args()
    client = docker.from_env(timeout=120, max_pool_size=STATS_AT_ONCE)
    api = client.api
    image = _image(client, options.image)
    print(f"starting {options.containers} containers of {image} ...", flush=True)
    started = _start(client, image, options.containers)
    try:
        collector = MetricsCollector(
            SamplingSettings(interval=5, window=30, container_refresh_interval=3600),
            ContainerDirectory(api, 3600),
            CGROUP_ROOT,
            Sampler(30, host_memory_bytes(Path("/proc/meminfo"))),
        )
        collector.sample_once()  # the first listing and the cgroup paths, as at a collector's start
        measured = len(collector.sampler.report("bench")["services"])
        tasks = sum(len(v["task_ids"]) for v in collector.sampler.report("bench")["services"].values())
        ours, listings, stats = [], [], []
        for _ in range(options.samples):
            ours.append(_seconds(collector.sample_once))
            listings.append(
                _seconds(lambda: api.containers(filters={"label": SERVICE_LABEL, "status": "running"}))
            )
            stats.append(_seconds(lambda: _docker_stats(api, started)))
        count = len(started)
        print(f"\n{count} task containers ({tasks} measured, {measured} services), {options.samples} rounds:")
        print(f"  {'':<34}{'per sample':>12}{'per container':>16}")
        for name, figures in (
            ("collector sample (files, sampler)", ours),
            ("collector listing (every 10 s)", listings),
            (f"docker stats, {STATS_AT_ONCE} at once (baseline)", stats),
        ):
            median = statistics.median(figures)
            print(f"  {name:<34}{median * 1000:>10.1f}ms{median / count * 1000:>14.3f}ms")
    finally:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda cid: api.remove_container(cid, force=True), started))
        print(f"removed the {len(started)} containers it started")


if __name__ == "__main__":
    main()
