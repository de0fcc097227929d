"""A closed-loop HTTP load generator: N users, each sending its next request when the last answers."""
