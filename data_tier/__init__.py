"""The data tier's agent: runs PostgreSQL or Redis in a task, says when it serves, drains it at stop."""
