"""The contracts service through the bus on a real Redis, beside the savings service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from shared.auth import authorization
from tests.support import OWNERS, READ, send_as, serve, service_env, tscip_secret, wait_for, write_tscip_partners

pytestmark = pytest.mark.integration

C = "tscip-debt-advice-2013"
LEAD, OTHER, OUTSIDER = "staffordshire-cc", "stoke-on-trent-cc", "tamworth-bc"


def events(r: redis.Redis, prefix: str, etype: str) -> list[dict[str, Any]]:
    return [json.loads(f[b"event"]) for _, f in r.xrange(f"{prefix}:{etype}")]


def latest(r: redis.Redis, prefix: str, key: str, *etypes: str) -> dict[str, dict[str, Any]]:
    """The latest revision of each entity (by `key`) across the given event types."""
    out: dict[str, dict[str, Any]] = {}
    for t in etypes:
        for e in events(r, prefix, t):
            d = e["data"]
            if d[key] not in out or d["revision"] > out[d[key]]["revision"]:
                out[d[key]] = d
    return out


def get(url: str, partner: str, path: str) -> httpx.Response:
    return httpx.get(url + path, headers={"Authorization": authorization(partner, tscip_secret(partner), "GET", path)})


def ret(start: str, end: str, clients: str, n: int) -> dict[str, Any]:
    return {"contract_id": C, "partner_id": LEAD, "period_start": start, "period_end": end, "spend": "98000.00",
            "management_cost": "9000.00", "kpis": [{"kpi_id": "clients-advised", "target": "1200", "actual": clients}]}


def test_award_to_contract_returns_concern_payments_decommission_and_savings(
    r: redis.Redis, prefix: str, redis_url: str, tmp_path: Path
) -> None:
    env = service_env(redis_url, prefix, write_tscip_partners(tmp_path / "p.toml"))
    contracts, savings = serve(tmp_path, env, "contracts"), serve(tmp_path, env, *OWNERS, "savings")
    try:
        contracts.wait_ready()
        savings.wait_ready()
        for pid, cost in ((LEAD, "41230.00"), (OTHER, "27480.00")):
            send_as(r, prefix, pid, "need.identified", {
                "need_id": f"{pid}-debt", "partner_id": pid, "service_category": "debt", "title": "Debt advice",
                "annual_budget": "500000.00", "current_arrangements": 4, "current_annual_resource_cost": cost,
                "current_arrangements_end": "2012-12-31", "open_to_sharing": True}, f"need-{pid}")
        send_as(r, prefix, LEAD, "tender.awarded", {
            "tender_id": "tscip-debt", "contract_id": C, "lead_partner_id": LEAD, "commissioning_model": "aligned_budgets",
            "supplier": {"id": "cab", "name": "Staffordshire CAB consortium"}, "annual_value": "400000.00",
            "contract_start": "2013-01-01", "contract_end": "2015-12-31",
            "partners": [{"partner_id": LEAD, "need_id": f"{LEAD}-debt", "annual_contribution": "250000.00"},
                         {"partner_id": OTHER, "need_id": f"{OTHER}-debt", "annual_contribution": "150000.00"}]}, "award")
        send_as(r, prefix, LEAD, "contract.sla.agreed", {
            "contract_id": C, "partner_id": LEAD, "kpis": [{"kpi_id": "clients-advised", "target": "1200"}],
            "payment_by_results": {"share": "0.10"}}, "sla")
        quarters = [("2013-01-01", "2013-03-31", "1315"), ("2013-04-01", "2013-06-30", "1000"),
                    ("2013-07-01", "2013-09-30", "1250"), ("2013-10-01", "2013-12-31", "1210")]
        for n, (a, b, c) in enumerate(quarters):
            send_as(r, prefix, LEAD, "monitoring.return.submitted", ret(a, b, c, n), f"ret-{n}")

        judged = lambda: latest(r, prefix, "return_key", "monitoring.return.accepted")  # noqa: E731
        wait_for(lambda: len(events(r, prefix, "payment.calculated")) == 4, 30, what="four payments (the SLA applied)")
        wait_for(lambda: [d["status"] for d in judged().values()] == ["accepted"] * 4, 30, what="four rated returns")
        ratings = {d["period_end"]: d["ratings"][0]["rating"] for d in judged().values()}
        assert ratings == {"2013-03-31": "on_target", "2013-06-30": "requires_improvement",
                           "2013-09-30": "on_target", "2013-12-31": "on_target"}
        wait_for(lambda: events(r, prefix, "performance.concern.resolved"), 20, what="the concern resolved")
        [raised] = events(r, prefix, "performance.concern.raised")
        assert raised["data"]["kpi_id"] == "clients-advised" and raised["data"]["raised_for"] == "2013-06-30"
        assert raised["source"] == "/services/contracts"
        pay = {d["period_start"]: d for d in latest(r, prefix, "payment_id", "payment.calculated").values()}
        assert pay["2013-01-01"]["total"] == "98630.14"      # 400,000 x 90/365, all results earned
        assert pay["2013-04-01"]["results_payment"] == "8310.50"  # 10% of 400,000 x 91/365 x 1000/1200
        wait_for(lambda: httpx.get(f"{savings.url}/savings", headers=READ).json()["portfolio"]["annual_saving"]
                 == f"{41230 + 27480 - 23175.70:.2f}", 20, what="the contract's saving in the projection")

        send_as(r, prefix, LEAD, "contract.decommissioned", {
            "contract_id": C, "partner_id": LEAD, "effective_date": "2014-01-01",
            "reason": "financial_constraints", "replacement": "separate_arrangements"}, "decom")
        send_as(r, prefix, LEAD, "monitoring.return.submitted", ret("2014-01-01", "2014-03-31", "1300", 9), "late")
        refusals = lambda: [json.loads(f[b"reason"]) for _, f in r.xrange(f"{prefix}:rejected:{LEAD}")]  # noqa: E731
        wait_for(refusals, 20, what="the late return refused by the contracts service")
        [late] = refusals()
        assert late["code"] == "contract_decommissioned" and "financial_constraints" in late["message"]
        assert len(events(r, prefix, "monitoring.return.submitted")) == 4, "a refused return is not published"
        wait_for(lambda: httpx.get(f"{savings.url}/savings", headers=READ).json()["portfolio"]["annual_saving"] == "0.00", 20,
                 what="the savings projection to move")
        contract = next(c for c in httpx.get(f"{savings.url}/savings", headers=READ).json()["contracts"] if c["contract_id"] == C)
        assert contract["status"] == "decommissioned"

        for pid in (LEAD, OTHER):
            listing = get(contracts.url, pid, "/contracts").json()["contracts"]
            assert [c["contract_id"] for c in listing] == [C]
            detail = get(contracts.url, pid, f"/contracts/{C}").json()
            assert detail["status"] == "decommissioned" and len(detail["returns"]) == 4
        assert get(contracts.url, OUTSIDER, "/contracts").json()["contracts"] == []
        assert get(contracts.url, OUTSIDER, f"/contracts/{C}").status_code == 404
        assert httpx.get(f"{contracts.url}/contracts/{C}").status_code == 401
    finally:
        for p in (contracts, savings):
            assert p.terminate() == 0, p.log()
