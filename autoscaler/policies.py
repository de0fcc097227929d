"""A service's policy from its labels, parsed again only when they change.

Parsing is the same for the same labels and the same environment (read once at start),
and costs as much as a decision; at hundreds of services only a change is parsed again.
"""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.core import Policy
from autoscaler.policy import service_policy
from autoscaler.records import ServiceRecord
from autoscaler.swarm import SwarmService
from common.config import ConfigError
from common.problems import Problems


def _parse(service: SwarmService, environment: Mapping[str, str], before: dict[str, str] | None) -> Policy:
    if service.replicas is None:
        raise ConfigError("mode", "global", "only replicated services can be scaled")
    touched = None
    if before is not None:
        touched = {label for label, value in service.labels.items() if before.get(label) != value}
    return service_policy(environment, service.labels, touched)


def policy_of(
    service: SwarmService, record: ServiceRecord, environment: Mapping[str, str], problems: Problems
) -> Policy | None:
    """The service's policy, kept in its record; None (reported once) when its labels cannot be used."""
    before, record.labels = record.labels, service.labels
    if before == service.labels and record.policy is not None and record.config_error is None:
        return record.policy
    try:
        policy = _parse(service, environment, before)
    except ConfigError as error:
        record.config_error, record.decision, record.observation = str(error), None, None
        problems.set("label", service.name, str(error))
        return None
    problems.clear("label", service.name)
    record.config_error, record.policy = None, policy
    return policy
