"""Wiring of the contracts service: the register (state.py) and the partners' views of it."""

from __future__ import annotations

from typing import Any

from faststream.asgi import AsgiResponse
from faststream.asgi.request import AsgiRequest

from services.contracts.settings import policy as contracts_policy
from services.contracts.state import TYPES, ContractsState
from services.http import json_response, partner_get
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

    def contracts(pid: str, request: AsgiRequest, path: str) -> dict[str, Any]:
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
        return {"partner_id": pid, "as_of": as_of.isoformat() if as_of else None, "contracts": rows}

    def contract(pid: str, request: AsgiRequest, path: str) -> dict[str, Any] | AsgiResponse:
        cid = path.removeprefix("/contracts/")
        entry = state.register.entries.get(cid)
        c = entry.row if entry is not None else None
        if c is None or not visible_to(c, pid):
            return json_response(
                {"code": "not_found", "message": f"no contract '{cid}' that you are part of", "errors": []},
                404,
            )
        return c

    return state_service(
        GROUP,
        ctx,
        state,
        TYPES,
        [
            (
                "/contracts",
                partner_get(
                    ctx.registry, "The contracts the calling partner leads or contributes to.", contracts
                ),
            ),
            (
                "/contracts/{contract_id}",
                partner_get(
                    ctx.registry,
                    "One contract: register entry, SLA, schedule, returns, concerns, payments.",
                    contract,
                ),
            ),
        ],
        "contract register, returns, concerns, payment by results, decommissioning",
    )
