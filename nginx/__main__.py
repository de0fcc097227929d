"""``python -m nginx``: run nginx with the agent that keeps its upstream current."""

from __future__ import annotations

from common.lifecycle import run_workers, start
from nginx.agent import UpstreamAgent
from nginx.settings import AgentSettings, load


async def run(settings: AgentSettings) -> None:
    agent = UpstreamAgent(settings)
    await agent.start_nginx()
    await run_workers({"nginx": agent.nginx.supervise, "upstream-sync": agent.sync})


if __name__ == "__main__":
    start(load, run)
