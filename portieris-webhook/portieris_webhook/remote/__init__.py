"""Talking to remote servers: the transport contract and read budgets, the HTTP client, shared answers."""
