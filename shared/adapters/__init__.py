"""Adapters for the ports (shared.ports): on Redis (`redis`) and in memory (`memory`)."""
