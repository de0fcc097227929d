"""Where the project's files are, for the tests that read them."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The project's root: its README, stack files and shipped trace."""
CGROUP_FIXTURES = ROOT / "tests" / "fixtures" / "cgroup"
"""Trees shaped as the kernel's cgroup mounts (v1 split, v2 unified)."""
