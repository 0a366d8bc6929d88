"""Wiring of the procurement service (consumes only, for now)."""

from services.service import Context, Service, listening_service


def build(ctx: Context) -> Service:
    return listening_service(
        "procurement", ctx, ["tender.awarded"], "tenders and awards: listening only, not built yet"
    )
