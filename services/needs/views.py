"""What a partner may see of the needs register: its own needs in full; of an opportunity it
is part of, the other partners' needs without budgets, unless it joined (then the budgets of
the others that joined too); the partnership timetable without budgets. Pure functions."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.needs.model import Register
from shared.events import NeedIdentified, NeedWithdrawn
from shared.money import money_str


def own_needs(reg: Register, partner_id: str) -> list[dict[str, Any]]:
    rows = []
    for (pid, nid), v in sorted(reg.needs.items()):
        if pid != partner_id:
            continue
        withdrawn = isinstance(v.payload, NeedWithdrawn)
        rows.append(
            {
                "need_id": nid,
                "revision": v.rank[0],
                "status": "withdrawn" if withdrawn else "current",
                **({} if withdrawn else v.payload.model_dump(mode="json")),
            }
        )
    return rows


def _need(reg: Register, pid: str, nid: str) -> NeedIdentified | None:
    v = reg.needs.get((pid, nid))
    return None if v is None or isinstance(v.payload, NeedWithdrawn) else v.payload


def partner_opportunities(
    reg: Register, opportunities: dict[str, dict[str, Any]], partner_id: str
) -> list[dict[str, Any]]:
    out = []
    for _, opp in sorted(opportunities.items()):
        mine = [n for n in opp["needs"] if n["partner_id"] == partner_id]
        if not mine:
            continue
        joined = mine[0]["decision"] == "joined"
        needs = []
        for n in opp["needs"]:
            need = _need(reg, n["partner_id"], n["need_id"])
            row = {
                **n,
                "title": need.title if need else None,
                "current_arrangements_end": need.current_arrangements_end.isoformat() if need else None,
            }
            if need and (n["partner_id"] == partner_id or (joined and n["decision"] == "joined")):
                row["annual_budget"] = money_str(need.annual_budget)
                row["current_annual_resource_cost"] = money_str(need.current_annual_resource_cost)
            needs.append(row)
        out.append({**opp, "needs": needs, "my_decision": mine[0]["decision"]})
    return out


def timetable(reg: Register, partner_id: str | None) -> list[dict[str, Any]]:
    """Upcoming commissioning reviews, by the end date of current arrangements: one partner's
    (with budgets) or the partnership's (without)."""
    rows = []
    for need in reg.current():
        if partner_id is not None and need.partner_id != partner_id:
            continue
        row: dict[str, Any] = {
            "review_by": need.current_arrangements_end.isoformat(),
            "partner_id": need.partner_id,
            "need_id": need.need_id,
            "service_category": need.service_category,
            "title": need.title,
            "current_arrangements": need.current_arrangements,
        }
        if partner_id is not None:
            row["annual_budget"] = money_str(need.annual_budget)
        rows.append(row)
    rows.sort(key=lambda r: (r["review_by"], r["partner_id"], r["need_id"]))
    return rows


def upcoming(rows: list[dict[str, Any]], since: date | None) -> list[dict[str, Any]]:
    return [r for r in rows if since is None or r["review_by"] >= since.isoformat()]
