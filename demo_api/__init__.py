"""A small HTTP service to autoscale: health, and an endpoint that burns requested CPU."""
