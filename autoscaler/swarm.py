"""The Docker Engine API, as the autoscaler needs it: find services, scale them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import docker.errors

from autoscaler.policy import ENABLE_LABEL

CONFLICT_RETRIES = 5
"""Attempts at a service update when another writer changed the spec meanwhile."""


class DockerApi(Protocol):
    """The part of docker.APIClient this module uses."""

    def ping(self) -> bool: ...
    def services(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...
    def inspect_service(self, service: str) -> dict[str, Any]: ...
    def update_service(self, service: str, version: int, **kwargs: Any) -> Any: ...  # noqa: ANN401 - the SDK returns untyped JSON


@dataclass(frozen=True)
class SwarmService:
    id: str
    name: str
    labels: dict[str, str]
    replicas: int | None
    """Replicas in the spec; None for a global service, which cannot be scaled."""
    updated_at: float | None
    """Last change to the spec, in seconds since the epoch."""


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(text: str | None) -> float | None:
    """Docker's RFC 3339 time with nanoseconds, in seconds since the epoch."""
    if not text:
        return None
    trimmed = _FRACTION.sub(r"\1", text).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(trimmed).timestamp()
    except ValueError:
        return None


def service_from_api(attributes: dict[str, Any]) -> SwarmService:
    spec = attributes.get("Spec", {})
    replicated = spec.get("Mode", {}).get("Replicated")
    return SwarmService(
        id=attributes["ID"],
        name=spec.get("Name", attributes["ID"]),
        labels=dict(spec.get("Labels") or {}),
        replicas=None if replicated is None else int(replicated.get("Replicas", 1)),
        updated_at=parse_timestamp(attributes.get("UpdatedAt")),
    )


def _is_conflict(error: docker.errors.APIError) -> bool:
    status = getattr(error.response, "status_code", None)
    return status == 409 or "out of sequence" in str(error)


class Swarm:
    def __init__(self, api: DockerApi) -> None:
        self._api = api

    def ping(self) -> None:
        self._api.ping()

    def autoscaled_services(self) -> list[SwarmService]:
        found = self._api.services(filters={"label": f"{ENABLE_LABEL}=true"})
        return [service_from_api(attributes) for attributes in found]

    def scale(self, service_id: str, replicas: int) -> None:
        """Set the replica count, keeping the rest of the spec as it is.

        The update is made against the version that was read; if another writer
        changed the service in between, the engine refuses it, and it is redone on
        the new version.
        """
        for attempt in range(1, CONFLICT_RETRIES + 1):
            current = self._api.inspect_service(service_id)
            spec = current["Spec"]
            try:
                self._api.update_service(
                    service_id,
                    current["Version"]["Index"],
                    task_template=spec["TaskTemplate"],
                    name=spec["Name"],
                    labels=spec.get("Labels") or {},
                    mode={"Replicated": {"Replicas": replicas}},
                    update_config=spec.get("UpdateConfig"),
                    rollback_config=spec.get("RollbackConfig"),
                    endpoint_spec=spec.get("EndpointSpec"),
                )
            except docker.errors.APIError as error:
                if _is_conflict(error) and attempt < CONFLICT_RETRIES:
                    continue
                raise
            return
