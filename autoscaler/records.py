"""What the control loop knows of each service and of its inputs, and the copy the endpoints read.

The control loop alone writes ``DaemonState``. At the end of each check it publishes a
``snapshot``, which the endpoints render in worker threads: nothing in it is shared with
what the loop goes on changing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from autoscaler.core import Decision, Observation, Policy, ServiceState
from autoscaler.entrypoint import History
from autoscaler.replay_clock import ReplayClock
from autoscaler.routing import RoutedService
from autoscaler.schedules import ScheduleStatus
from autoscaler.sources import SourceReading
from autoscaler.state_keeper import Saved
from autoscaler.timeline import Timeline
from autoscaler.traffic import Window
from common.problems import Problems


@dataclass
class ServiceRecord:
    """The latest word on one service, for /status and /metrics."""

    decision: Decision | None = None
    decided_at: float | None = None
    policy: Policy | None = None
    config_error: str | None = None
    observation: Observation | None = None
    requests: Window | None = None
    """The requests the entry point answered for the service over the last window."""
    recent_requests: Window | None = None
    """The same over the surge window."""
    labels: dict[str, str] | None = None
    """The labels at the last check, to tell which label an operator just changed."""
    file_settings: dict[str, str] | None = None
    """What the policy file set for it at the last check, to parse its policy again on a change."""
    schedule: ScheduleStatus = field(default_factory=ScheduleStatus)
    """Its schedules at the last check: the active ones and the next start."""
    replay_clock: ReplayClock | None = None
    """The clock of a replay its label names, which its schedules read while the replay runs."""
    timeline: Timeline = field(default_factory=Timeline)
    """Its last hour of checks and its last changes, for the status page."""
    source: SourceReading | None = None
    """Its metric source at the last check, if it has one."""

    @property
    def rate_limit_rps(self) -> float | None:
        """The entry point's limit for the service at its ready replicas, in requests per second."""
        policy, observation = self.policy, self.observation
        if policy is None or policy.admission is None or observation is None:
            return None
        ready = observation.ready_replicas
        return None if ready is None else policy.admission.replica_rps * ready


@dataclass
class DaemonState:
    """Everything the endpoints report; written only by the control loop."""

    services: dict[str, ServiceRecord] = field(default_factory=dict)
    memory: dict[str, ServiceState] = field(default_factory=dict)
    """Per service id: what the decision core remembers."""
    saved: Saved = field(default_factory=Saved)
    """What this instance knows was saved of the services' states."""
    state_loaded: bool = False
    restored_services: int = 0
    scale_events: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Per (service, direction): changes made."""
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Per (service, action): decisions made."""
    scale_failures: Counter[str] = field(default_factory=Counter)
    last_check_at: float | None = None
    last_successful_check_at: float | None = None
    collectors_answered: int = 0
    freshest_sample_at: float | None = None
    nodes_unmeasured: list[str] = field(default_factory=list)
    """Nodes running tasks of autoscaled services whose collector did not answer."""
    entry_points_answered: int = 0
    requests_read_at: float | None = None
    """When the entry point last answered."""
    behind_entry_point: set[str] = field(default_factory=set)
    """Services an entry point has counted since the daemon started."""
    request_history: History = field(default_factory=dict)
    """The entry points' counters over the last window."""
    routes: dict[str, RoutedService] = field(default_factory=dict)
    """Per service name: its route at the entry point, from its labels."""
    problems: Problems = field(default_factory=Problems)
    acting_term: int | None = None
    """The lease's term this instance acts in; None while it stands by."""

    @property
    def docker_error(self) -> str | None:
        """Why the last check could not list the services, if it could not."""
        return self.problems.active.get(("docker", "services"))


def snapshot(state: DaemonState) -> DaemonState:
    """A copy of what the endpoints show, sharing nothing the control loop changes in place.

    Decisions, observations, policies and windows are immutable values, shared; the
    containers that hold them are copied. What only the loop reads is left out.
    """
    return replace(
        state,
        services={
            name: replace(record, timeline=record.timeline.copy()) for name, record in state.services.items()
        },
        memory={},
        saved=Saved(),
        scale_events=Counter(state.scale_events),
        decisions=Counter(state.decisions),
        scale_failures=Counter(state.scale_failures),
        nodes_unmeasured=list(state.nodes_unmeasured),
        behind_entry_point=set(state.behind_entry_point),
        request_history={},
        routes=dict(state.routes),
        problems=state.problems.copy(),
    )
