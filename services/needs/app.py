"""Wiring of the needs service: the register and matching (state.py), partner views over HTTP."""

from __future__ import annotations

from datetime import date
from typing import Any

from faststream.asgi import AsgiResponse
from faststream.asgi.request import AsgiRequest

from services.http import bad_request, partner_get
from services.needs.settings import policy as needs_policy
from services.needs.state import TYPES, NeedsState
from services.needs.views import own_needs, partner_opportunities, timetable, upcoming
from services.service import Context, Service, state_service
from shared.settings import savings_policy

GROUP = "needs"


def build(ctx: Context) -> Service:
    state = NeedsState(
        ctx.ports("needs"), ctx.streams, needs_policy(), savings_policy(), ctx.settings.decide_wait_s
    )

    def needs(pid: str, request: AsgiRequest, path: str) -> dict[str, Any]:
        return {"partner_id": pid, "needs": own_needs(state.index, pid)}

    def opportunities(pid: str, request: AsgiRequest, path: str) -> dict[str, Any]:
        return {
            "partner_id": pid,
            "opportunities": partner_opportunities(state.index, state.opportunities, pid),
        }

    def reviews(pid: str, request: AsgiRequest, path: str) -> dict[str, Any] | AsgiResponse:
        params = request.query_params
        which = params.get("scope", ["mine"])[0]
        if which not in ("mine", "partnership"):
            return bad_request("scope is mine or partnership")
        try:
            since = date.fromisoformat(params["from"][0]) if "from" in params else None
        except ValueError:
            return bad_request("from is a date, YYYY-MM-DD")
        rows = timetable(state.index, pid if which == "mine" else None)
        return {"scope": which, "reviews": upcoming(rows, since)}

    return state_service(
        GROUP,
        ctx,
        state,
        TYPES,
        [
            ("/needs", partner_get(ctx.registry, "The calling partner's own needs, in full.", needs)),
            (
                "/needs/opportunities",
                partner_get(ctx.registry, "The opportunities the calling partner is part of.", opportunities),
            ),
            (
                "/needs/timetable",
                partner_get(
                    ctx.registry, "Upcoming reviews: ?scope=mine|partnership, ?from=YYYY-MM-DD.", reviews
                ),
            ),
        ],
        "needs register, matching and appraisal",
    )
