"""nginx's process: its configuration checked before it is put in force, reloads, a graceful stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

log = structlog.get_logger("nginx_agent")

NGINX_STOP_TIMEOUT = 15.0
"""Seconds nginx gets to finish the requests in flight when the container stops."""


class ConfigRejectedError(Exception):
    """nginx -t refused a rendered configuration."""


ConfigApplier = Callable[[str], Awaitable[None]]
"""Puts a rendered configuration in force, or raises ConfigRejectedError and changes nothing."""


async def _nginx(*arguments: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "nginx", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode is not None  # noqa: S101 - communicate() waits for the exit
    return process.returncode, output.decode(errors="replace").strip()


async def install(config: str, path: Path) -> None:
    """Replace the config at ``path`` only with one that ``nginx -t`` accepts."""
    candidate = path.with_name(path.name + ".candidate")
    candidate.write_text(config)
    status, output = await _nginx("-t", "-q", "-c", str(candidate))
    if status != 0:
        candidate.unlink(missing_ok=True)
        raise ConfigRejectedError(output)
    candidate.replace(path)


class NginxProcess:
    """nginx in the foreground, with its configuration at ``config_path``."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, config: str) -> None:
        await install(config, self.config_path)
        self._process = await asyncio.create_subprocess_exec(
            "nginx", "-c", str(self.config_path), "-g", "daemon off;"
        )
        log.info("nginx started", pid=self._process.pid)

    async def apply(self, config: str) -> None:
        """A ConfigApplier: install the configuration, then reload nginx if it runs."""
        await install(config, self.config_path)
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGHUP)

    async def supervise(self, stop: asyncio.Event) -> None:
        """Wait for nginx; stop it gracefully with the daemon, or fail if it dies on its own."""
        process = self._process
        if process is None:
            raise RuntimeError("nginx was not started")
        exited = asyncio.create_task(process.wait(), name="nginx-exit")
        stopping = asyncio.create_task(stop.wait(), name="nginx-stop")
        await asyncio.wait([exited, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if process.returncode is None:
            process.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                await asyncio.wait_for(exited, NGINX_STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
            log.info("nginx stopped", returncode=process.returncode)
            return
        raise RuntimeError(f"nginx exited on its own with status {process.returncode}")
