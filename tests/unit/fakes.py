"""Fakes at the I/O boundary: the Docker API and the collectors' HTTP answers."""

import json

import docker.errors
import httpx


def service(service_id, name, replicas, labels, updated_at="2026-01-01T00:00:00.123456789Z"):
    mode = {"Replicated": {"Replicas": replicas}} if replicas is not None else {"Global": {}}
    return {
        "ID": service_id,
        "Version": {"Index": 10},
        "UpdatedAt": updated_at,
        "Spec": {
            "Name": name,
            "Labels": labels,
            "Mode": mode,
            "TaskTemplate": {"ContainerSpec": {"Image": "demo:1"}, "Networks": [{"Target": "net"}]},
            "EndpointSpec": {"Mode": "vip"},
        },
    }


class FakeDockerApi:
    """The engine's service endpoints, over an in-memory list of services."""

    def __init__(self, services, conflicts=0):
        self.by_id = {s["ID"]: s for s in services}
        self.conflicts = conflicts
        self.updates = []
        self.reachable = True

    def ping(self):
        return True

    def services(self, filters=None):
        if not self.reachable:
            raise docker.errors.APIError("connection refused")
        wanted = filters["label"].split("=", 1)
        return [s for s in self.by_id.values() if s["Spec"]["Labels"].get(wanted[0]) == wanted[1]]

    def inspect_service(self, service_id):
        return self.by_id[service_id]

    def update_service(self, service_id, version, **spec):
        if self.conflicts:
            self.conflicts -= 1
            self.by_id[service_id]["Version"]["Index"] += 1
            raise docker.errors.APIError("rpc error: update out of sequence")
        assert version == self.by_id[service_id]["Version"]["Index"]
        self.updates.append((service_id, spec))
        self.by_id[service_id]["Spec"]["Mode"] = spec["mode"]


def collector_transport(reports_by_host):
    """Collectors answering /v1/services; a host mapped to None answers 500."""

    def handle(request):
        report = reports_by_host.get(request.url.host)
        if report is None:
            return httpx.Response(500, text="broken")
        return httpx.Response(200, content=json.dumps(report))

    return httpx.MockTransport(handle)


def resolver_for(addresses):
    async def resolve(host, port):
        return list(addresses)

    return resolve
