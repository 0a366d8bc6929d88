"""A partner in two partnerships signs each with that partnership's secret: one process serves
both (COMMISSIONING_PARTNERSHIPS), each with its own registry (COMMISSIONING_PARTNERS a folder of
`<partnership>.toml`), on one Redis; an event signed for one is refused by the other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from shared.settings import partnership_prefix
from tests.support import event, need_data, serve, service_env, signed, wait_for

pytestmark = pytest.mark.integration

PARTNER = "staffordshire-cc"


def test_each_partnership_takes_only_its_own_signature(redis_url: str, prefix: str, r: redis.Redis,
                                                       tmp_path: Path) -> None:
    folder = tmp_path / "registries"
    folder.mkdir()
    for name in ("north", "south"):
        (folder / f"{name}.toml").write_text(
            f'[[partner]]\nid = "{PARTNER}"\nname = "Staffordshire County Council"\nkind = "council"\n'
            f'secret = "{name}-secret-of-{PARTNER}"\n', encoding="utf-8")
    proc = serve(tmp_path, service_env(redis_url, prefix, folder, partnerships="north,south"), ports=2)
    north, south = partnership_prefix(prefix, "north"), partnership_prefix(prefix, "south")
    try:
        proc.wait_ready()
        ev = event(need_data(), id="n1")
        r.xadd(f"{north}:inbound", signed(ev, secret=f"north-secret-of-{PARTNER}"))
        r.xadd(f"{south}:inbound", signed(ev, secret=f"north-secret-of-{PARTNER}"))  # north's secret, sent south
        wait_for(lambda: r.xlen(f"{north}:need.identified") == 1, 30, 0.1, "north accepts its own signature")
        wait_for(lambda: r.xlen(f"{south}:rejected:{PARTNER}") == 1, 30, 0.1, "south refuses north's")
        [(_, fields)] = r.xrange(f"{south}:rejected:{PARTNER}")
        assert json.loads(fields[b"reason"])["code"] == "bad_signature"
        r.xadd(f"{south}:inbound", signed(ev, secret=f"south-secret-of-{PARTNER}"))
        wait_for(lambda: r.xlen(f"{south}:need.identified") == 1, 30, 0.1, "south accepts its own signature")
        assert r.xlen(f"{north}:need.identified") == 1 and r.xlen(f"{north}:rejected:{PARTNER}") == 0
    finally:
        assert proc.terminate() == 0, proc.log()
