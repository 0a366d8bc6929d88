"""The reference partnership: the fifteen public sector organisations of the Staffordshire
Third Sector Commissioning Partnership (seed 000). Used by `commissioning up` for a local
partner registry, and by the demo."""

from __future__ import annotations

import secrets
from pathlib import Path

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
