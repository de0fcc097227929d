"""The nginx entry point and the agent that keeps its upstream on the running tasks."""
