"""Wiring of the needs service (consumes only, for now: matching comes with its own issue)."""

from services.service import Context, Service, listening_service


def build(ctx: Context) -> Service:
    return listening_service(
        "needs", ctx, ["need.identified"], "needs register and matching: listening only, not built yet"
    )
