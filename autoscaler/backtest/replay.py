"""Replaying a trace against one policy through the live daemon's decision core.

The model: each replica serves ``capacity`` requests per trace step at 100 % CPU. At
every check the core sees what a collector would: the CPU of the serving replicas,
capped at 100 % of their limit, so demand beyond capacity is hidden as it is in
reality. A replica added by a decision serves ``provisioning_delay`` seconds later;
a removed one stops at once (one still starting goes first). Decisions come every
``check_interval`` seconds, and every metric is computed over those check steps.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from autoscaler import core
from autoscaler.backtest.elasticity import Elasticity, elasticity
from autoscaler.backtest.trace import Trace
from autoscaler.core import Observation, Policy, ServiceState
from autoscaler.schedules import Schedule, scheduled, status_at


@dataclass(frozen=True)
class Model:
    capacity: float
    """Requests one replica serves per trace step at 100 % CPU."""
    provisioning_delay: float
    """Seconds from a scale-up decision until the new replica serves."""
    check_interval: float
    """Seconds between two decisions."""


@dataclass(frozen=True)
class Replay:
    algorithm: str
    times: list[float]
    """Start of every check step, in seconds since the epoch."""
    load: list[float]
    """Requests per trace step at every check step."""
    demand: list[int]
    """Replicas needed to keep CPU at or below the scale-up threshold."""
    supply: list[int]
    """Replicas serving."""
    provisioned: list[int]
    """Replicas running or starting (what is paid for)."""
    unserved_requests: float
    scale_events: int

    def elasticity(self, step_seconds: float) -> Elasticity:
        return elasticity(self.demand, self.supply, step_seconds)

    def replica_minutes(self, step_seconds: float) -> float:
        return sum(self.provisioned) * step_seconds / 60


def demand_for(load: float, model: Model, policy: Policy) -> int:
    """Replicas that keep CPU at or below the scale-up threshold for ``load`` requests per step."""
    return math.ceil(load / (model.capacity * policy.thresholds.cpu.up / 100) - 1e-9)


def replay(trace: Trace, policy: Policy, model: Model, schedules: tuple[Schedule, ...] = ()) -> Replay:
    """``policy`` through the trace; ``schedules`` raise its bounds in their windows, as live."""
    state = ServiceState()
    schedule = status_at(schedules, trace.start)
    replicas = serving = policy.min_replicas
    starting: deque[tuple[float, int]] = deque()  # (serves from, replicas)
    fraction_of_step = model.check_interval / trace.step
    steps = int((trace.end - trace.start) // model.check_interval)
    times, loads, demand, supply, provisioned = [], [], [], [], []
    unserved, events = 0.0, 0
    for index in range(steps):
        now = trace.start + index * model.check_interval
        while starting and starting[0][0] <= now:
            serving += starting.popleft()[1]
        load = trace.count_at(now)
        capacity = serving * model.capacity
        # With no replica serving, any load saturates the service.
        cpu = min(100.0, 100.0 * load / capacity) if capacity > 0 else 100.0 * (load > 0)
        times.append(now)
        loads.append(load)
        demand.append(demand_for(load, model, policy))
        supply.append(serving)
        provisioned.append(replicas)
        unserved += max(0.0, load - capacity) * fraction_of_step
        observation = Observation(
            current_replicas=replicas, ready_replicas=serving, cpu_percent=cpu, sampled_at=now
        )
        if schedule.changes_at is not None and now >= schedule.changes_at:
            schedule = status_at(schedules, now)
        decision = core.decide(observation, scheduled(policy, schedule), state, now)
        state = decision.state
        if not decision.changes:
            continue
        desired = decision.desired_replicas
        state = core.record_change(state, now, replicas, desired)
        events += 1
        if desired > replicas:
            starting.append((now + model.provisioning_delay, desired - replicas))
        else:
            remove = replicas - desired
            while remove and starting:
                ready_at, count = starting.pop()
                taken = min(count, remove)
                remove -= taken
                if count > taken:
                    starting.append((ready_at, count - taken))
            serving -= remove
        replicas = desired
    return Replay(policy.algorithm, times, loads, demand, supply, provisioned, unserved, events)


def static_supply(demand: list[int]) -> list[int]:
    """The baseline of the elastic speedup: ceil(mean demand) replicas all the time."""
    level = math.ceil(sum(demand) / len(demand))
    return [level] * len(demand)
