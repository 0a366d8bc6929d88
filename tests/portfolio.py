"""A portfolio of many contracts as partner systems would send it (signed needs and awards),
and a decommissioning: for the tests of `savings.updated` and the dashboard at scale."""

from __future__ import annotations

from tests.support import PARTNERS, event, signed


def portfolio(contracts: int, first: int = 0, suffix: str = "") -> list[dict[str, bytes]]:
    """Signed needs and awards: `contracts` contracts (ids `c-<5 digits><suffix>`), each over two
    partners' needs."""
    pids, out = list(PARTNERS), []
    for i in range(first, first + contracts):
        pair, n = [pids[i % len(pids)], pids[(i + 1) % len(pids)]], f"{i}{suffix}"
        for pid in pair:
            data = {"need_id": f"need-{n}", "partner_id": pid, "service_category": "advice", "title": "Advice",
                    "annual_budget": "90000.00", "current_arrangements": 2,
                    "current_annual_resource_cost": f"{40000 + i}.00", "current_arrangements_end": "2013-03-31",
                    "open_to_sharing": True}
            out.append(signed(event(data, partner=pid, id=f"n-{n}"), partner=pid))
        award = {"tender_id": f"t-{n}", "contract_id": f"c-{i:05d}{suffix}", "lead_partner_id": pair[0],
                 "commissioning_model": "aligned_budgets", "supplier": {"id": "s", "name": "S"},
                 "annual_value": "60000.00", "contract_start": "2013-04-01", "contract_end": "2016-03-31",
                 "partners": [{"partner_id": p, "need_id": f"need-{n}"} for p in pair]}
        out.append(signed(event(award, type="tender.awarded", partner=pair[0], id=f"a-{n}"), partner=pair[0]))
    return out


def decommissioned(i: int) -> dict[str, bytes]:
    pid = list(PARTNERS)[i % len(PARTNERS)]
    data = {"contract_id": f"c-{i:05d}", "partner_id": pid, "effective_date": "2013-04-01",
            "reason": "financial_constraints", "replacement": "separate_arrangements"}
    return signed(event(data, type="contract.decommissioned", partner=pid, id=f"d-{i}"), partner=pid)
