"""The agent's answers to the router and to Prometheus."""

import asyncio

from prometheus_client import CollectorRegistry

from data_tier.agent import Agent, AgentCollector, Probed
from data_tier.health import DRAINING, Health


class TestAgent:
    def answer(self, agent, path):
        response = agent.routes(CollectorRegistry())[path]()
        return response.status

    def test_answers_200_only_for_its_role_while_serving(self):
        """The agent answers 200 on its role's path while it serves, and 503 on the other's."""
        agent = Agent("postgres", "replica")
        agent.record(Probed(Health(serving=True, reason="streaming")))
        assert (self.answer(agent, "/replica"), self.answer(agent, "/primary")) == (200, 503)
        assert (self.answer(agent, "/reads"), self.answer(agent, "/built")) == (200, 200)

    def test_built_stays_once_served_while_rotation_follows_the_probe(self):
        """The task's health check must not restart a replica that only falls behind."""
        agent = Agent("postgres", "replica")
        assert self.answer(agent, "/built") == 503
        agent.record(Probed(Health(serving=True, reason="streaming")))
        agent.record(Probed(Health(serving=False, reason="far behind")))
        assert (self.answer(agent, "/replica"), self.answer(agent, "/built")) == (503, 200)

    def test_draining_leaves_rotation_at_once_and_stays_out(self):
        """Once draining, the agent answers 503 whatever the next probe says."""
        agent = Agent("postgres", "replica")
        agent.record(Probed(Health(serving=True, reason="streaming")))
        asyncio.run(agent.drain(0))
        agent.record(Probed(Health(serving=True, reason="streaming")))
        assert agent.health == DRAINING
        assert self.answer(agent, "/replica") == 503

    def test_metrics_are_the_last_probe(self):
        """The agent's metrics are those of its last probe, computed at scrape time."""
        agent = Agent("postgres", "primary")
        agent.record(
            Probed(Health(serving=True, reason="primary"), {"postgres_connection_load_percent": 40.0})
        )
        registry = CollectorRegistry()
        registry.register(AgentCollector(agent))
        assert registry.get_sample_value("postgres_connection_load_percent") == 40.0
        assert registry.get_sample_value("datatier_serving", {"kind": "postgres", "role": "primary"}) == 1.0
