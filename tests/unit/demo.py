"""The demo API, served on a free local port in a thread, for the tests that need a real service."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from demo_api.__main__ import server


@dataclass
class Running:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        """What SIGTERM does to the demo API."""
        self.server.should_exit = True

    def stopped(self) -> bool:
        self.thread.join(timeout=10)  # a bound for a hang, far beyond a prompt exit
        return not self.thread.is_alive()


@contextmanager
def running_demo() -> Iterator[Running]:
    demo = server("127.0.0.1", 0, wait_workers=2)
    thread = threading.Thread(target=demo.run, daemon=True)
    thread.start()
    while not demo.started:
        time.sleep(0.01)
    port = demo.servers[0].sockets[0].getsockname()[1]
    running = Running(f"http://127.0.0.1:{port}", demo, thread)
    try:
        yield running
    finally:
        running.stop()
        thread.join(timeout=30)
