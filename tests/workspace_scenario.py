"""A partnership a commissioner can ask questions of: the reference partnership (three shared
contracts, £317,648 a year), an SLA on debt advice whose second return is inadequate (a concern),
a carers' contract that ends within the year, and a refused act for the audit trail."""

from __future__ import annotations

from typing import Any

from shared.tscip import reference_payloads
from tests.support import send_as

DEBT = "tscip-debt-advice-2013"
CARERS = "tscip-carers-2013"
LEAD = "staffordshire-cc"


def _ret(start: str, end: str, clients: str) -> dict[str, Any]:
    return {"contract_id": DEBT, "partner_id": LEAD, "period_start": start, "period_end": end, "spend": "475000.00",
            "kpis": [{"kpi_id": "clients-advised", "target": "1200", "actual": clients}]}


def send(r: Any, prefix: str) -> int:
    """Send it all; the number of events sent."""
    sent = [(pid, etype, data) for pid, etype, data in reference_payloads("fifteen")]
    for pid, cost in ((LEAD, "30000.00"), ("stoke-on-trent-cc", "20000.00")):
        sent.append((pid, "need.identified", {
            "need_id": f"{pid}-carers", "partner_id": pid, "service_category": "carers-support", "title": "Carers' support",
            "annual_budget": "90000.00", "current_arrangements": 6, "current_annual_resource_cost": cost,
            "current_arrangements_end": "2013-03-31", "open_to_sharing": True}))
    sent.append((LEAD, "tender.awarded", {
        "tender_id": "tscip-carers", "contract_id": CARERS, "lead_partner_id": LEAD, "commissioning_model": "aligned_budgets",
        "supplier": {"id": "carers-trust", "name": "Carers Trust Staffordshire"}, "annual_value": "180000.00",
        "contract_start": "2013-04-01", "contract_end": "2014-03-31",
        "partners": [{"partner_id": p, "need_id": f"{p}-carers"} for p in (LEAD, "stoke-on-trent-cc")]}))
    sent.append((LEAD, "contract.sla.agreed", {
        "contract_id": DEBT, "partner_id": LEAD, "kpis": [{"kpi_id": "clients-advised", "target": "1200"}],
        "payment_by_results": {"share": "0.10"}}))
    sent.append((LEAD, "monitoring.return.submitted", _ret("2013-01-01", "2013-03-31", "1315")))
    sent.append((LEAD, "monitoring.return.submitted", _ret("2013-04-01", "2013-06-30", "700")))
    # a member may not end the whole contract: refused, and on the audit trail
    sent.append(("stoke-pct", "contract.decommissioned", {
        "contract_id": DEBT, "partner_id": "stoke-pct", "effective_date": "2013-09-30", "reason": "financial_constraints",
        "replacement": "separate_arrangements"}))
    for n, (pid, etype, data) in enumerate(sent):
        send_as(r, prefix, pid, etype, data, f"ws-{n}")
    return len(sent)
