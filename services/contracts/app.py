"""Wiring of the contracts service: the register (state.py) and the partners' views of it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.contracts.settings import policy as contracts_policy
from services.contracts.state import TYPES, ContractsState
from services.http import Reason, json_response
from services.readauth import PARTNER_REFUSED, signed_partner
from services.service import Context, Service, state_service

GROUP = "contracts"


def visible_to(contract: dict[str, Any], partner_id: str) -> bool:
    """The lead and each contributing partner see a contract; no one else."""
    return partner_id == contract["lead_partner_id"] or partner_id in {
        p["partner_id"] for p in contract["partners"]
    }


def build(ctx: Context) -> Service:
    state = ContractsState(
        ctx.ports("contracts"), ctx.streams, contracts_policy(), ctx.settings.decide_wait_s
    )

    partner = Depends(signed_partner(ctx.registry))  # a default, not Annotated: a local name
    router = APIRouter(tags=["partners"], responses=PARTNER_REFUSED)

    @router.get("/contracts", summary="The contracts the calling partner leads or contributes to.")
    async def contracts(pid: str = partner) -> Response:
        rows = [
            {
                k: c[k]
                for k in (
                    "contract_id",
                    "status",
                    "lead_partner_id",
                    "supplier",
                    "annual_value",
                    "contract_start",
                    "contract_end",
                    "monitoring_months",
                )
            }
            | {
                "open_concerns": sum(1 for x in c["concerns"] if x["status"] != "resolved"),
                "overdue_returns": sum(1 for x in c["schedule"] if x["status"] == "overdue"),
            }
            for c in (state.register.entries[cid].row for cid in sorted(state.register.entries))
            if visible_to(c, pid)
        ]
        as_of = state.register.as_of
        return json_response(
            {"partner_id": pid, "as_of": as_of.isoformat() if as_of else None, "contracts": rows}
        )

    @router.get(
        "/contracts/{contract_id}",
        summary="One contract: register entry, SLA, schedule, returns, concerns, payments.",
        responses={404: {"model": Reason, "description": "No such contract that the caller is part of"}},
    )
    async def contract(contract_id: str, pid: str = partner) -> Response:
        cid = contract_id
        entry = state.register.entries.get(cid)
        c = entry.row if entry is not None else None
        if c is None or not visible_to(c, pid):
            return json_response(
                {"code": "not_found", "message": f"no contract '{cid}' that you are part of", "errors": []},
                404,
            )
        return json_response(c)

    return state_service(
        GROUP,
        ctx,
        state,
        TYPES,
        router,
        "contract register, returns, concerns, payment by results, decommissioning",
    )
