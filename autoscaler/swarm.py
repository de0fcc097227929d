"""The Docker Engine API, as the autoscaler needs it: find services and their tasks, scale them.

Every answer is checked where it enters: a malformed service is reported by its id
and skipped, a malformed task is left out of the coverage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import docker.errors

from autoscaler.labels import ENABLE_LABEL, PATH_LABEL, STACK_NAMESPACE_LABEL
from autoscaler.policy import MOST_REPLICAS


class DockerApi(Protocol):
    """The part of docker.APIClient this module uses."""

    def ping(self) -> bool: ...
    def services(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...
    def tasks(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...
    def inspect_service(self, service: str) -> dict[str, Any]: ...
    def update_service(self, service: str, version: int, **kwargs: Any) -> Any: ...  # noqa: ANN401 - the SDK returns untyped JSON


class StaleServiceError(Exception):
    """The service changed after the decision was made: read it again and decide again."""


@dataclass(frozen=True)
class SwarmService:
    id: str
    name: str
    labels: dict[str, str]
    replicas: int | None
    """Replicas in the spec; None for a global service, which cannot be scaled."""
    updated_at: float | None
    """Last change to the spec, in seconds since the epoch."""
    version: int
    """The spec's version: an update is made against it, or refused."""


def name_in_stack(name: str, labels: Mapping[str, str]) -> str:
    """A service's name in its stack (``demo-api`` for ``mystack_demo-api``); outside a stack, its name."""
    namespace = labels.get(STACK_NAMESPACE_LABEL)
    return name.removeprefix(f"{namespace}_") if namespace else name


@dataclass(frozen=True)
class RunningTask:
    id: str
    service_id: str
    node_id: str


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(text: object) -> float | None:
    """Docker's RFC 3339 time with nanoseconds, in seconds since the epoch."""
    if not isinstance(text, str) or not text:
        return None
    trimmed = _FRACTION.sub(r"\1", text).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(trimmed).timestamp()
    except ValueError:
        return None


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is not a name: {value!r}")
    return value


def service_from_api(attributes: Any) -> SwarmService:  # noqa: ANN401 - checks an untrusted JSON value
    """A service from the engine's JSON; TypeError or ValueError when it is not one."""
    if not isinstance(attributes, dict):
        raise TypeError("service is not an object")
    spec = attributes.get("Spec")
    version = (attributes.get("Version") or {}).get("Index")
    if not isinstance(spec, dict) or isinstance(version, bool) or not isinstance(version, int):
        raise TypeError("service has no spec or version")
    labels = spec.get("Labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ValueError("service labels are not text")
    mode = spec.get("Mode") or {}
    replicated = mode.get("Replicated") if isinstance(mode, dict) else None
    replicas = None
    if replicated is not None:
        replicas = replicated.get("Replicas", 1) if isinstance(replicated, dict) else None
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= MOST_REPLICAS:
            raise ValueError(f"replica count is not a count: {replicas!r}")
    return SwarmService(
        id=_text(attributes.get("ID"), "service id"),
        name=_text(spec.get("Name"), "service name"),
        labels=dict(labels),
        replicas=replicas,
        updated_at=parse_timestamp(attributes.get("UpdatedAt")),
        version=version,
    )


def task_from_api(attributes: Any) -> RunningTask | None:  # noqa: ANN401 - checks an untrusted JSON value
    """A task the engine reports running; None for any other task or a malformed entry."""
    if not isinstance(attributes, dict) or (attributes.get("Status") or {}).get("State") != "running":
        return None
    fields = (attributes.get("ID"), attributes.get("ServiceID"), attributes.get("NodeID"))
    if not all(isinstance(value, str) and value for value in fields):
        return None
    return RunningTask(*fields)  # type: ignore[arg-type] # checked to be non-empty strings just above


def _is_conflict(error: docker.errors.APIError) -> bool:
    status = getattr(error.response, "status_code", None)
    return status == 409 or "out of sequence" in str(error)


class Swarm:
    def __init__(self, api: DockerApi, scope: str | None = None) -> None:
        """``scope``: act only on services of this stack (``com.docker.stack.namespace``); None: all."""
        self._api = api
        self._scope = scope

    def ping(self) -> None:
        self._api.ping()

    def autoscaled_services(self) -> tuple[list[SwarmService], dict[str, str]]:
        """The services labelled for autoscaling in scope, and per malformed one, its problem."""
        return self._labelled(f"{ENABLE_LABEL}=true")

    def routed_services(self) -> tuple[list[SwarmService], dict[str, str]]:
        """The services in scope with a route at the entry point, and per malformed one, its problem."""
        return self._labelled(PATH_LABEL)

    def _labelled(self, label: str) -> tuple[list[SwarmService], dict[str, str]]:
        """The services in scope with ``label`` (``key=value``, or ``key`` for any value)."""
        labels = [label]
        if self._scope is not None:
            labels.append(f"{STACK_NAMESPACE_LABEL}={self._scope}")
        services, problems = [], {}
        for index, attributes in enumerate(self._api.services(filters={"label": labels})):
            try:
                services.append(service_from_api(attributes))
            except (TypeError, ValueError) as error:
                key = attributes.get("ID") if isinstance(attributes, dict) else None
                problems[str(key or f"entry {index}")] = str(error)
        return services, problems

    def running_tasks(self) -> list[RunningTask]:
        tasks = (task_from_api(entry) for entry in self._api.tasks(filters={"desired-state": "running"}))
        return [task for task in tasks if task is not None]

    def inspect(self, service_id: str) -> SwarmService:
        return service_from_api(self._api.inspect_service(service_id))

    def scale(self, service: SwarmService, replicas: int) -> None:
        """Set the replica count of the service as it was read, keeping the rest of its spec.

        If anyone changed the service since it was read, nothing is written and
        StaleServiceError is raised: a count decided on an old spec is never applied.
        """
        current = self._api.inspect_service(service.id)
        if current.get("Version", {}).get("Index") != service.version:
            raise StaleServiceError(f"{service.name} changed since it was read")
        spec = current["Spec"]
        try:
            self._api.update_service(
                service.id,
                service.version,
                task_template=spec["TaskTemplate"],
                name=spec["Name"],
                labels=spec.get("Labels") or {},
                mode={"Replicated": {"Replicas": replicas}},
                update_config=spec.get("UpdateConfig"),
                rollback_config=spec.get("RollbackConfig"),
                endpoint_spec=spec.get("EndpointSpec"),
            )
        except docker.errors.APIError as error:
            if _is_conflict(error):
                raise StaleServiceError(f"{service.name} changed while it was updated") from error
            raise
