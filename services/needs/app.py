"""Wiring of the needs service: the register and matching (state.py), partner views over HTTP."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from services.http import bad_request, json_response
from services.needs.settings import policy as needs_policy
from services.needs.state import TYPES, NeedsState
from services.needs.views import own_needs, partner_opportunities, timetable, upcoming
from services.readauth import PARTNER_REFUSED, signed_partner
from services.service import Context, Service, state_service
from shared.settings import savings_policy

GROUP = "needs"


def build(ctx: Context) -> Service:
    state = NeedsState(
        ctx.ports("needs"), ctx.streams, needs_policy(), savings_policy(), ctx.settings.decide_wait_s
    )
    partner = Depends(signed_partner(ctx.registry))  # a default, not Annotated: a local name
    router = APIRouter(tags=["partners"], responses=PARTNER_REFUSED)

    @router.get("/needs", summary="The calling partner's own needs, in full.")
    async def needs(pid: str = partner) -> Response:
        return json_response({"partner_id": pid, "needs": own_needs(state.index, pid)})

    @router.get("/needs/opportunities", summary="The opportunities the calling partner is part of.")
    async def opportunities(pid: str = partner) -> Response:
        return json_response(
            {"partner_id": pid, "opportunities": partner_opportunities(state.index, state.opportunities, pid)}
        )

    # the parameters are checked here, to answer 400 with a reason as every route does
    @router.get(
        "/needs/timetable", summary="Upcoming reviews.", responses={400: {"description": "Bad query"}}
    )
    async def reviews(
        pid: str = partner,
        scope: Annotated[
            str, Query(description="whose reviews", json_schema_extra={"enum": ["mine", "partnership"]})
        ] = "mine",
        since: Annotated[str | None, Query(alias="from", description="from this date, YYYY-MM-DD")] = None,
    ) -> Response:
        if scope not in ("mine", "partnership"):
            return bad_request("scope is mine or partnership")
        try:
            start = date.fromisoformat(since) if since is not None else None
        except ValueError:
            return bad_request("from is a date, YYYY-MM-DD")
        rows = timetable(state.index, pid if scope == "mine" else None)
        return json_response({"scope": scope, "reviews": upcoming(rows, start)})

    return state_service(GROUP, ctx, state, TYPES, router, "needs register, matching and appraisal")
