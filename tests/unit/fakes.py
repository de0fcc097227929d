"""Fakes at the I/O boundary: the Docker API, the collectors' and the entry points' HTTP answers."""

import base64
import bisect
import copy
import itertools
import json
import math

import docker.errors
import httpx

from autoscaler.traffic import Counters
from nginx.config import DURATION_BUCKETS


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


def task_ids(service_id, replicas):
    """The ids FakeDockerApi gives the running tasks of a service."""
    return [f"{service_id}.{slot}" for slot in range(1, replicas + 1)]


def _matches(labels, wanted):
    for condition in wanted if isinstance(wanted, list) else [wanted]:
        key, equals, value = condition.partition("=")
        if (labels.get(key) != value) if equals else (key not in labels):
            return False
    return True


class FakeDockerApi:
    """The engine's service, task and config endpoints, over in-memory lists.

    Every replicated service runs as many tasks as its spec says, on ``node``;
    ``tasks_override`` replaces that task list.
    """

    def __init__(self, services, conflicts=0, node="node-1"):
        self.by_id = {s["ID"]: s for s in services}
        self.conflicts = conflicts
        self.updates = []
        self.reachable = True
        self.node = node
        self.tasks_override = None
        self.configs_by_id = {}
        self._ids = itertools.count(1)

    def ping(self):
        return True

    def services(self, filters=None):
        if not self.reachable:
            raise docker.errors.APIError("connection refused")
        return [
            copy.deepcopy(s) for s in self.by_id.values() if _matches(s["Spec"]["Labels"], filters["label"])
        ]

    def tasks(self, filters=None):  # noqa: ARG002 - every fake task runs, so the filter changes nothing
        if self.tasks_override is not None:
            return self.tasks_override
        running = []
        for service_id, attributes in self.by_id.items():
            replicas = attributes["Spec"]["Mode"].get("Replicated", {}).get("Replicas", 0)
            running += [
                {"ID": task, "ServiceID": service_id, "NodeID": self.node, "Status": {"State": "running"}}
                for task in task_ids(service_id, replicas)
            ]
        return running

    def inspect_service(self, service_id):
        return copy.deepcopy(self.by_id[service_id])

    def set_replicas(self, service_id, replicas, updated_at="2026-06-01T00:00:00Z"):
        """Someone else scales the service."""
        attributes = self.by_id[service_id]
        attributes["Spec"]["Mode"] = {"Replicated": {"Replicas": replicas}}
        attributes["Version"]["Index"] += 1
        attributes["UpdatedAt"] = updated_at

    def update_service(self, service_id, version, **spec):
        attributes = self.by_id[service_id]
        if self.conflicts:
            self.conflicts -= 1
            attributes["Version"]["Index"] += 1
            raise docker.errors.APIError("rpc error: update out of sequence")
        if version != attributes["Version"]["Index"]:
            raise docker.errors.APIError("rpc error: update out of sequence")
        self.updates.append((service_id, spec))
        attributes["Spec"]["Mode"] = spec["mode"]
        attributes["Spec"]["Labels"] = spec["labels"]
        attributes["Version"]["Index"] += 1

    def configs(self, filters=None):
        return [c for c in self.configs_by_id.values() if _matches(c["Spec"]["Labels"], filters["label"])]

    def create_config(self, name, data, labels=None):
        if any(c["Spec"]["Name"] == name for c in self.configs_by_id.values()):
            raise docker.errors.APIError("409 conflict: name exists")
        config_id = f"config{next(self._ids)}"
        self.configs_by_id[config_id] = {
            "ID": config_id,
            "Spec": {"Name": name, "Labels": labels or {}, "Data": base64.b64encode(data).decode()},
        }
        return {"ID": config_id}

    def remove_config(self, config_id):
        del self.configs_by_id[config_id]
        return True


EDGES = (*DURATION_BUCKETS, math.inf)


def counted(durations: list[float], errors: int = 0) -> Counters:
    """The counters an entry point keeps for these request durations (seconds)."""
    per_bucket = [0] * len(EDGES)
    for duration in durations:
        per_bucket[bisect.bisect_left(EDGES, duration)] += 1
    cumulative = tuple(float(sum(per_bucket[: index + 1])) for index in range(len(EDGES)))
    return Counters(EDGES, cumulative, float(len(durations)), float(errors))


def label_value(text: str) -> str:
    """A label's value escaped as the text format wants it, and as metrics.lua writes it."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(service: str, counters: Counters, codes: dict[str, float]) -> str:
    """Prometheus text as the entry point writes it."""
    service = label_value(service)
    lines = ["# TYPE entrypoint_request_duration_seconds histogram"]
    for edge, count in zip(counters.edges, counters.cumulative, strict=True):
        le = "+Inf" if math.isinf(edge) else f"{edge:g}"
        lines.append(f'entrypoint_request_duration_seconds_bucket{{service="{service}",le="{le}"}} {count:g}')
    lines.append(
        f'entrypoint_request_duration_seconds_count{{service="{service}"}} {counters.cumulative[-1]:g}'
    )
    lines.append("# TYPE entrypoint_requests_total counter")
    lines += [f'entrypoint_requests_total{{service="{service}",code="{c}"}} {n:g}' for c, n in codes.items()]
    if counters.in_flight_seconds is not None:
        lines.append("# TYPE entrypoint_requests_in_flight_seconds_total counter")
        seconds = counters.in_flight_seconds
        lines.append(f'entrypoint_requests_in_flight_seconds_total{{service="{service}"}} {seconds:g}')
    return "\n".join(lines) + "\n"


ENTRYPOINT_PORT = 9145
"""Where the fake entry points answer; every other port is a collector's."""


def collector_transport(reports_by_host, counters_by_host=None):
    """Collectors answering /v1/services; a host mapped to None answers 500, to bytes answers them.

    On ENTRYPOINT_PORT, entry points answer with the text in ``counters_by_host`` (500 where none).
    """

    def handle(request):
        if request.url.port == ENTRYPOINT_PORT:
            text = (counters_by_host or {}).get(request.url.host)
            return httpx.Response(500, text="broken") if text is None else httpx.Response(200, text=text)
        report = reports_by_host.get(request.url.host)
        if report is None:
            return httpx.Response(500, text="broken")
        if isinstance(report, bytes):
            return httpx.Response(200, content=report)
        return httpx.Response(200, content=json.dumps(report))

    return httpx.MockTransport(handle)


def resolver_for(addresses, entry_points=()):
    """Every name resolves to ``addresses``, but ``tasks.nginx`` to ``entry_points``."""

    async def resolve(host, port):
        return list(entry_points) if host == "tasks.nginx" else list(addresses)

    return resolve


class FakeEngineConfigs:
    """The Engine API's config endpoints, as the lease store speaks them over HTTP.

    Updates are conditional on the version, as in the engine; ``down`` makes every
    request fail as a manager without quorum does; ``answers`` replaces the next answers.
    """

    def __init__(self):
        self.configs = {}
        self.down = False
        self.answers = []
        self._ids = itertools.count(1)
        self._versions = itertools.count(10)

    def transport(self):
        return httpx.MockTransport(self.handle)

    def handle(self, request):  # noqa: PLR0911 - one answer per endpoint and error, as the engine gives
        if self.answers:
            return self.answers.pop(0)
        if self.down:
            return httpx.Response(500, text="rpc error: context deadline exceeded")
        path = request.url.path
        if request.method == "GET" and path == "/configs":
            names = json.loads(request.url.params["filters"])["name"]
            found = [c for c in self.configs.values() if c["Spec"]["Name"].startswith(names[0])]
            return httpx.Response(200, json=copy.deepcopy(found))
        if request.method == "POST" and path == "/configs/create":
            spec = json.loads(request.content)
            if any(c["Spec"]["Name"] == spec["Name"] for c in self.configs.values()):
                return httpx.Response(409, json={"message": "name conflicts with an existing object"})
            config_id = f"lease{next(self._ids)}"
            self.configs[config_id] = {
                "ID": config_id,
                "Version": {"Index": next(self._versions)},
                "Spec": spec,
            }
            return httpx.Response(201, json={"ID": config_id})
        config_id = path.split("/")[2]
        config = self.configs.get(config_id)
        if config is None:
            return httpx.Response(404, json={"message": "no such config"})
        if request.method == "GET":
            return httpx.Response(200, json=copy.deepcopy(config))
        if int(request.url.params["version"]) != config["Version"]["Index"]:
            return httpx.Response(500, json={"message": "rpc error: update out of sequence"})
        spec = json.loads(request.content)
        if {k: v for k, v in spec.items() if k != "Labels"} != {
            k: v for k, v in config["Spec"].items() if k != "Labels"
        }:
            return httpx.Response(400, json={"message": "only updates to Labels are allowed"})
        config["Spec"] = spec
        config["Version"]["Index"] = next(self._versions)
        return httpx.Response(200)

    def holder(self):
        (config,) = self.configs.values()
        return config["Spec"]["Labels"]["autoscaler.lease.holder"]
