"""Bounds that more than one place checks: a setting read from the environment and again
from a label, or a value one daemon sends and another reads back.

Each is (lowest, highest), both allowed.
"""

from __future__ import annotations

DAY = 86_400.0
"""Seconds in a day: the upper bound of every interval."""
WEEK = 7 * DAY
"""Seconds."""

CHECK_INTERVAL = (0.1, DAY)
"""Seconds between two checks of the autoscaler."""
PREDICTIVE_SEASON = (60.0, WEEK)
"""Seconds after which traffic repeats, for the forecaster."""
REPLICA_RPS = (0.001, 1_000_000_000.0)
"""Requests a second one task serves: the autoscaler's label, the entry point's rate limit."""
RATE_LIMIT_BURST_SECONDS = (0.0, 3600.0)
"""Seconds' worth of the rate limit that may arrive at once above it."""

BALANCING_POLICIES = ("round_robin", "least_conn", "ewma")
"""How the entry point spreads a route's requests over its tasks: the label ``entrypoint.balance``
(checked by the autoscaler) and the variable BALANCE (by the entry point), read back from the
routing table. Not a bound, but one list more than one place checks."""

STICKY_MODES = ("none", "cookie", "client_address")
"""Whether a client keeps its task at the entry point: the label ``entrypoint.sticky`` and the
variable STICKY, read back from the routing table."""
