"""A service's policy from the environment, the policy file and its labels, parsed again only on a change.

Parsing is the same for the same labels, the same entries of the policy file and the same
environment (read once at start), and costs as much as a decision; at hundreds of services
only a change is parsed again.
"""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.core import Policy
from autoscaler.labels import REPLAY_CLOCK_LABEL
from autoscaler.policy import service_policy
from autoscaler.policy_file import Applied, described
from autoscaler.records import ServiceRecord
from autoscaler.replay_clock import parse_replay_clock
from autoscaler.swarm import SwarmService
from common.config import ConfigError
from common.problems import Problems


def _parse(
    service: SwarmService, environment: Mapping[str, str], applied: Applied, before: dict[str, str] | None
) -> Policy:
    if service.replicas is None:
        raise ConfigError("mode", "global", "only replicated services can be scaled")
    touched = None
    if before is not None:
        touched = {label for label, value in service.labels.items() if before.get(label) != value}
    try:
        return service_policy({**environment, **applied.settings}, service.labels, touched)
    except ConfigError as error:
        if error.name in applied.settings:
            line = applied.setting_lines[error.name]
            raise ConfigError("POLICY_FILE", f"line {line}", described(error, applied.settings)) from None
        raise


def policy_of(
    service: SwarmService,
    record: ServiceRecord,
    environment: Mapping[str, str],
    problems: Problems,
    applied: Applied,
) -> Policy | None:
    """The service's policy, kept in its record; None (reported once) when it cannot be used.

    ``applied``: what the policy file says of the service. The labels override it. The
    record also keeps the replay clock the labels name, if any.
    """
    before, record.labels = record.labels, service.labels
    file_before, record.file_settings = record.file_settings, applied.settings
    unchanged = before == service.labels and file_before == applied.settings
    if unchanged and record.policy is not None and record.config_error is None:
        return record.policy
    try:
        policy = _parse(service, environment, applied, before)
        clock = service.labels.get(REPLAY_CLOCK_LABEL)
        replay_clock = None if clock is None else parse_replay_clock(clock)
    except ConfigError as error:
        record.config_error, record.decision, record.observation = str(error), None, None
        record.replay_clock = None
        problems.set("label", service.name, str(error))
        return None
    problems.clear("label", service.name)
    record.config_error, record.policy, record.replay_clock = None, policy, replay_clock
    return policy
