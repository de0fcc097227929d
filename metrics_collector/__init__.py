"""The metrics collector: CPU and memory of every Swarm task on its node, from the cgroup files."""
