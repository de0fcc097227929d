"""Where the decision state of every service is kept across restarts: Swarm configs.

A config lives in the managers' Raft store, so an autoscaler started on any manager
reads what the last one wrote. Configs cannot be changed: a save creates a config, a
*document*, and removes the documents it supersedes.

A document holds parts of many services' states, as zlib-compressed JSON (see
``autoscaler.core.persisted``): a service's ``decision`` part (everything but its
forecaster) and, for some, its ``forecaster`` part. A service's state is its newest
decision part with its newest forecaster part. A document is superseded once each of its
parts has a newer one, or belongs to a service no longer autoscaled. A save is one
document (more only past a config's size), so the managers' writes per save do not grow
with the number of services; which parts go into a save is ``autoscaler.state_keeper``'s.

Documents of the version before (one config per service) are read as well; the saves
after them supersede them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import zlib
from dataclasses import dataclass
from typing import Any, Protocol

from autoscaler.core import ServiceState, persisted
from autoscaler.labels import STATE_FORMAT_LABEL, STATE_SCOPE_LABEL, STATE_SEQUENCE_LABEL, STATE_SERVICE_LABEL

DOCUMENT_FORMAT = "2"
NAME_PREFIX = "autoscaler-state-"
LARGEST_DOCUMENT = 400 * 1024
"""Bytes of compressed JSON in one document: below the engine's 500 KiB limit of a config."""
LARGEST_STATE = 20 * LARGEST_DOCUMENT
"""Bytes a document may expand to when read back."""
UNSCOPED = "swarm"
DECISION, FORECASTER = "decision", "forecaster"

Parts = dict[str, Any]
"""One service's parts in a document: ``decision`` and ``forecaster`` (None: it has none), as JSON."""


class ConfigApi(Protocol):
    """The part of docker.APIClient this module uses."""

    def configs(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...
    def create_config(
        self, name: str, data: bytes, labels: dict[str, str] | None = None
    ) -> dict[str, Any]: ...
    def remove_config(self, id: str) -> bool: ...  # noqa: A002 - the SDK's parameter name


def encode(entries: dict[str, Parts]) -> bytes:
    """A document of these services' parts."""
    document = {"format": int(DOCUMENT_FORMAT), "services": entries}
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode())


def _json(data: bytes) -> Any:  # noqa: ANN401 - an untrusted JSON value, checked by the caller
    try:
        return json.loads(zlib.decompressobj().decompress(data, LARGEST_STATE))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"unreadable state: {error}") from None


def decode(data: bytes) -> dict[str, Parts]:
    """The services' parts in a document; ValueError when it is not a document this version wrote."""
    document = _json(data)
    if not isinstance(document, dict) or str(document.get("format")) != DOCUMENT_FORMAT:
        raise ValueError(f"not a state document of format {DOCUMENT_FORMAT}")
    services = document.get("services")
    if not isinstance(services, dict) or not all(
        isinstance(parts, dict) and parts and set(parts) <= {DECISION, FORECASTER}
        for parts in services.values()
    ):
        raise ValueError("malformed state document: services are not parts")
    return services


def decode_one(data: bytes) -> Parts:
    """The parts of a document of the version before, which holds one service's whole state."""
    document = _json(data)
    if not isinstance(document, dict):
        raise ValueError("malformed state: not an object")  # noqa: TRY004 - callers take ValueError as unreadable
    parts: Parts = {DECISION: {**document, FORECASTER: None}}
    if document.get(FORECASTER) is not None:
        # Only a forecaster is a part of its own: none to keep would hold the document forever.
        parts[FORECASTER] = document[FORECASTER]
    return parts


def state_of(parts: Parts) -> ServiceState:
    """A service's state from its newest parts; ValueError when they are not a state."""
    if DECISION not in parts:
        raise ValueError("no decision state saved, only a forecaster")
    decision = parts[DECISION]
    if not isinstance(decision, dict):
        raise ValueError("malformed state: the decision part is not an object")  # noqa: TRY004 - as above
    return persisted.load({**decision, FORECASTER: parts.get(FORECASTER)})


@dataclass(frozen=True)
class Document:
    sequence: int
    parts: frozenset[tuple[str, str]]
    """(service id, part) of every part it holds."""


@dataclass(frozen=True)
class _Stored:
    config_id: str
    sequence: int
    data: bytes
    service_id: str | None
    """The one service of a document of the version before; None for a document of this one."""


def _stored(entry: Any) -> _Stored | None:  # noqa: ANN401 - checks an untrusted JSON value
    try:
        spec = entry["Spec"]
        labels = spec["Labels"]
        data = base64.b64decode(spec["Data"])
        sequence = int(labels[STATE_SEQUENCE_LABEL])
        if labels.get(STATE_FORMAT_LABEL) == DOCUMENT_FORMAT:
            return _Stored(entry["ID"], sequence, data, None)
        return _Stored(entry["ID"], sequence, data, str(labels[STATE_SERVICE_LABEL]))
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None


class ConfigStateStore:
    def __init__(self, api: ConfigApi, scope: str | None) -> None:
        self._api = api
        self._scope = scope or UNSCOPED
        self._documents: dict[str, Document] = {}
        """Per config id: the documents found or written, until removed."""
        self._newest: dict[tuple[str, str], int] = {}
        """Per (service id, part): the sequence of the document that holds its newest."""

    def load(self) -> tuple[dict[str, ServiceState], dict[str, str]]:
        """Every service's newest saved state, and per service or document that is unreadable, why."""
        newest: dict[tuple[str, str], tuple[int, Any]] = {}
        problems: dict[str, str] = {}
        self._documents, self._newest = {}, {}
        for entry in self._api.configs(filters={"label": f"{STATE_SCOPE_LABEL}={self._scope}"}):
            stored = _stored(entry)
            if stored is None:
                continue
            try:
                entries = (
                    decode(stored.data)
                    if stored.service_id is None
                    else {stored.service_id: decode_one(stored.data)}
                )
            except ValueError as error:
                problems[stored.service_id or stored.config_id] = str(error)
                entries = {}
            parts = frozenset((service, part) for service, held in entries.items() for part in held)
            self._documents[stored.config_id] = Document(stored.sequence, parts)
            for service, held in entries.items():
                for part, value in held.items():
                    if newest.get((service, part), (-1, None))[0] < stored.sequence:
                        newest[(service, part)] = (stored.sequence, value)
        self._newest = {key: sequence for key, (sequence, _) in newest.items()}
        by_service: dict[str, Parts] = {}
        for (service, part), (_, value) in newest.items():
            by_service.setdefault(service, {})[part] = value
        states = {}
        for service, newest_parts in by_service.items():
            try:
                states[service] = state_of(newest_parts)
            except ValueError as error:
                problems[service] = str(error)
        return states, problems

    def save(self, sequence: int, entries: dict[str, Parts], live: set[str]) -> None:
        """Write these parts as the newest, then remove what they supersede.

        ``sequence`` must grow from one save to the next; ``live`` are the services still
        autoscaled: the parts of any other are superseded.
        """
        for index, (services, data) in enumerate(self._documents_of(entries)):
            created = self._api.create_config(
                f"{NAME_PREFIX}{self._scope[:25]}-{sequence}-{index}",
                data,
                labels={
                    STATE_SCOPE_LABEL: self._scope,
                    STATE_SEQUENCE_LABEL: str(sequence),
                    STATE_FORMAT_LABEL: DOCUMENT_FORMAT,
                },
            )
            parts = frozenset((service, part) for service in services for part in entries[service])
            self._documents[created["ID"]] = Document(sequence, parts)
            self._newest.update(dict.fromkeys(parts, sequence))
        self._remove_superseded(live)

    def _documents_of(self, entries: dict[str, Parts]) -> list[tuple[list[str], bytes]]:
        """The entries as few documents as fit a config: halved until each one does."""
        services = sorted(entries)
        data = encode({service: entries[service] for service in services})
        if len(data) <= LARGEST_DOCUMENT:
            return [(services, data)]
        if len(services) == 1:
            raise ValueError(f"state of {len(data)} bytes is over {LARGEST_DOCUMENT}")
        half = len(services) // 2
        return [
            *self._documents_of({service: entries[service] for service in services[:half]}),
            *self._documents_of({service: entries[service] for service in services[half:]}),
        ]

    def _remove_superseded(self, live: set[str]) -> None:
        """Remove every document none of whose parts is a live service's newest.

        One the engine would not remove now is tried again at the next save: it only costs
        a little space meanwhile, and its parts are older than the newest.
        """
        for config_id, document in list(self._documents.items()):
            if any(
                service in live and self._newest.get((service, part)) == document.sequence
                for service, part in document.parts
            ):
                continue
            with contextlib.suppress(Exception):  # kept, and removed at the next save
                self._api.remove_config(config_id)
                del self._documents[config_id]
