"""The needs service through the bus on a real Redis: the reference partnership's needs become
the report's three shared contracts; sovereignty, floors and partner views."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from shared.auth import authorization
from shared.tscip import reference_payloads
from tests.support import send_as, serve, service_env, tscip_secret, wait_for, write_tscip_partners

pytestmark = pytest.mark.integration


def published(r: redis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    """The latest version of each opportunity, read from the streams as a dashboard would."""
    latest: dict[str, dict[str, Any]] = {}
    for t in ("opportunity.identified", "opportunity.updated"):
        for _, f in r.xrange(f"{prefix}:{t}"):
            ev = json.loads(f[b"event"])
            d = ev["data"]
            if d["opportunity_id"] not in latest or d["revision"] > latest[d["opportunity_id"]]["revision"]:
                latest[d["opportunity_id"]] = d
    return latest


def get(url: str, partner: str | None, path: str) -> httpx.Response:
    headers = {"Authorization": authorization(partner, tscip_secret(partner), "GET", path)} if partner else {}
    return httpx.get(url + path, headers=headers)


def saving(opp: dict[str, Any]) -> str:
    return next(o["annual_saving"] for o in opp["options"] if o["option"] == "aligned_budgets")


def test_needs_become_the_reports_proposals_and_partners_decide(
    r: redis.Redis, prefix: str, redis_url: str, tmp_path: Path
) -> None:
    env = service_env(redis_url, prefix, write_tscip_partners(tmp_path / "p.toml"))
    proc = serve(tmp_path, env, "needs")
    try:
        proc.wait_ready()
        for n, (pid, etype, data) in enumerate(reference_payloads("fifteen")):
            if etype == "need.identified":
                send_as(r, prefix, pid, etype, data, f"ref-{n}")
        # one partner alone, and two partners below the floor: no proposal
        lonely = {"need_id": "tamworth-bc-carers", "partner_id": "tamworth-bc", "service_category": "carers",
                  "title": "Carers' support", "annual_budget": "80000.00", "current_arrangements": 3,
                  "current_annual_resource_cost": "9000.00", "current_arrangements_end": "2013-03-31", "open_to_sharing": True}
        send_as(r, prefix, "tamworth-bc", "need.identified", lonely, "lonely")
        for pid in ("lichfield-dc", "stafford-bc"):
            small = {**lonely, "need_id": f"{pid}-luncheon", "partner_id": pid, "service_category": "luncheon-clubs",
                     "annual_budget": "900.00"}
            send_as(r, prefix, pid, "need.identified", small, f"small-{pid}")

        want = {"advocacy-2012-03": "81441.00", "debt-benefits-consumer-advice-2012-12": "96500.00",
                "infrastructure-volunteering-2013-03": "139707.00"}
        wait_for(lambda: {k: saving(v) for k, v in published(r, prefix).items()} == want, 30, 0.1, "the three proposals")
        assert r.xlen(f"{prefix}:opportunity.identified") == 3

        # sovereignty: a PCT declines advocacy; the appraisal updates without it
        send_as(r, prefix, "stoke-pct", "opportunity.declined", {"opportunity_id": "advocacy-2012-03", "partner_id": "stoke-pct", "reason": "in-house"}, "d1")
        before = published(r, prefix)["advocacy-2012-03"]["revision"]

        def decision(pid: str) -> str:
            return {n["partner_id"]: n["decision"] for n in published(r, prefix)["advocacy-2012-03"]["needs"]}[pid]

        wait_for(lambda: decision("stoke-pct") == "declined", 20, what="the update")
        advocacy = published(r, prefix)["advocacy-2012-03"]
        assert advocacy["revision"] == before + 1
        assert saving(advocacy) == "65827.10"  # 108,730 - 16,985 (stoke-pct) - (20,433.50 + 4 x 1,371.10)

        for pid in ("staffordshire-cc", "stoke-on-trent-cc"):
            send_as(r, prefix, pid, "opportunity.joined", {"opportunity_id": "advocacy-2012-03", "partner_id": pid}, f"j-{pid}")
        wait_for(lambda: published(r, prefix)["advocacy-2012-03"]["status"] == "proposed", 20, what="proposed")
        proposed = published(r, prefix)["advocacy-2012-03"]
        assert saving(proposed) == f"{38415 + 24120 - (20433.50 + 2 * 1371.10):.2f}"

        # a second partner's carers need makes tamworth's lonely one an opportunity; withdrawn, it closes
        send_as(r, prefix, "lichfield-dc", "need.identified", {**lonely, "need_id": "lichfield-carers", "partner_id": "lichfield-dc"}, "c2")
        wait_for(lambda: "carers-2013-03" in published(r, prefix), 20, what="the carers opportunity")
        send_as(r, prefix, "lichfield-dc", "need.withdrawn", {"need_id": "lichfield-carers", "partner_id": "lichfield-dc", "revision": 1}, "w2")
        wait_for(lambda: published(r, prefix)["carers-2013-03"]["status"] == "closed", 20, what="closed")

        # partner views
        assert get(proc.url, None, "/needs").status_code == 401
        mine = get(proc.url, "stoke-pct", "/needs").json()
        assert {n["need_id"] for n in mine["needs"]} == {"stoke-pct-debt-benefits-consumer-advice", "stoke-pct-infrastructure-volunteering", "stoke-pct-advocacy"}
        view = {o["opportunity_id"]: o for o in get(proc.url, "staffordshire-cc", "/needs/opportunities").json()["opportunities"]}
        budgets = {n["partner_id"]: n.get("annual_budget") for n in view["advocacy-2012-03"]["needs"]}
        assert budgets["stoke-on-trent-cc"] == "330000.00" and budgets["north-staffs-pct"] is None
        assert "advocacy-2012-03" not in {o["opportunity_id"] for o in get(proc.url, "tamworth-bc", "/needs/opportunities").json()["opportunities"]}
        timetable = get(proc.url, "tamworth-bc", "/needs/timetable?scope=partnership").json()["reviews"]
        assert timetable[0]["review_by"] == "2012-03-31" and all("annual_budget" not in x for x in timetable)
        assert get(proc.url, "tamworth-bc", "/needs/timetable").json()["reviews"][0]["need_id"] == "tamworth-bc-debt-benefits-consumer-advice"
    finally:
        assert proc.terminate() == 0, proc.log()
