"""Where the lease is kept: the labels of one Swarm config, in the managers' Raft store.

The engine updates a config's labels only against the version it was read at
(``POST /configs/{id}/update?version=N``), and refuses an update made against an older
one: that is the condition every write of the lease depends on. A manager cut off
from the others' quorum cannot write at all. The Engine API is spoken over httpx,
because the Docker SDK has no call to update a config.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from autoscaler.labels import LEASE_HOLDER_LABEL, LEASE_SCOPE_LABEL, LEASE_TERM_LABEL
from autoscaler.lease import Record
from autoscaler.state_store import UNSCOPED

NAME_PREFIX = "autoscaler-lease-"
CONTENT = b"the labels hold the lease of the active autoscaler\n"


class LeaseStoreError(Exception):
    """The lease could not be read or written; the attempt counts as failed."""


def engine_client(docker_host: str, timeout: float) -> httpx.AsyncClient:
    """An HTTP client for the engine at DOCKER_HOST (``unix:///path`` or ``tcp://host:port``)."""
    if docker_host.startswith("unix://"):
        transport = httpx.AsyncHTTPTransport(uds=docker_host.removeprefix("unix://"))
        return httpx.AsyncClient(transport=transport, base_url="http://docker", timeout=timeout)
    return httpx.AsyncClient(base_url=docker_host.replace("tcp://", "http://", 1), timeout=timeout)


def record_from_api(entry: Any) -> tuple[str, Record, dict[str, Any]]:  # noqa: ANN401 - checks an untrusted JSON value
    """The config's id, the lease it holds, and its spec; LeaseStoreError when it is not a lease."""
    try:
        config_id, spec, version = entry["ID"], entry["Spec"], entry["Version"]["Index"]
        labels = spec.get("Labels") or {}
        holder, term = labels.get(LEASE_HOLDER_LABEL, ""), int(labels.get(LEASE_TERM_LABEL, "0"))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise LeaseStoreError(f"the lease config is malformed: {error!r}") from None
    checked = (isinstance(config_id, str), isinstance(holder, str), type(version) is int, term >= 0)
    if not all(checked):
        raise LeaseStoreError(
            f"the lease config is malformed: id {config_id!r}, holder {holder!r}, "
            f"version {version!r}, term {term!r}"
        )
    return config_id, Record(holder, term, version), spec


def _json(response: httpx.Response) -> Any:  # noqa: ANN401 - an untrusted JSON value
    try:
        return response.json()
    except ValueError:
        raise LeaseStoreError(f"the engine's answer is not JSON: {response.text[:200]}") from None


class ConfigLeaseStore:
    def __init__(self, client: httpx.AsyncClient, scope: str | None) -> None:
        """``scope``: the stack the autoscaler acts on (instances of one scope share a lease); None: all."""
        self._client = client
        self._scope = scope or UNSCOPED
        self.name = f"{NAME_PREFIX}{self._scope}"
        self._config: tuple[str, dict[str, Any]] | None = None
        """The config's id and spec as last read."""

    async def read(self) -> Record:
        """The lease now; the config is created, with no holder, if there is none."""
        for _ in range(2):
            found = await self._find()
            if found is not None:
                config_id, record, spec = record_from_api(found)
                self._config = (config_id, spec)
                return record
            await self._create()
        raise LeaseStoreError(f"config {self.name} is created but not found")

    async def write(self, record: Record) -> int:
        """Write ``record`` if the lease is still at ``record.version``; the new version.

        LeaseStoreError when the engine refuses: someone wrote it first, or no quorum.
        """
        if self._config is None:
            raise LeaseStoreError("the lease was not read before it was written")
        config_id, spec = self._config
        labels = {
            **(spec.get("Labels") or {}),
            LEASE_HOLDER_LABEL: record.holder,
            LEASE_TERM_LABEL: str(record.term),
        }
        response = await self._request(
            "POST",
            f"/configs/{config_id}/update",
            params={"version": str(record.version)},
            json={**spec, "Labels": labels},
        )
        if response.status_code != httpx.codes.OK:
            raise LeaseStoreError(f"update refused ({response.status_code}): {response.text[:200]}")
        # The engine answers an update with no body: the new version is read back.
        config_id, written, spec = record_from_api(await self._inspect(config_id))
        if (written.holder, written.term) != (record.holder, record.term):
            raise LeaseStoreError(f"the lease changed right after the update: {written}")
        self._config = (config_id, spec)
        return written.version

    async def _find(self) -> Any:  # noqa: ANN401 - an untrusted JSON value, checked by record_from_api
        filters = json.dumps({"name": [self.name]})
        response = await self._request("GET", "/configs", params={"filters": filters})
        entries = _json(response) if response.status_code == httpx.codes.OK else None
        if not isinstance(entries, list):
            raise LeaseStoreError(f"cannot list configs ({response.status_code}): {response.text[:200]}")
        # The name filter matches prefixes too.
        return next(
            (e for e in entries if isinstance(e, dict) and (e.get("Spec") or {}).get("Name") == self.name),
            None,
        )

    async def _inspect(self, config_id: str) -> Any:  # noqa: ANN401 - as above
        response = await self._request("GET", f"/configs/{config_id}")
        if response.status_code != httpx.codes.OK:
            raise LeaseStoreError(f"cannot read the lease ({response.status_code}): {response.text[:200]}")
        return _json(response)

    async def _create(self) -> None:
        body = {
            "Name": self.name,
            "Labels": {LEASE_SCOPE_LABEL: self._scope, LEASE_HOLDER_LABEL: "", LEASE_TERM_LABEL: "0"},
            "Data": base64.b64encode(CONTENT).decode(),
        }
        response = await self._request("POST", "/configs/create", json=body)
        # 409: another instance created it first, which is as good.
        if response.status_code not in {httpx.codes.CREATED, httpx.codes.CONFLICT}:
            raise LeaseStoreError(f"cannot create the lease ({response.status_code}): {response.text[:200]}")

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:  # noqa: ANN401 - httpx's own keywords
        try:
            return await self._client.request(method, path, **kwargs)
        except (httpx.HTTPError, ValueError) as error:
            raise LeaseStoreError(f"the engine did not answer: {error!r}") from None
