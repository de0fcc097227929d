"""The stack under test, deployed by the project's own script on a real Docker Swarm."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import docker
import httpx
import pytest

from tests.e2e.support import DEPLOY, PORTS, SETTINGS, STACK, Stack, deploy_environment


def _wait_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=3)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(1)
    pytest.fail(f"{url} not healthy after {timeout:.0f}s: {last}")


def remove_volume(volume: str) -> None:
    """--down keeps Prometheus' samples and the data tier's data for an operator; a test run starts from none.

    The volume is in use until Docker has removed the stopped containers of the stack.
    """
    for _ in range(60):
        if (
            subprocess.run(["docker", "volume", "rm", volume], capture_output=True, check=False).returncode
            == 0
        ):
            return
        if subprocess.run(
            ["docker", "volume", "inspect", volume], capture_output=True, check=False
        ).returncode:
            return  # there is none
        time.sleep(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that remove the stack and deploy it again run after every other test of their folder.

    Each folder's tests stay together, so that a folder's deployment is made once.
    """
    folders: dict[object, int] = {}
    for item in items:
        folders.setdefault(item.path.parent, len(folders))
    items.sort(key=lambda item: (folders[item.path.parent], item.get_closest_marker("redeploys") is not None))


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    """Removed after the package's last test, so that the multi-node tests have the machine to themselves."""
    environment = deploy_environment()
    script = DEPLOY
    subprocess.run([str(script), "--with-monitoring"], env=environment, check=True, timeout=900)
    client = docker.from_env()
    deployed = Stack(
        name=STACK,
        entry=f"http://127.0.0.1:{PORTS['PUBLISHED_PORT']}",
        entry_metrics=f"http://127.0.0.1:{PORTS['ENTRYPOINT_METRICS_PORT']}/metrics",
        autoscaler=f"http://127.0.0.1:{PORTS['AUTOSCALER_PORT']}",
        collector=f"http://127.0.0.1:{PORTS['COLLECTOR_PORT']}",
        prometheus=f"http://127.0.0.1:{PORTS['PROMETHEUS_PORT']}",
        settings=SETTINGS,
        docker=client,
    )
    try:
        _wait_healthy(deployed.collector + "/health", 60)
        _wait_healthy(deployed.autoscaler + "/health", 90)
        yield deployed
    finally:
        subprocess.run([str(script), "--down"], env=environment, check=False, timeout=180)
        for volume in ("prometheus-data", "postgres-data", "redis-data"):
            remove_volume(f"{STACK}_{volume}")
        client.close()
