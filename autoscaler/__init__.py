"""The autoscaler daemon: reads the metrics collectors, decides, and scales Swarm services."""
