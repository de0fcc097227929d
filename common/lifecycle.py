"""One way for every daemon to run its named asyncio tasks and to stop them.

A daemon hands over its workers by name. SIGTERM, SIGINT, or any worker ending
(normally or with an error) sets the shared stop event; the other workers finish,
and an error from a worker is raised again so that the process exits non-zero and
Swarm restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import TypeVar

import structlog

from common import logs
from common.config import ConfigError
from common.http import HttpServer

log = structlog.get_logger(__name__)

Worker = Callable[[asyncio.Event], Coroutine[None, None, None]]

SHUTDOWN_GRACE = 20.0
"""Seconds the workers get to finish after the stop event is set."""


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``; True if the stop event was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


async def run_workers(workers: Mapping[str, Worker]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = [asyncio.create_task(worker(stop), name=name) for name, worker in workers.items()]
    stop_waiter = asyncio.create_task(stop.wait(), name="stop-signal")
    await asyncio.wait([*tasks, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    # Workers watch the stop event and finish on their own (nginx drains its
    # connections); only one that overruns the grace period is cancelled.
    await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
    for task in tasks:
        if not task.done():
            task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    stop_waiter.cancel()
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            log.error("worker failed", worker=task.get_name(), error=repr(result))
            raise result
    log.info("stopped")


CONFIG_ERROR_EXIT = 2
"""Exit status for a configuration that cannot be used, before anything is touched."""


def http_worker(server: HttpServer) -> Worker:
    """A worker that serves until the daemon stops."""

    async def serve(stop: asyncio.Event) -> None:
        async with server:
            await stop.wait()

    return serve


SettingsT = TypeVar("SettingsT")


def load_or_exit(load: Callable[[Mapping[str, str]], SettingsT]) -> SettingsT:
    """Set up logging and read the settings once; stop with exit 2 and one line if they are bad."""
    logs.configure_from(os.environ)
    try:
        return load(os.environ)
    except ConfigError as error:
        log.error("invalid configuration", variable=error.name, value=error.value, problem=error.problem)
        sys.exit(CONFIG_ERROR_EXIT)


def start(
    load: Callable[[Mapping[str, str]], SettingsT],
    run: Callable[[SettingsT], Coroutine[None, None, None]],
) -> None:
    """Run an asyncio daemon with settings that passed validation."""
    asyncio.run(run(load_or_exit(load)))
