"""The reference partnership: the fifteen public sector organisations of the Staffordshire
Third Sector Commissioning Partnership (seed 000). Used by `commissioning up` for a local
partner registry, and by the demo."""

from __future__ import annotations

import secrets
from decimal import Decimal
from pathlib import Path

from shared.money import money_str

#: (id, name, kind); the first five are the county, the city and the three PCTs
PARTNERS: tuple[tuple[str, str, str], ...] = (
    ("staffordshire-cc", "Staffordshire County Council", "county-council"),
    ("stoke-on-trent-cc", "Stoke-on-Trent City Council", "unitary"),
    ("north-staffs-pct", "North Staffordshire Primary Care Trust", "nhs"),
    ("south-staffs-pct", "South Staffordshire Primary Care Trust", "nhs"),
    ("stoke-pct", "Stoke on Trent Primary Care Trust", "nhs"),
    ("cannock-chase-dc", "Cannock Chase District Council", "district-council"),
    ("east-staffs-bc", "East Staffordshire Borough Council", "district-council"),
    ("lichfield-dc", "Lichfield District Council", "district-council"),
    ("newcastle-bc", "Newcastle-under-Lyme Borough Council", "district-council"),
    ("south-staffs-dc", "South Staffordshire Council", "district-council"),
    ("stafford-bc", "Stafford Borough Council", "district-council"),
    ("staffs-moorlands-dc", "Staffordshire Moorlands District Council", "district-council"),
    ("tamworth-bc", "Tamworth Borough Council", "district-council"),
    ("staffordshire-police", "Staffordshire Police", "police"),
    ("staffordshire-fire", "Staffordshire Fire and Rescue Service", "fire"),
)


def write_registry(path: Path) -> Path:
    """Write a partner registry for the reference partnership, with fresh random secrets."""
    lines = ["# Partner registry written by `commissioning up`: fresh secrets, local use only.\n"]
    for pid, name, kind in PARTNERS:
        lines.append(
            f'[[partner]]\nid = "{pid}"\nname = "{name}"\nkind = "{kind}"\n'
            f'secret = "{secrets.token_hex(32)}"\n'
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path


# -- the mapped arrangements (seed 000, Appendix C as summarised in the report) -------------
# 28 with Citizens Advice bureaux, 55 with councils for voluntary service, 17 with Asist;
# about £6m a year; £426,937 a year of staff time to administer; the county, the city and
# the three PCTs hold 74 of them, almost £5m, and £347,365 of that staff time. The report
# publishes only those totals: the split between partners below is illustrative and adds up
# to them exactly.

DEBT = "debt-benefits-consumer-advice"
INFRA = "infrastructure-volunteering"
ADVOCACY = "advocacy"

CATEGORIES = {
    DEBT: ("Debt, benefits and consumer advice", "2012-12-31"),
    INFRA: ("Third sector infrastructure and volunteering", "2013-03-31"),
    ADVOCACY: ("Advocacy", "2012-03-31"),
}

#: partner -> category -> (arrangements, annual staff resource cost, annual budget)
ARRANGEMENTS: dict[str, dict[str, tuple[int, str, str]]] = {
    "staffordshire-cc": {
        DEBT: (6, "41230.00", "950000.00"),
        INFRA: (14, "52870.00", "900000.00"),
        ADVOCACY: (6, "38415.00", "610000.00"),
    },
    "stoke-on-trent-cc": {
        DEBT: (4, "27480.00", "700000.00"),
        INFRA: (9, "33905.00", "320000.00"),
        ADVOCACY: (4, "24120.00", "330000.00"),
    },
    "north-staffs-pct": {
        DEBT: (3, "11960.00", "150000.00"),
        INFRA: (6, "17240.00", "140000.00"),
        ADVOCACY: (3, "16330.00", "120000.00"),
    },
    "south-staffs-pct": {
        DEBT: (3, "12415.00", "160000.00"),
        INFRA: (6, "18105.00", "150000.00"),
        ADVOCACY: (2, "12880.00", "90000.00"),
    },
    "stoke-pct": {
        DEBT: (2, "8770.00", "110000.00"),
        INFRA: (4, "14660.00", "100000.00"),
        ADVOCACY: (2, "16985.00", "120000.00"),
    },
    "cannock-chase-dc": {DEBT: (1, "6120.00", "60000.00"), INFRA: (2, "4870.00", "65000.00")},
    "east-staffs-bc": {DEBT: (1, "3480.00", "55000.00"), INFRA: (2, "8215.00", "60000.00")},
    "lichfield-dc": {DEBT: (1, "2960.00", "45000.00"), INFRA: (2, "4330.00", "55000.00")},
    "newcastle-bc": {DEBT: (1, "3845.00", "70000.00"), INFRA: (2, "7787.00", "80000.00")},
    "south-staffs-dc": {DEBT: (1, "2715.00", "40000.00"), INFRA: (2, "3905.00", "50000.00")},
    "stafford-bc": {DEBT: (1, "3390.00", "55000.00"), INFRA: (2, "5080.00", "60000.00")},
    "staffs-moorlands-dc": {DEBT: (1, "2580.00", "35000.00"), INFRA: (1, "2465.00", "35000.00")},
    "tamworth-bc": {DEBT: (1, "3205.00", "50000.00"), INFRA: (1, "2890.00", "40000.00")},
    "staffordshire-police": {DEBT: (1, "4410.00", "90000.00"), INFRA: (1, "2275.00", "30000.00")},
    "staffordshire-fire": {DEBT: (1, "2940.00", "40000.00"), INFRA: (1, "2110.00", "35000.00")},
}

FIVE = ("staffordshire-cc", "stoke-on-trent-cc", "north-staffs-pct", "south-staffs-pct", "stoke-pct")
ALL = tuple(pid for pid, _, _ in PARTNERS)

#: the three shared contracts: category, contract id, supplier, start, end
CONTRACTS = (
    (ADVOCACY, "tscip-advocacy-2012", ("asist", "Asist"), "2012-04-01", "2015-03-31"),
    (
        DEBT,
        "tscip-debt-advice-2013",
        ("staffs-cab-consortium", "Staffordshire CAB consortium"),
        "2013-01-01",
        "2015-12-31",
    ),
    (
        INFRA,
        "tscip-infrastructure-2013",
        ("staffs-cvs-consortium", "Staffordshire CVS and VAST consortium"),
        "2013-04-01",
        "2016-03-31",
    ),
)

#: The programme's one-off costs are not published in the report; these are illustrative,
#: chosen so that the ROI over the 5.5-year horizon comes out at the report's 58% (all
#: fifteen partners) and 55% (the five).
INVESTMENTS = {
    "fifteen": (
        ("tscip-iewm-programme-2010", "2010-10-01", "250000.00", "programme development (IEWM funded)"),
        ("tscip-project-team-2011", "2011-04-01", "200000.00", "project team"),
        ("tscip-procurement-2012", "2012-04-01", "153000.00", "joint procurement"),
    ),
    "five": (
        ("tscip-iewm-programme-2010", "2010-10-01", "250000.00", "programme development (IEWM funded)"),
        ("tscip-project-team-2011", "2011-04-01", "160000.00", "project team"),
        ("tscip-procurement-2012", "2012-04-01", "103800.00", "joint procurement"),
    ),
}


def need_id(partner_id: str, category: str) -> str:
    return f"{partner_id}-{category}"


def reference_payloads(case: str = "fifteen") -> list[tuple[str, str, dict[str, object]]]:
    """(partner, type, data) for the reference partnership: every partner's needs, the
    investments, and the three shared contracts ("fifteen": advocacy funded by the five, the
    other two by all fifteen; "five": all three by the five)."""
    members = ALL if case == "fifteen" else FIVE
    out: list[tuple[str, str, dict[str, object]]] = []
    for pid in members:
        for category, (arrangements, cost, budget) in ARRANGEMENTS[pid].items():
            title, ends = CATEGORIES[category]
            out.append(
                (
                    pid,
                    "need.identified",
                    {
                        "need_id": need_id(pid, category),
                        "partner_id": pid,
                        "service_category": category,
                        "title": title,
                        "annual_budget": budget,
                        "current_arrangements": arrangements,
                        "current_annual_resource_cost": cost,
                        "current_arrangements_end": ends,
                        "open_to_sharing": True,
                    },
                )
            )
    for inv_id, when, amount, what in INVESTMENTS[case]:
        out.append(
            (
                "staffordshire-cc",
                "investment.recorded",
                {
                    "investment_id": inv_id,
                    "partner_id": "staffordshire-cc",
                    "date": when,
                    "amount": amount,
                    "description": what,
                },
            )
        )
    for category, contract_id, (sid, sname), start, end in CONTRACTS:
        funders = [p for p in members if category in ARRANGEMENTS[p]]
        value = sum(Decimal(ARRANGEMENTS[p][category][2]) for p in funders)
        out.append(
            (
                "staffordshire-cc",
                "tender.awarded",
                {
                    "tender_id": contract_id.rsplit("-", 1)[0],
                    "contract_id": contract_id,
                    "lead_partner_id": "staffordshire-cc",
                    "commissioning_model": "aligned_budgets",
                    "supplier": {"id": sid, "name": sname},
                    "annual_value": money_str(value),
                    "contract_start": start,
                    "contract_end": end,
                    "partners": [{"partner_id": p, "need_id": need_id(p, category)} for p in funders],
                },
            )
        )
    return out
