"""The node's Docker engine, for the one call the collector makes: the container listing."""

from __future__ import annotations

from typing import Any

import docker


class EngineContainers:
    """The engine's container listing, through a client made at the first listing.

    The client asks the engine for its API version when it is made. Made at the first listing
    rather than at start, an engine that cannot be reached yet (the filtered socket of the
    ``docker-api`` service is not there until its task runs) fails one sample, which is
    reported on ``/health`` and tried again, instead of stopping the collector.
    """

    def __init__(self, docker_host: str) -> None:
        self._docker_host = docker_host
        self._client: docker.APIClient | None = None

    def containers(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if self._client is None:
            self._client = docker.APIClient(base_url=self._docker_host)
        listing: list[dict[str, Any]] = self._client.containers(filters=filters)
        return listing

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
