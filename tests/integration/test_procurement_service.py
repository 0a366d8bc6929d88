"""Procurement through the bus on a real Redis: an opportunity from the needs service becomes a
tender with the right route, receives sealed bids, is evaluated and awarded, and the savings
projection moves. Bids are shown not to leak before the award; invalid steps are refused."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from shared.auth import authorization
from shared.tscip import ARRANGEMENTS, need_id
from tests.support import READ, PROVIDERS, send_as, serve, service_env, tscip_secret, wait_for, write_tscip_partners

pytestmark = pytest.mark.integration

LEAD, JOINED, DECLINED = "staffordshire-cc", "stoke-on-trent-cc", "north-staffs-pct"
OPP = "advocacy-2012-03"
TODAY = date.today()


def d(days: int) -> str:
    return (TODAY + timedelta(days=days)).isoformat()


def stream_events(r: redis.Redis, prefix: str, etype: str) -> list[dict[str, Any]]:
    return [json.loads(f[b"event"]) for _, f in r.xrange(f"{prefix}:{etype}")]


def get(url: str, who: str, path: str) -> httpx.Response:
    return httpx.get(url + path, headers={"Authorization": authorization(who, tscip_secret(who), "GET", path)})


def readable_by_partners(r: redis.Redis, prefix: str) -> str:
    """Everything on every stream a partner or another bidder can read: all streams but the
    sealed ones, P:inbound (partners may only add to it), the bidders' own rejected streams and
    the services' internal state (the ACL gives each service alone its `P:state:<service>:*`)."""
    text = []
    for key in r.scan_iter(match=f"{prefix}:*", _type="stream"):
        k = key.decode()
        if k.startswith((f"{prefix}:sealed:", f"{prefix}:state:")) or k == f"{prefix}:inbound":
            continue
        if any(k == f"{prefix}:rejected:{p}" for p in PROVIDERS):
            continue
        text += [json.dumps({f.decode(): v.decode(errors="replace") for f, v in fields.items()}) for _, fields in r.xrange(k)]
    return "\n".join(text)


def test_opportunity_to_award_with_sealed_bids(r: redis.Redis, prefix: str, redis_url: str, tmp_path: Path) -> None:
    env = service_env(redis_url, prefix, write_tscip_partners(tmp_path / "p.toml"))
    procs = {n: serve(tmp_path, env, n) for n in ("needs", "procurement", "savings")}
    try:
        for p in procs.values():
            p.wait_ready()
        for pid in (LEAD, JOINED, DECLINED):
            n, cost, budget = ARRANGEMENTS[pid]["advocacy"]
            send_as(r, prefix, pid, "need.identified", {
                "need_id": need_id(pid, "advocacy"), "partner_id": pid, "service_category": "advocacy", "title": "Advocacy",
                "annual_budget": budget, "current_arrangements": n, "current_annual_resource_cost": cost,
                "current_arrangements_end": "2012-03-31", "open_to_sharing": True}, f"need-{pid}")
        for pid in (LEAD, JOINED):
            send_as(r, prefix, pid, "opportunity.joined", {"opportunity_id": OPP, "partner_id": pid}, f"join-{pid}")
        send_as(r, prefix, DECLINED, "opportunity.declined", {"opportunity_id": OPP, "partner_id": DECLINED}, "decline")

        def opportunity() -> dict[str, Any] | None:
            found = [e["data"] for t in ("opportunity.identified", "opportunity.updated") for e in stream_events(r, prefix, t)]
            return max((x for x in found if x["opportunity_id"] == OPP), key=lambda x: x["revision"], default=None)

        wait_for(lambda: (opportunity() or {}).get("status") == "proposed", 30, what="the proposed opportunity")
        members = [n for n in opportunity()["needs"] if n["decision"] == "joined"]

        tender = {"tender_id": "tscip-advocacy", "partner_id": LEAD, "opportunity_id": OPP, "title": "Advocacy",
                  "service_category": "advocacy", "estimated_annual_value": "60000.00", "term_months": 36,
                  "partners": [{"partner_id": n["partner_id"], "need_id": n["need_id"]} for n in members],
                  "date": d(-3), "clarification_deadline": d(-1), "closing_date": d(1), "contract_start": d(60),
                  "weighting": {"price": "40", "quality": "50", "social_value": "10"}}
        send_as(r, prefix, LEAD, "tender.requested", tender, "tender")
        send_as(r, prefix, LEAD, "tender.requested", {**tender, "tender_id": "closed-one", "date": d(-9),
                                                       "clarification_deadline": d(-5), "closing_date": d(-1)}, "closed-tender")
        bids = {"staffs-cab": "58123.45", "age-uk-staffs": "55432.10", "lowball-ltd": "20987.65"}
        for provider, price in bids.items():
            send_as(r, prefix, provider, "bid.submitted", {
                "tender_id": "tscip-advocacy", "bid_id": f"bid-{provider}", "provider_id": provider,
                "provider_name": provider.replace("-", " ").title(), "submitted_on": d(0), "annual_price": price}, f"bid-{provider}")
        send_as(r, prefix, "staffs-cab", "bid.submitted", {
            "tender_id": "closed-one", "bid_id": "too-late", "provider_id": "staffs-cab", "provider_name": "CAB",
            "submitted_on": d(0), "annual_price": "1.00"}, "late-bid")
        send_as(r, prefix, LEAD, "tender.award.confirmed", {"tender_id": "tscip-advocacy", "partner_id": LEAD,
                                                             "date": d(0), "contract_id": "x"}, "too-soon")

        published = wait_for(lambda: len(stream_events(r, prefix, "tender.published")) == 2 and stream_events(r, prefix, "tender.published"),
                             30, what="both tenders published")
        routes = {e["data"]["tender_id"]: e["data"]["route"] for e in published}
        assert routes["tscip-advocacy"] == "competitive_tender"  # £180,000 lifetime, under the light-touch threshold

        def reasons(who: str) -> dict[str, str]:
            out = {}
            for _, f in r.xrange(f"{prefix}:rejected:{who}"):
                reason = json.loads(f[b"reason"])
                out[reason["code"]] = reason["message"]
            return out

        wait_for(lambda: "tender_closed" in reasons("staffs-cab"), 20, what="the late bid refused")
        wait_for(lambda: "tender_not_evaluated" in reasons(LEAD), 20, what="the early award refused")
        def received() -> int:
            rows = get(procs["procurement"].url, LEAD, "/tenders").json()["tenders"]
            return next((t["bids_received"] for t in rows if t["tender_id"] == "tscip-advocacy"), 0)

        wait_for(lambda: received() == 3, 20, what="three bids received")

        # nothing a partner or another bidder can read holds a bid before the award
        leaks = readable_by_partners(r, prefix)
        for secret in ("58123.45", "55432.10", "20987.65", "bid-staffs-cab", "bid-age-uk-staffs", "bid-lowball-ltd"):
            assert secret not in leaks, f"{secret} leaked before the award"
        endpoints = [get(procs["procurement"].url, LEAD, "/tenders").text, get(procs["procurement"].url, JOINED, "/tenders").text,
                     get(procs["needs"].url, LEAD, "/needs/opportunities").text, httpx.get(f"{procs['savings'].url}/savings", headers=READ).text,
                     get(procs["procurement"].url, "age-uk-staffs", "/tenders").text]
        for text in endpoints:
            for secret in ("58123.45", "20987.65", "bid-staffs-cab", "bid-lowball-ltd"):
                assert secret not in text, f"{secret} visible on an endpoint"
        assert "55432.10" in endpoints[-1], "a bidder sees its own bid"

        send_as(r, prefix, LEAD, "tender.evaluation.submitted", {
            "tender_id": "tscip-advocacy", "partner_id": LEAD, "date": d(2), "scores": [
                {"bid_id": "bid-staffs-cab", "quality": "85", "social_value": "60"},
                {"bid_id": "bid-age-uk-staffs", "quality": "70", "social_value": "70"},
                {"bid_id": "bid-lowball-ltd", "quality": "90", "social_value": "90"}]}, "evaluation")
        intended = wait_for(lambda: stream_events(r, prefix, "tender.award.intended"), 20, what="award intended")[0]["data"]
        assert intended["standstill_end"] == d(12)
        assert "total" not in json.dumps(intended), "scores only with the award"
        send_as(r, prefix, LEAD, "tender.award.confirmed", {"tender_id": "tscip-advocacy", "partner_id": LEAD,
                                                             "date": d(12), "contract_id": "tscip-advocacy-contract"}, "confirm")
        [award] = wait_for(lambda: stream_events(r, prefix, "tender.awarded"), 20, what="tender.awarded")
        assert award["source"] == "/services/procurement"
        # lowball is abnormally low (excluded); staffs-cab: 0.4 x 95.37 + 42.5 + 6 = 86.65 beats 82.00
        assert award["data"]["supplier"]["id"] == "staffs-cab" and award["data"]["annual_value"] == "58123.45"
        [evaluation] = wait_for(lambda: stream_events(r, prefix, "tender.evaluation.published"), 20, what="the scores")
        lowball = next(b for b in evaluation["data"]["lots"][0]["bids"] if b["bid_id"] == "bid-lowball-ltd")
        assert lowball["excluded"] and lowball["abnormally_low"]

        baseline = sum(Decimal(ARRANGEMENTS[p]["advocacy"][1]) for p in (LEAD, JOINED))
        want = f"{baseline - (Decimal('20433.50') + 2 * Decimal('1371.10')):.2f}"
        wait_for(lambda: httpx.get(f"{procs['savings'].url}/savings", headers=READ).json()["portfolio"]["annual_saving"] == want, 20,
                 what="the savings projection to move")
    finally:
        for p in procs.values():
            assert p.terminate() == 0, p.log()



