"""Wiring of the contracts service (consumes only, for now)."""

from services.service import Context, Service, listening_service


def build(ctx: Context) -> Service:
    return listening_service(
        "contracts",
        ctx,
        ["tender.awarded", "monitoring.return.submitted", "contract.decommissioned"],
        "contract register and monitoring: listening only, not built yet",
    )
