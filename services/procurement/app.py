"""Wiring of the procurement service: tenders (state.py) and what each party may see of them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.http import json_response
from services.procurement.settings import policy as procurement_policy
from services.procurement.state import TYPES, ProcurementState
from services.readauth import PARTNER_REFUSED, signed_partner
from services.service import Context, Service, state_service
from shared.money import money_str

GROUP = "procurement"


def partner_view(tid: str, t: dict[str, Any]) -> dict[str, Any]:
    """A commissioning partner's view: no bid content before the award."""
    req = t["request"]
    row = {
        "tender_id": tid,
        "title": req.title,
        "status": t["status"],
        "route": t["route"],
        "route_reason": t["route_reason"],
        "lifetime_value": t["lifetime_value"],
        "closing_date": req.closing_date.isoformat(),
        "bids_received": len(t["bids"]),
        "standstill_end": t["standstill_end"].isoformat() if t["standstill_end"] else None,
    }
    if t["award"] is not None:
        row["results"] = list(t["results"].values())
    return row


def provider_view(tid: str, t: dict[str, Any], provider: str, refused: list[Any]) -> dict[str, Any]:
    """A bidder's view: the tender, its own bids and refusals; others' only after the award."""
    req = t["request"]
    own = [
        {
            "bid_id": b.bid_id,
            "lot_id": b.lot_id,
            "annual_price": money_str(b.annual_price),
            "status": "received",
        }
        for _, b in t["bids"]
        if b.provider_id == provider
    ]
    own += [
        {"event": r.key, "status": "refused", "code": r.code, "message": r.message}
        for r in refused
        if r.sender == provider and r.tender_id == tid
    ]
    row = {
        "tender_id": tid,
        "title": req.title,
        "status": t["status"],
        "closing_date": req.closing_date.isoformat(),
        "my_bids": own,
    }
    if t["award"] is not None:
        row["results"] = list(t["results"].values())
    return row


def build(ctx: Context) -> Service:
    state = ProcurementState(
        ctx.ports("procurement"), ctx.streams, procurement_policy(), ctx.registry, ctx.settings.decide_wait_s
    )
    kinds = {p.id: p.kind for p in ctx.registry}

    router = APIRouter(tags=["partners"], responses=PARTNER_REFUSED)

    @router.get("/tenders", summary="Tenders the caller commissions, or (providers) bids on.")
    async def tenders(pid: str = Depends(signed_partner(ctx.registry))) -> Response:
        return json_response(view(pid))

    def view(pid: str) -> dict[str, Any]:
        waiting = [
            {"event": r.key, "tender_id": r.tender_id, "status": "awaiting_tender"}
            for r in state.refusals
            if r.code == "unknown_tender" and r.sender == pid
        ]
        if kinds.get(pid) == "provider":
            rows = [provider_view(tid, t, pid, state.refusals) for tid, t in state.view.items()]
            return {"provider_id": pid, "tenders": rows, "awaiting_tender": waiting}
        rows = [
            partner_view(tid, t)
            for tid, t in state.view.items()
            if pid == t["request"].partner_id or pid in {p.partner_id for p in t["request"].partners}
        ]
        return {"partner_id": pid, "tenders": rows, "awaiting_tender": waiting}

    return state_service(
        GROUP, ctx, state, TYPES, router, "tenders: route, lifecycle, sealed bids, evaluation and award"
    )
