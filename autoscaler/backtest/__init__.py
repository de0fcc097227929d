"""Replaying a request-rate trace through the decision core, and scoring the result."""
