"""Fixtures shared by the unit tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.demo import running_demo
from tests.unit.real_nginx import Proxy, started


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    """Before a task that answers and one (127.0.0.2) that refuses."""
    with started(tmp_path, ["127.0.0.1", "127.0.0.2"]) as running:
        yield running


@pytest.fixture
def demo_api() -> Iterator[str]:
    with running_demo() as running:
        yield running.url
