"""The stack on four nodes (three managers, a worker): spread, drain, a node lost, the active autoscaler lost.

The tests run in this order on one deployment; each leaves every node up and active.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import docker
import pytest

from tests.e2e.support import keep
from tests.multinode.support import (
    MANAGERS,
    NODES,
    REGISTRY,
    REPORT,
    SETTINGS,
    STACK,
    AutoscalerWatch,
    LocalSwarm,
    Traffic,
)

pytestmark = pytest.mark.e2e

DEMO = f"{STACK}_demo-api"
CHECK = float(SETTINGS["CHECK_INTERVAL"])
WORK = "/api/work?ms=50"
"""A request that costs the demo API CPU: 8 users of it need about 4 replicas."""
LIGHT = "/api/work?ms=5"
"""With PROBE_PAUSE between requests: a few requests a second per user, on kept-alive connections."""
PROBE_PAUSE = 0.2


def wait_for(what: str, condition: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def spec_replicas(client: docker.DockerClient) -> int:
    return int(client.services.get(DEMO).attrs["Spec"]["Mode"]["Replicated"]["Replicas"])


def running_by_node(swarm: LocalSwarm, client: docker.DockerClient) -> dict[int, list[dict[str, Any]]]:
    """The demo API's running tasks, by node number."""
    ids = swarm.node_ids(client)
    tasks = client.api.tasks(filters={"service": DEMO, "desired-state": "running"})
    found: dict[int, list[dict[str, Any]]] = {}
    for task in tasks:
        if task["Status"]["State"] == "running" and task.get("NodeID") in ids:
            found.setdefault(ids[task["NodeID"]], []).append(task)
    return found


def node_id(swarm: LocalSwarm, client: docker.DockerClient, number: int) -> str:
    return next(key for key, value in swarm.node_ids(client).items() if value == number)


def demo(look: Any) -> dict[str, Any]:
    return dict(look.service(DEMO)) if look else {}


def never_two_active(watch: AutoscalerWatch) -> None:
    """No two instances ever said they act within a second of each other."""
    active = [look for look in watch.looks if look.active]
    for first in active:
        for second in active:
            if first.node != second.node:
                assert abs(first.at - second.at) > 1.0, (first.node, first.at, second.node, second.at)


def seconds_before_a_check(look: Any, lead: float) -> float:
    """How long to wait for ``lead`` seconds before the next check of the instance seen in ``look``.

    Its checks run on a fixed schedule, CHECK apart from the last one's start.
    """
    upcoming = float(look.status["last_check_at"]) + CHECK
    while upcoming - lead < time.time():
        upcoming += CHECK
    return upcoming - lead - time.time()


@contextmanager
def killed(swarm: LocalSwarm, number: int) -> Iterator[float]:
    """The node's container killed (this gives the time of the kill), and started again at the end."""
    at = time.time()
    swarm.container(number).kill()
    try:
        yield at
    finally:
        restart_node(swarm, number)


def restart_node(swarm: LocalSwarm, number: int) -> None:
    """Start a killed node's container again: its engine rejoins the swarm with its state."""
    swarm.container(number).start()
    client = swarm.manager(besides=(number,))
    try:
        wait_for(
            f"node {number} ready again",
            lambda: client.nodes.get(node_id(swarm, client, number)).attrs["Status"]["State"] == "ready",
            120,
        )
    finally:
        client.close()


def measured_everywhere(watch: AutoscalerWatch) -> bool:
    look = watch.active_now()
    return bool(
        look
        and look.status.get("collectors_answered") == NODES
        and look.status.get("entry_points_answered") == NODES
        and not look.status.get("nodes_unmeasured")
    )


class TestAcrossNodes:
    def test_a_tasks_spread_over_every_node_and_scale_with_load_at_two_entry_points(
        self, swarm: LocalSwarm
    ) -> None:
        """Tasks spread over every node and scale with load sent to two nodes' entry points, no request
        failed."""
        client = swarm.manager()
        targets = [swarm.url(1, 80), swarm.url(2, 80)]
        with (
            AutoscalerWatch(MANAGERS) as watch,
            Traffic(targets, 1, LIGHT, pause=PROBE_PAUSE, seconds=900) as probes,
        ):
            wait_for("every node's collector and entry point read", lambda: measured_everywhere(watch), 120)
            assert spec_replicas(client) == 2
            started = time.time()
            with Traffic(targets, 4, WORK, seconds=300) as load:
                spread = wait_for(
                    "4 replicas or more, running on every node",
                    lambda: (
                        spec_replicas(client) >= 4
                        and set(running_by_node(swarm, client)) == set(swarm.nodes)
                        and running_by_node(swarm, client)
                    ),
                    300,
                )
                peak_at = time.time() - started
            wait_for("the way back to 2 replicas", lambda: spec_replicas(client) == 2, 400)
            back_at = time.time() - started
            never_two_active(watch)
        keep(
            REPORT,
            spread={
                "peak_reached_s": round(peak_at, 1),
                "back_to_2_s": round(back_at, 1),
                "tasks_per_node_at_peak": {str(node): len(tasks) for node, tasks in sorted(spread.items())},
                "requests": load.count() + probes.count(),
                "failed": len(load.failed()) + len(probes.failed()),
            },
        )
        assert load.failed() == [], load.failed()[:5]
        assert probes.failed() == [], probes.failed()[:5]
        assert load.count() > 0
        client.close()

    def test_d_draining_a_node_under_keep_alive_load_fails_no_request(self, swarm: LocalSwarm) -> None:
        """Draining a node under keep-alive load moves its tasks and fails no request."""
        client = swarm.manager()
        by_node = running_by_node(swarm, client)
        # Not node 1 (the data tier's primaries), and the worker first: its loss moves no autoscaler.
        drained = next((node for node in (4, 3, 2) if node in by_node), None)
        assert drained is not None, by_node
        targets = [swarm.url(node, 80) for node in swarm.nodes if node != drained][:2]
        drained_id = node_id(swarm, client, drained)
        with Traffic(targets, 3, LIGHT, pause=PROBE_PAUSE, seconds=300) as traffic:
            time.sleep(3)
            drained_at = time.time()
            client.api.update_node(
                drained_id,
                client.api.inspect_node(drained_id)["Version"]["Index"],
                {**client.api.inspect_node(drained_id)["Spec"], "Availability": "drain"},
            )
            wait_for(
                f"the demo API's tasks off node {drained} and running elsewhere",
                lambda: (
                    drained not in running_by_node(swarm, client)
                    and sum(map(len, running_by_node(swarm, client).values())) == spec_replicas(client)
                ),
                180,
            )
            moved_after = time.time() - drained_at
            time.sleep(5)
        spec = client.api.inspect_node(drained_id)
        client.api.update_node(
            drained_id, spec["Version"]["Index"], {**spec["Spec"], "Availability": "active"}
        )
        keep(
            REPORT,
            drain={
                "node": drained,
                "tasks_moved_s": round(moved_after, 1),
                "requests": traffic.count(),
                "failed": len(traffic.failed()),
            },
        )
        assert traffic.count() > 0
        assert traffic.failed() == [], traffic.failed()[:5]
        client.close()

    def test_b_a_killed_worker_is_unmeasured_until_swarm_moves_its_tasks(self, swarm: LocalSwarm) -> None:
        """A killed worker's tasks count as unmeasured, holding scale-downs, until Swarm runs them
        elsewhere."""
        worker = 4
        client = swarm.manager()
        targets = [swarm.url(1, 80), swarm.url(2, 80)]
        with AutoscalerWatch(MANAGERS) as watch, Traffic(targets, 4, WORK, seconds=600) as load:
            wait_for(
                f"a demo API task on node {worker}", lambda: worker in running_by_node(swarm, client), 300
            )
            wait_for("every node measured", lambda: measured_everywhere(watch), 60)
            # Swarm declares a lost node down about 15 s after its death and then moves its tasks,
            # which a check every 15 s may not see before: the node dies 5 s before a check.
            time.sleep(seconds_before_a_check(wait_for("an active autoscaler", watch.active_now, 60), 5))
            running = running_by_node(swarm, client)
            before = {task["ID"] for tasks in running.values() for task in tasks}
            # Swarm starts a lost task's replacement in the same slot; a scale-up's tasks get new ones.
            lost_slots = {task["Slot"] for task in running.get(worker, [])}
            assert lost_slots, running
            lowest = at_kill = spec_replicas(client)
            with killed(swarm, worker) as killed_at:
                worker_id = node_id(swarm, client, worker)

                def unmeasured() -> Any:
                    look = watch.active_now()
                    return look if look and worker_id in look.status.get("nodes_unmeasured", []) else None

                seen_unmeasured = wait_for("the autoscaler reporting the node unmeasured", unmeasured, 60)

                def replacement() -> Any:
                    nonlocal lowest
                    lowest = min(lowest, spec_replicas(client))
                    new = [
                        task
                        for tasks in running_by_node(swarm, client).values()
                        for task in tasks
                        if task["ID"] not in before and task["Slot"] in lost_slots
                    ]
                    return new[0] if new else None

                task = wait_for("Swarm running a lost task elsewhere", replacement, 180)
                replaced_at = parse_time(task["Status"]["Timestamp"])

                def measured_again() -> Any:
                    nonlocal lowest
                    lowest = min(lowest, spec_replicas(client))
                    look = watch.active_now()
                    entry = demo(look)
                    decided = entry.get("decided_at") or 0
                    return look if decided >= replaced_at and entry.get("unmeasured_tasks") == 0 else None

                measured = wait_for("the service measured and decided again", measured_again, 120)
                failed = load.failed(since=killed_at - 1)
        # Back in the swarm, the node is measured again, and nothing was restarted for it.
        with AutoscalerWatch(MANAGERS) as watch:
            wait_for("the rejoined node measured again", lambda: measured_everywhere(watch), 120)
        keep(
            REPORT,
            worker_killed={
                "unmeasured_reported_after_s": round(seen_unmeasured.at - killed_at, 1),
                "task_serving_elsewhere_after_s": round(replaced_at - killed_at, 1),
                "decided_again_after_task_start_s": round(demo(measured)["decided_at"] - replaced_at, 1),
                "requests": load.count(),
                "failed": len(failed),
                "failures": sorted({outcome.detail[:80] for outcome in failed}),
            },
        )
        # From the kill until the moved task was measured again, no scale-down.
        assert lowest >= at_kill, (lowest, at_kill)
        assert demo(measured)["decided_at"] - replaced_at <= 2 * CHECK + 1
        # Only requests in flight to the killed node's task can be lost: at most one per user.
        assert len(failed) <= 8, failed
        client.close()

    def test_c_a_standby_acts_within_two_checks_of_the_active_managers_death(self, swarm: LocalSwarm) -> None:
        """When the active instance's manager dies, a standby acts within two checks and honours the
        cooldown."""
        # Either change waits this long after the one before: the scale-up and scale-down cooldowns.
        cooldown = min(float(SETTINGS["SCALE_UP_COOLDOWN"]), float(SETTINGS["COOLDOWN_PERIOD"]))
        with AutoscalerWatch(MANAGERS) as watch:
            active = wait_for("an active autoscaler", watch.active_now, 60)
            victim = active.node
            client = swarm.manager(besides=(victim,))
            targets = [swarm.url(node, 80) for node in swarm.nodes if node != victim][:2]
            started = time.time()
            # At the minimum, load brings a scale-up; above it, the way down brings a scale-down.
            users = 5 if spec_replicas(client) <= 3 else 0
            with (
                Traffic(targets, users, WORK, seconds=600) as load,
                Traffic(targets, 1, LIGHT, pause=PROBE_PAUSE) as probes,
            ):
                # Kill the active instance's manager right after it changed the service.
                version = client.services.get(DEMO).attrs["Version"]["Index"]
                wait_for(
                    "a change by the active instance",
                    lambda: client.services.get(DEMO).attrs["Version"]["Index"] != version,
                    300,
                )
                changed_at = parse_time(client.services.get(DEMO).attrs["UpdatedAt"])
                replicas_then = spec_replicas(client)
                with killed(swarm, victim) as killed_at:

                    def successor() -> Any:
                        for look in watch.looks:
                            entry = demo(look)
                            if (
                                look.node != victim
                                and look.active
                                and (entry.get("decided_at") or 0) > killed_at
                            ):
                                return look
                        return None

                    first = wait_for("another instance deciding", successor, 120)
                    # Its decisions within the cooldown of the change before the kill change nothing.
                    time.sleep(max(0.0, changed_at + cooldown - time.time()))
                    replicas_in_cooldown = spec_replicas(client)
                    events = client.events(
                        since=int(started),
                        until=int(time.time()) + 1,
                        filters={"type": "service", "event": "update"},
                        decode=True,
                    )
                    # Every update of the service; the engine marks those that changed its
                    # replicas with replicas.old and replicas.new (a scale), and not the others
                    # (the managers' own, such as after a Raft election).
                    updates = [
                        (event["timeNano"] / 1e9, event["Actor"]["Attributes"])
                        for event in events
                        if event["Actor"]["Attributes"].get("name") == DEMO
                    ]
            never_two_active(watch)
        leadership = first.status["leadership"]
        scales = [at for at, attributes in updates if "replicas.new" in attributes]
        # The earliest term any other instance began after the kill: it may have held the lease,
        # lost it to the managers' election and taken it again.
        took_over_at = min(
            (
                float(look.status["leadership"]["active_since"])
                for look in watch.looks
                if look.node != victim and look.active and look.at > killed_at
            ),
            default=float(leadership["active_since"]),
        )
        keep(
            REPORT,
            failover={
                "killed_node": victim,
                "new_active_node": first.node,
                "active_since_after_kill_s": round(leadership["active_since"] - killed_at, 1),
                "first_decision_after_kill_s": round(demo(first)["decided_at"] - killed_at, 1),
                "restored_services": first.status.get("restored_services"),
                "took_over_after_kill_s": round(took_over_at - killed_at, 1),
                "scale_updates_by_engine_s": [round(at - killed_at, 1) for at in scales],
                "other_updates_by_engine_s": [
                    round(at - killed_at, 1) for at, attributes in updates if "replicas.new" not in attributes
                ],
            },
        )
        assert demo(first)["decided_at"] - killed_at <= 2 * CHECK
        assert replicas_in_cooldown == replicas_then, "the new instance ignored the cooldown"
        # The engine's scales of the service: none between the kill and another instance's lease.
        assert not [at for at in scales if killed_at < at < took_over_at], (killed_at, took_over_at, updates)
        assert load.count() + probes.count() > 0
        client.close()

    def test_e_every_image_came_from_the_registry_in_the_swarm(self, swarm: LocalSwarm) -> None:
        """Every image the stack runs on the nodes came from the registry inside the swarm."""
        client = swarm.manager()
        registry = f"{REGISTRY}/"
        images = {
            service.name: service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
            for service in client.services.list(filters={"label": f"com.docker.stack.namespace={STACK}"})
        }
        keep(REPORT, images=images)
        assert images
        # Pinned by the digest the push made, so that every node runs the same image.
        assert all(image.startswith(registry) and "@sha256:" in image for image in images.values()), images
        # The registry is a service of the swarm itself (Debian's docker-registry, see local-swarm.sh).
        registry_image = client.services.get("registry").attrs["Spec"]["TaskTemplate"]["ContainerSpec"][
            "Image"
        ]
        assert registry_image.startswith("swarm-autoscaler-registry:"), registry_image
        for node in swarm.nodes:
            engine = swarm.engine(node)
            try:
                pulled = [
                    digest for image in engine.images.list() for digest in image.attrs.get("RepoDigests", [])
                ]
            finally:
                engine.close()
            assert any(digest.startswith(registry) for digest in pulled), (node, pulled)
        client.close()


def parse_time(text: str) -> float:
    from autoscaler.swarm import parse_timestamp  # noqa: PLC0415 - the engine's time format, parsed once

    parsed = parse_timestamp(text)
    assert parsed is not None, text
    return parsed
