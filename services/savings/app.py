"""Wiring of the savings service (consumes only, until the projection lands)."""

from services.service import Context, Service, listening_service


def build(ctx: Context) -> Service:
    return listening_service(
        "savings",
        ctx,
        ["need.identified", "tender.awarded", "monitoring.return.submitted", "contract.decommissioned", "investment.recorded"],
        "savings projection: listening only, not built yet",
    )
