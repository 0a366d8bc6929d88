"""The four services (needs, procurement, contracts, savings), the inbound gateway, and the CLI."""
