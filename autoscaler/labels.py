"""Every label the autoscaler reads or writes.

On services, written by operators: ``autoscaler.enable``, the policy's
``autoscaler.<variable in lower case>`` (some shorter), the metric sources'
``autoscaler.source.<name>`` and the routes' ``entrypoint.path``, ``entrypoint.port``,
``entrypoint.balance`` and ``entrypoint.sticky``; written by ``./stress-test.sh --replay``:
``autoscaler.replay_clock``.
Docker writes ``com.docker.stack.namespace``. On the Swarm configs the autoscaler keeps
its state and its lease in, written by it: ``autoscaler.state.*`` and ``autoscaler.lease.*``.
"""

from __future__ import annotations

# On services.
ENABLE_LABEL = "autoscaler.enable"
LABEL_PREFIX = "autoscaler."
"""Of every label that overrides a policy variable."""
LABEL_NAMES = {"TARGET_CONCURRENCY_PER_REPLICA": "autoscaler.target_concurrency"}
"""Variables whose label is not the variable's name in lower case: a shorter one."""
SOURCE_PREFIX = "autoscaler.source."
"""Of the labels that define a metric source."""
REPLAY_CLOCK_LABEL = "autoscaler.replay_clock"
"""The trace time a replay runs at, which the service's schedules then read (see replay_clock)."""
PATH_LABEL = "entrypoint.path"
PORT_LABEL = "entrypoint.port"
BALANCE_LABEL = "entrypoint.balance"
STICKY_LABEL = "entrypoint.sticky"
STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"


def label_name(variable: str) -> str:
    """The label that overrides a policy variable on a service."""
    return LABEL_NAMES.get(variable, LABEL_PREFIX + variable.lower())


# On the saved state's configs.
STATE_SCOPE_LABEL = "autoscaler.state.scope"
STATE_SEQUENCE_LABEL = "autoscaler.state.sequence"
STATE_FORMAT_LABEL = "autoscaler.state.format"
STATE_SERVICE_LABEL = "autoscaler.state.service"
"""On a document of the version before: the one service it holds."""

# On the lease's config.
LEASE_SCOPE_LABEL = "autoscaler.lease.scope"
LEASE_HOLDER_LABEL = "autoscaler.lease.holder"
LEASE_TERM_LABEL = "autoscaler.lease.term"
