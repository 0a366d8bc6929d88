"""The benchmark's workload: signed events as partner systems send them (needs, and an award
over every ten), and the partner registry in both forms (the product's TOML, the baseline's
JSON). Imports nothing from the project: the same bytes go to both sides."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

NEEDS_PER_CONTRACT = 10


def partner(i: int) -> str:
    return f"partner-{i:03d}"


def secret(pid: str) -> str:
    return f"secret-{pid}"


def signed(pid: str, etype: str, data: dict, eid: str) -> dict[str, bytes]:
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": eid,
            "source": f"/partners/{pid}",
            "type": etype,
            "time": "2013-04-01T09:00:00+00:00",
            "datacontenttype": "application/json",
            "data": data,
        },
        separators=(",", ":"),
    ).encode()
    return {
        "event": body,
        "signature": hmac.new(secret(pid).encode(), body, hashlib.sha256).hexdigest().encode(),
    }


def contracts(n: int, partners: int, start: int = 0) -> list[dict[str, bytes]]:
    """n contracts: for each, ten partners' needs, then the award over them (11 events)."""
    out = []
    for i in range(start, start + n):
        group = [partner((i + k) % partners) for k in range(NEEDS_PER_CONTRACT)]
        for k, pid in enumerate(group):
            data = {
                "need_id": f"need-{i}-{k}",
                "partner_id": pid,
                "service_category": f"cat-{i % 7}",
                "title": "Advice",
                "annual_budget": "100000.00",
                "current_arrangements": 3,
                "current_annual_resource_cost": f"{10000 + k}.50",
                "current_arrangements_end": "2013-03-31",
                "open_to_sharing": True,
            }
            out.append(signed(pid, "need.identified", data, f"n-{i}-{k}"))
        award = {
            "tender_id": f"t-{i}",
            "contract_id": f"c-{i:06d}",
            "lead_partner_id": group[0],
            "commissioning_model": "aligned_budgets",
            "supplier": {"id": "s", "name": "S"},
            "annual_value": "900000.00",
            "contract_start": "2013-04-01",
            "contract_end": "2016-03-31",
            "partners": [{"partner_id": p, "need_id": f"need-{i}-{k}"} for k, p in enumerate(group)],
        }
        out.append(signed(group[0], "tender.awarded", award, f"a-{i}"))
    return out


def decommission(i: int, partners: int) -> dict[str, bytes]:
    """The lead of contract i ends it (one contract's figures change)."""
    pid = partner(i % partners)
    return signed(
        pid,
        "contract.decommissioned",
        {
            "contract_id": f"c-{i:06d}",
            "partner_id": pid,
            "effective_date": "2013-04-01",
            "reason": "financial_constraints",
            "replacement": "separate_arrangements",
        },
        f"d-{i}",
    )


def write_registry(directory: Path, partners: int) -> tuple[Path, Path]:
    """The partner registry as the product reads it (TOML) and as the baseline does (JSON)."""
    ids = [partner(i) for i in range(partners)]
    toml = directory / "partners.toml"
    toml.write_text("".join(f'[[partner]]\nid = "{p}"\nname = "{p}"\nsecret = "{secret(p)}"\n' for p in ids))
    plain = directory / "secrets.json"
    plain.write_text(json.dumps({p: secret(p) for p in ids}))
    return toml, plain
