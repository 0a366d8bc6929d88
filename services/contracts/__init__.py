"""Contracts service: contracts from awards, monitoring returns, concerns, decommissioning."""
