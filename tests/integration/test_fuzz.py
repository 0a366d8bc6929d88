"""Hostile input through a real process: every entry is rejected with a reason or accepted
exactly once, nothing crashes, and the figures match a model computed here, independently."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzzing import hostile_entry
from tests.support import OWNERS, PARTNERS, READ, event, serve, service_env, signed, wait_for

pytestmark = pytest.mark.integration


def valid_history() -> list[dict[str, bytes]]:
    """Needs, two awards with stated costs and an investment, each sent twice."""
    out = []
    for n, pid in enumerate(PARTNERS):
        data = {"need_id": f"award-need-{n}", "partner_id": pid, "service_category": "advocacy", "title": "Advocacy",
                "annual_budget": "90000.00", "current_arrangements": 3, "current_annual_resource_cost": f"{12000 + n * 1111}.11",
                "current_arrangements_end": "2013-03-31", "open_to_sharing": True}
        out.append(signed(event(data, partner=pid, id=f"award-need-{n}"), partner=pid))
    pids = list(PARTNERS)
    for k, (lead, members, cost) in enumerate(((pids[0], [0, 1], "5000.00"), (pids[2], [2, 3], "7000.50"))):
        award = {"tender_id": f"t{k}", "contract_id": f"c{k}", "lead_partner_id": lead, "commissioning_model": "aligned_budgets",
                 "supplier": {"id": "s", "name": "S"}, "annual_value": "100000.00", "contract_start": "2013-04-01",
                 "contract_end": "2016-03-31", "annual_management_cost": cost,
                 "partners": [{"partner_id": pids[m], "need_id": f"award-need-{m}"} for m in members]}
        out.append(signed(event(award, type="tender.awarded", partner=lead, id=f"award-{k}"), partner=lead))
    inv = {"investment_id": "i1", "partner_id": pids[1], "date": "2012-01-01", "amount": "12345.67"}
    out.append(signed(event(inv, type="investment.recorded", partner=pids[1], id="inv-1"), partner=pids[1]))
    return out + out


def expected_portfolio(r: redis.Redis, prefix: str) -> dict[str, str]:
    """From the accepted streams, with this test's own arithmetic."""
    def events(t: str) -> list[dict[str, Any]]:
        return [json.loads(f[b"event"]) for _, f in r.xrange(f"{prefix}:{t}")]

    needs: dict[tuple[str, str], tuple[str, Decimal]] = {}
    for e in events("need.identified"):
        d, key = e["data"], f"{e['source']} {e['id']}"
        slot = (d["partner_id"], d["need_id"])
        if slot not in needs or key > needs[slot][0]:
            needs[slot] = (key, Decimal(d["current_annual_resource_cost"]))
    baseline = shared = Decimal(0)
    for e in events("tender.awarded"):
        d = e["data"]
        baseline += sum(needs[(p["partner_id"], p["need_id"])][1] for p in d["partners"])
        shared += Decimal(d["annual_management_cost"])
    investment = sum((Decimal(e["data"]["amount"]) for e in events("investment.recorded")), Decimal(0))
    return {"baseline_annual_cost": f"{baseline:.2f}", "shared_annual_cost": f"{shared:.2f}",
            "annual_saving": f"{baseline - shared:.2f}", "investment": f"{investment:.2f}"}


@settings(max_examples=1, deadline=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile=st.lists(hostile_entry(), min_size=150, max_size=150), over_http=st.lists(hostile_entry(), min_size=40, max_size=40))
def test_hostile_input_is_rejected_with_a_reason_or_accepted_once(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path,
    hostile: list[dict[str, bytes]], over_http: list[dict[str, bytes]],
) -> None:
    proc = serve(tmp_path, service_env(redis_url, prefix, partners_path), *OWNERS, "savings")
    try:
        proc.wait_ready()
        entries = hostile + valid_history()
        ids = [r.xadd(f"{prefix}:inbound", e).decode() for e in entries]
        statuses = []
        for e in over_http:
            headers = {"Content-Type": "application/cloudevents+json"}
            if "signature" in e:
                headers["X-Signature"] = "sha256=" + e["signature"].decode()
            res = httpx.post(f"{proc.url}/events", content=e.get("event", b""), headers=headers)
            statuses.append(res.status_code)
            assert res.status_code == 202 or {"code", "message", "errors"} <= set(res.json()), res.text
        assert set(statuses) <= {202, 401, 403, 413, 422}

        wait_for(lambda: r.xpending(f"{prefix}:inbound", "gateway")["pending"] == 0
                 and r.xinfo_groups(f"{prefix}:inbound")[0]["lag"] == 0, 60, 0.2, "inbound drained")

        def verdicts() -> tuple[dict[str, Any], list[str]]:
            """Rejections by inbound entry id (the gateway's, and the owners'), accepted event keys."""
            rejected = {}
            for key in r.scan_iter(match=f"{prefix}:rejected:*"):
                for _, f in r.xrange(key):
                    if f[b"inbound_id"] != b"http":
                        rejected[f[b"inbound_id"].decode()] = json.loads(f[b"reason"])
            accepted_keys: list[str] = []
            for t in ("need.identified", "tender.awarded", "investment.recorded"):
                accepted_keys += [f"{json.loads(f[b'event'])['source']} {json.loads(f[b'event'])['id']}"
                                  for _, f in r.xrange(f"{prefix}:{t}")]
            return rejected, accepted_keys

        def unaccounted() -> list[str]:
            rejected, accepted_keys = verdicts()
            return [i for i, e in zip(ids, entries, strict=True) if i not in rejected
                    and f"{json.loads(e['event'])['source']} {json.loads(e['event'])['id']}" not in accepted_keys]

        # the owners (needs, procurement) decide after the gateway: every entry ends one way or the other
        wait_for(lambda: not unaccounted(), 60, 0.3, "every entry rejected or accepted")
        rejected, accepted_keys = verdicts()
        assert len(accepted_keys) == len(set(accepted_keys)), "an event was accepted twice"
        for entry_id in ids:
            if entry_id in rejected:
                assert rejected[entry_id]["code"] and rejected[entry_id]["message"]
        assert r.xlen(f"{prefix}:dead-letter") == 0
        proc.wait_ready()  # still alive and consuming

        want = expected_portfolio(r, prefix)
        wait_for(lambda: {k: httpx.get(f"{proc.url}/savings", headers=READ).json()["portfolio"][k] for k in want} == want, 30,
                 what="the figures to match the independent model")
    finally:
        assert proc.terminate() == 0, proc.log()
