"""Which Swarm task each container on this node belongs to, from the Docker API, cached."""

from __future__ import annotations

from typing import Any, Protocol

from metrics_collector.sampler import TaskIdentity

SERVICE_LABEL = "com.docker.swarm.service.name"
TASK_ID_LABEL = "com.docker.swarm.task.id"
TASK_NAME_LABEL = "com.docker.swarm.task.name"


class ContainerApi(Protocol):
    """The part of docker.APIClient this module uses."""

    def containers(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...


def identities(containers: list[dict[str, Any]]) -> dict[str, TaskIdentity]:
    """Swarm task containers by id, from a container listing."""
    found = {}
    for container in containers:
        labels = container.get("Labels") if isinstance(container, dict) else None
        if (
            not isinstance(labels, dict)
            or not isinstance(labels.get(SERVICE_LABEL), str)
            or not isinstance(container.get("Id"), str)
        ):
            continue  # not a task container, or an entry the Docker API would not send
        found[container["Id"]] = TaskIdentity(
            container_id=container["Id"],
            service=labels[SERVICE_LABEL],
            task_id=str(labels.get(TASK_ID_LABEL, "")),
            task_name=str(labels.get(TASK_NAME_LABEL, "")),
        )
    return found


class ContainerDirectory:
    """The running task containers, listed at most once per refresh interval."""

    def __init__(self, api: ContainerApi, refresh_interval: float) -> None:
        self._api = api
        self._refresh_interval = refresh_interval
        self._listed_at: float | None = None
        self._tasks: dict[str, TaskIdentity] = {}

    @property
    def listed_at(self) -> float | None:
        """When the containers were last listed; None before the first listing."""
        return self._listed_at

    def tasks(self, now: float) -> dict[str, TaskIdentity]:
        if self._listed_at is None or now - self._listed_at >= self._refresh_interval:
            listing = self._api.containers(filters={"label": SERVICE_LABEL, "status": "running"})
            self._tasks = identities(listing)
            self._listed_at = now
        return self._tasks

    def forget(self, container_id: str) -> None:
        """Drop a container that has gone, until the next listing says otherwise."""
        self._tasks.pop(container_id, None)
