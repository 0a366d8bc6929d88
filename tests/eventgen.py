"""Seeded generator of valid commissioning histories, for property and fault tests."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

CATEGORIES = ("debt-advice", "infrastructure", "advocacy", "carers-support")


def history(seed: int, partners: list[str], contracts: int = 4) -> list[tuple[str, str, dict[str, Any]]]:
    """(partner, type, data): needs, awards over them (some before their needs would arrive in
    any shuffled order), quarterly returns, a decommissioning or two, investments. Valid: every
    act is one its owner accepts in this order (docs/authority.md): awards name needs open to
    sharing, contributions sum to the annual value, returns and decommissionings come from the
    lead inside the term."""
    rng = random.Random(seed)
    out: list[tuple[str, str, dict[str, Any]]] = []
    needs: dict[str, list[tuple[str, str]]] = {c: [] for c in CATEGORIES}
    for pid in partners:
        for cat in rng.sample(CATEGORIES, rng.randint(1, len(CATEGORIES))):
            nid = f"{pid}-{cat}-{seed}"  # each history its own needs: histories are sent together
            shared = rng.random() < 0.9
            if shared:  # only a need open to sharing may be named in an award
                needs[cat].append((pid, nid))
            out.append((pid, "need.identified", {
                "need_id": nid, "partner_id": pid, "service_category": cat, "title": cat,
                "annual_budget": f"{rng.randint(1000, 900000)}.{rng.randint(0, 99):02d}",
                "current_arrangements": rng.randint(0, 12),
                "current_annual_resource_cost": f"{rng.randint(0, 60000)}.{rng.randint(0, 99):02d}",
                "current_arrangements_end": (date(2012, 1, 1) + timedelta(days=rng.randint(0, 700))).isoformat(),
                "open_to_sharing": shared,
            }))
    for i in range(contracts):
        cat = CATEGORIES[i % len(CATEGORIES)]
        members = needs[cat] if len(needs[cat]) < 2 else rng.sample(needs[cat], rng.randint(2, len(needs[cat])))
        if not members:
            continue
        lead = members[0][0]
        start = date(2012, 1, 1) + timedelta(days=rng.randint(0, 500))
        end = start + timedelta(days=365 * rng.randint(1, 4) - 1)
        cid = f"contract-{seed}-{i}"
        value = rng.randint(10000, 2000000)
        # contributions, when given, from every partner and summing to the annual value
        cuts = sorted(rng.sample(range(1, value * 100), len(members) - 1)) if rng.random() < 0.5 else None
        parts = [b - a for a, b in zip([0, *cuts], [*cuts, value * 100], strict=True)] if cuts is not None else None
        award: dict[str, Any] = {
            "tender_id": f"tender-{seed}-{i}", "contract_id": cid, "lead_partner_id": lead,
            "commissioning_model": rng.choice(["aligned_budgets", "stand_alone_partnership"]),
            "supplier": {"id": f"supplier-{i}", "name": f"Supplier {i}"},
            "annual_value": f"{value}.00",
            "contract_start": start.isoformat(), "contract_end": end.isoformat(),
            "partners": [
                {"partner_id": p, "need_id": n, **({"annual_contribution": f"{parts[k] // 100}.{parts[k] % 100:02d}"}
                                                   if parts is not None else {})}
                for k, (p, n) in enumerate(members)
            ],
        }
        if rng.random() < 0.5:
            award["annual_management_cost"] = f"{rng.randint(5000, 60000)}.{rng.randint(0, 99):02d}"
        out.append((lead, "tender.awarded", award))
        q = start
        while q < end and rng.random() < 0.85:
            q_end = min(q + timedelta(days=rng.choice([89, 90, 91])), end)
            ret: dict[str, Any] = {
                "contract_id": cid, "partner_id": lead, "period_start": q.isoformat(),
                "period_end": q_end.isoformat(), "spend": f"{rng.randint(0, 500000)}.00",
                "kpis": [{"kpi_id": "clients", "target": "100", "actual": str(rng.randint(50, 150))}],
            }
            if rng.random() < 0.6:
                ret["management_cost"] = f"{rng.randint(500, 15000)}.{rng.randint(0, 99):02d}"
            out.append((lead, "monitoring.return.submitted", ret))
            q = q_end + timedelta(days=1)
        if rng.random() < 0.3:
            out.append((lead, "contract.decommissioned", {
                "contract_id": cid, "partner_id": lead,
                "effective_date": (start + timedelta(days=rng.randint(30, min(700, (end - start).days)))).isoformat(),
                "reason": rng.choice(["financial_constraints", "provider_unable", "no_longer_strategic"]),
                "replacement": rng.choice(["separate_arrangements", "none"]),
            }))
    # a need stated twice with different content (a partner may restate its own need): the
    # figures must still not depend on which arrives first
    firsts = [e for e in out if e[1] == "need.identified"]
    for pid, etype, data in rng.sample(firsts, min(len(firsts), 2)):
        out.append((pid, etype, {**data, "current_annual_resource_cost": f"{rng.randint(0, 60000)}.00"}))
    for k in range(rng.randint(0, 3)):
        pid = rng.choice(partners)
        out.append((pid, "investment.recorded", {
            "investment_id": f"inv-{seed}-{k}", "partner_id": pid,
            "date": (date(2011, 1, 1) + timedelta(days=rng.randint(0, 900))).isoformat(),
            "amount": f"{rng.randint(1000, 300000)}.{rng.randint(0, 99):02d}", "description": "",
        }))
    return out
