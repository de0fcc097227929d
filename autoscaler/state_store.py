"""Where the decision state of every service is kept across restarts: Swarm configs.

A config lives in the managers' Raft store, so an autoscaler started on any
manager reads what the last one wrote. Configs cannot be changed, so every save
creates a new one (named after the service and a sequence number) and then
removes the older ones of that service. Each holds the service's state as
zlib-compressed JSON (see ``autoscaler.core.persisted``).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass
from typing import Any, Protocol

from autoscaler.core import ServiceState, persisted

STATE_LABEL = "autoscaler.state.scope"
SERVICE_LABEL = "autoscaler.state.service"
SEQUENCE_LABEL = "autoscaler.state.sequence"
NAME_PREFIX = "autoscaler-state-"
LARGEST_DOCUMENT = 256 * 1024
"""Bytes of compressed state one service may keep: well below the engine's size limit of a config."""
UNSCOPED = "swarm"


class ConfigApi(Protocol):
    """The part of docker.APIClient this module uses."""

    def configs(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...
    def create_config(
        self, name: str, data: bytes, labels: dict[str, str] | None = None
    ) -> dict[str, Any]: ...
    def remove_config(self, id: str) -> bool: ...  # noqa: A002 - the SDK's parameter name


def encode(state: ServiceState) -> bytes:
    return zlib.compress(json.dumps(persisted.dump(state), separators=(",", ":")).encode())


def decode(data: bytes) -> ServiceState:
    """The state from a config's data; ValueError when it is not a state this version wrote."""
    try:
        text = zlib.decompressobj().decompress(data, LARGEST_DOCUMENT * 20)
        return persisted.load(json.loads(text))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"unreadable state: {error}") from None


@dataclass(frozen=True)
class Stored:
    config_id: str
    service_id: str
    sequence: int
    data: bytes


def _stored(entry: Any) -> Stored | None:  # noqa: ANN401 - checks an untrusted JSON value
    try:
        spec = entry["Spec"]
        labels = spec["Labels"]
        return Stored(
            entry["ID"], labels[SERVICE_LABEL], int(labels[SEQUENCE_LABEL]), base64.b64decode(spec["Data"])
        )
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None


class ConfigStateStore:
    def __init__(self, api: ConfigApi, scope: str | None) -> None:
        self._api = api
        self._scope = scope or UNSCOPED
        self._configs: dict[str, list[str]] = {}
        """Per service: the ids of its configs, newest last."""

    def load(self) -> tuple[dict[str, ServiceState], dict[str, str]]:
        """Every service's newest saved state, and per service whose state is unreadable, why."""
        found: dict[str, list[Stored]] = {}
        for entry in self._api.configs(filters={"label": f"{STATE_LABEL}={self._scope}"}):
            stored = _stored(entry)
            if stored is not None:
                found.setdefault(stored.service_id, []).append(stored)
        states, problems = {}, {}
        for service_id, entries in found.items():
            entries.sort(key=lambda stored: stored.sequence)
            self._configs[service_id] = [stored.config_id for stored in entries]
            try:
                states[service_id] = decode(entries[-1].data)
            except ValueError as error:
                problems[service_id] = str(error)
        return states, problems

    def save(self, service_id: str, state: ServiceState, sequence: int) -> None:
        """Keep ``state`` as the service's newest; ``sequence`` must grow from one save to the next."""
        data = encode(state)
        if len(data) > LARGEST_DOCUMENT:
            raise ValueError(f"state of {len(data)} bytes is over {LARGEST_DOCUMENT}")
        created = self._api.create_config(
            f"{NAME_PREFIX}{service_id[:25]}-{sequence}",
            data,
            labels={STATE_LABEL: self._scope, SERVICE_LABEL: service_id, SEQUENCE_LABEL: str(sequence)},
        )
        older = self._configs.get(service_id, [])
        self._configs[service_id] = [*self._removed_all_but(older), created["ID"]]

    def forget(self, service_id: str) -> None:
        """Remove the saved state of a service that is no longer autoscaled."""
        left = self._removed_all_but(self._configs.pop(service_id, []))
        if left:
            self._configs[service_id] = left

    def _removed_all_but(self, config_ids: list[str]) -> list[str]:
        """Remove the configs; those the engine would not remove now are returned, to try again.

        The newest state was already written: a config left over only costs a little
        space until the next save removes it, and is never read (the newest is).
        """
        left = []
        for config_id in config_ids:
            try:
                self._api.remove_config(config_id)
            except Exception:  # noqa: BLE001 - kept and removed at the next save
                left.append(config_id)
        return left
