"""The server a task runs, as a child of the agent: started, watched, and stopped at the agent's stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence

import structlog

log = structlog.get_logger(__name__)


class ChildExitedError(RuntimeError):
    """The server ended by itself: the task fails, and Swarm starts another."""


async def run_child(  # noqa: PLR0913 - keyword-only options of one process
    name: str,
    argv: Sequence[str],
    stop: asyncio.Event,
    *,
    stop_signal: signal.Signals = signal.SIGTERM,
    before_stop: Callable[[], Awaitable[None]] | None = None,
    environment: Mapping[str, str] | None = None,
) -> None:
    """Run ``argv`` until ``stop`` is set; then ``before_stop``, ``stop_signal``, and wait for it to exit."""
    process = await asyncio.create_subprocess_exec(*argv, env=dict(environment) if environment else None)
    log.info("process started", process=name, pid=process.pid)
    exited = asyncio.create_task(process.wait(), name=f"{name}-exit")
    stopping = asyncio.create_task(stop.wait(), name=f"{name}-stop")
    await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if exited.done():
        stopping.cancel()
        raise ChildExitedError(f"{name} exited with status {process.returncode}")
    if before_stop is not None:
        await before_stop()
    process.send_signal(stop_signal)
    status = await exited
    log.info("process stopped", process=name, status=status)


async def run_once(argv: Sequence[str], environment: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run a command to its end; its exit status and the last line it wrote to standard error."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(environment) if environment else None,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await process.communicate()
    lines = errors.decode(errors="replace").strip().splitlines()
    return process.returncode or 0, lines[-1] if lines else ""
