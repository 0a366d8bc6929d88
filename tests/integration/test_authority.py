"""Authority (CONTRACT.md 1.1) through real `commissioning serve` processes on a real Redis:
every row of the permission table refused with its code and no figure moved, against the
reference partnership's £317,648; the allowed acts of members (own schedule, exit) accepted;
and, on random sequences of acts by random partners, outsiders included, the figures equal
those from replaying only the accepted acts."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.tscip import reference_payloads
from tests.support import READ, Proc, send_as, serve, service_env, tscip_secret, wait_for, write_tscip_partners

pytestmark = pytest.mark.integration

LEAD = "staffordshire-cc"
ADVOCACY = "tscip-advocacy-2012"   # funded by the five: the county, the city, three PCTs
DEBT = "tscip-debt-advice-2013"    # all fifteen


def decision(r: redis.Redis, prefix: str, partner: str, etype: str, event_id: str) -> tuple[str, str | None] | None:
    """How the owner decided one act: ("accepted", None), ("refused", code), or None yet."""
    for _, f in r.xrange(f"{prefix}:rejected:{partner}"):
        if json.loads(f[b"event"]).get("id") == event_id:
            return "refused", json.loads(f[b"reason"])["code"]
    for _, f in r.xrange(f"{prefix}:{etype}"):
        if json.loads(f[b"event"])["id"] == event_id:
            return "accepted", None
    return None


def decided(r: redis.Redis, prefix: str, partner: str, etype: str, event_id: str) -> tuple[str, str | None]:
    return wait_for(lambda: decision(r, prefix, partner, etype, event_id), 30, what=f"a decision on {event_id}")


def figures(proc: Proc) -> dict[str, Any]:
    return httpx.get(f"{proc.url}/savings", timeout=5, headers=READ).json()


def send_reference(r: redis.Redis, prefix: str, run: str) -> None:
    for n, (pid, etype, data) in enumerate(reference_payloads("fifteen")):
        send_as(r, prefix, pid, etype, data, f"{run}-{n}")


@pytest.fixture(scope="module")
def reference(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[redis.Redis, str, Proc]]:
    """One deployment holding the reference partnership (£317,648 a year)."""
    tmp = tmp_path_factory.mktemp("authority")
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    env = service_env(redis_url, prefix, write_tscip_partners(tmp / "p.toml"), decide_wait_s="1")
    proc = serve(tmp, env)
    r = redis.Redis.from_url(redis_url)
    try:
        proc.wait_ready()
        send_reference(r, prefix, "ref")
        wait_for(lambda: figures(proc)["portfolio"]["annual_saving"] == "317648.00", 60, what="£317,648")
        yield r, prefix, proc
    finally:
        proc.stop()
        keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()


def _ret(contract: str, partner: str, start: str, end: str, **over: Any) -> dict[str, Any]:
    return {"contract_id": contract, "partner_id": partner, "period_start": start, "period_end": end,
            "spend": "1000.00", **over}


def _award(contract: str, shares: list[tuple[str, str, str | None]], **over: Any) -> dict[str, Any]:
    return {"tender_id": contract, "contract_id": contract, "lead_partner_id": LEAD,
            "commissioning_model": "aligned_budgets", "supplier": {"id": "x", "name": "X"}, "annual_value": "140000.00",
            "contract_start": "2013-04-01", "contract_end": "2016-03-31",
            "partners": [{"partner_id": p, "need_id": f"{p}-{cat}", **({"annual_contribution": c} if c else {})}
                         for p, cat, c in shares], **over}


_END = {"effective_date": "2014-01-01", "reason": "financial_constraints", "replacement": "separate_arrangements"}
_EXIT = {"notice_date": "2013-01-01", "effective_date": "2013-06-01", "reason": "financial_constraints"}

#: (sender, type, data, expected code): one forbidden act per row of docs/authority.md's table
FORBIDDEN = [
    ("stoke-pct", "need.identified", {"need_id": "n", "partner_id": "stoke-on-trent-cc", "service_category": "x",
                                      "title": "x", "annual_budget": "1.00", "current_arrangements": 1,
                                      "current_annual_resource_cost": "1.00", "current_arrangements_end": "2013-01-01",
                                      "open_to_sharing": True}, "acting_for_another"),
    ("stoke-pct", "investment.recorded", {"investment_id": "i", "partner_id": LEAD, "date": "2030-01-01",
                                          "amount": "1.00"}, "acting_for_another"),
    ("stoke-pct", "need.updated", {"need_id": "no-such-need", "partner_id": "stoke-pct", "service_category": "x",
                                   "title": "x", "annual_budget": "1.00", "current_arrangements": 1,
                                   "current_annual_resource_cost": "1.00", "current_arrangements_end": "2013-01-01",
                                   "open_to_sharing": True, "revision": 1}, "unknown_need"),
    ("cannock-chase-dc", "opportunity.joined", {"opportunity_id": "advocacy-2012-03", "partner_id": "cannock-chase-dc"},
     "not_in_opportunity"),
    ("tamworth-bc", "opportunity.declined", {"opportunity_id": "no-such-opportunity", "partner_id": "tamworth-bc"},
     "unknown_opportunity"),
    (LEAD, "tender.awarded", _award("c-not-lead", [("stoke-pct", "advocacy", None)]), "lead_not_a_partner"),
    (LEAD, "tender.awarded", _award("c-money", [(LEAD, "advocacy", "100000.00"), ("north-staffs-pct", "advocacy",
                                                                                "50000.00")]), "contributions_mismatch"),
    (LEAD, "tender.awarded", _award(DEBT, [(LEAD, "debt-benefits-consumer-advice", None)]), "already_awarded"),
    (LEAD, "tender.awarded", _award("c-ghost", [(LEAD, "ghost", None)]), "unknown_need"),
    ("staffordshire-fire", "monitoring.return.submitted",
     _ret(ADVOCACY, "staffordshire-fire", "2012-04-01", "2012-06-30", management_cost="900000.00"), "not_a_partner"),
    (LEAD, "monitoring.return.submitted", _ret(ADVOCACY, LEAD, "2030-01-01", "2030-03-31"), "outside_term"),
    ("stoke-on-trent-cc", "monitoring.return.submitted", _ret(ADVOCACY, "stoke-on-trent-cc", "2012-04-01", "2012-06-30"),
     "no_schedule"),
    (LEAD, "monitoring.return.submitted", _ret("c-none", LEAD, "2012-04-01", "2012-06-30"), "unknown_contract"),
    ("staffordshire-fire", "contract.decommissioned", {"contract_id": ADVOCACY, "partner_id": "staffordshire-fire",
                                                       **_END}, "not_a_partner"),
    ("stoke-on-trent-cc", "contract.decommissioned", {"contract_id": ADVOCACY, "partner_id": "stoke-on-trent-cc",
                                                      **_END}, "not_the_lead"),
    (LEAD, "contract.decommissioned", {"contract_id": ADVOCACY, "partner_id": LEAD, **_END,
                                       "effective_date": "2030-01-01"}, "outside_term"),
    (LEAD, "contract.member.exited", {"contract_id": ADVOCACY, "partner_id": LEAD, **_EXIT}, "lead_cannot_exit"),
    ("stoke-pct", "contract.member.exited", {"contract_id": ADVOCACY, "partner_id": "stoke-pct", **_EXIT,
                                             "effective_date": "2013-02-01"}, "short_notice"),
    ("stoke-on-trent-cc", "contract.sla.agreed", {"contract_id": ADVOCACY, "partner_id": "stoke-on-trent-cc",
                                                  "kpis": [{"kpi_id": "k", "target": "1"}]}, "not_the_lead"),
]


@pytest.mark.parametrize(("sender", "etype", "data", "code"), FORBIDDEN,
                         ids=[f"{t}:{c}" for _, t, _, c in FORBIDDEN])
def test_a_forbidden_act_is_refused_with_its_reason_and_moves_no_figure(
    reference: tuple[redis.Redis, str, Proc], sender: str, etype: str, data: dict[str, Any], code: str
) -> None:
    r, prefix, proc = reference
    before = figures(proc)
    event_id = f"forbidden-{uuid.uuid4().hex[:8]}"
    send_as(r, prefix, sender, etype, data, event_id)
    assert decided(r, prefix, sender, etype, event_id) == ("refused", code)
    after = figures(proc)
    assert after == before, "a refused act changes no figure"
    assert after["portfolio"]["annual_saving"] == "317648.00" and after["as_of"] == before["as_of"]


def test_a_declined_need_cannot_be_put_into_an_award(reference: tuple[redis.Redis, str, Proc]) -> None:
    r, prefix, proc = reference
    before = figures(proc)
    send_as(r, prefix, "stoke-pct", "opportunity.declined",
            {"opportunity_id": "infrastructure-volunteering-2013-03", "partner_id": "stoke-pct"}, "stoke-pct-declines")
    assert decided(r, prefix, "stoke-pct", "opportunity.declined", "stoke-pct-declines") == ("accepted", None)

    # the procurement service reads the needs service's decisions on its own stream: the award
    # is sent once it has read the opportunity that records the decline
    stream = f"{prefix}:opportunity.updated"
    wait_for(lambda: any('"declined"' in f[b"event"].decode() and "stoke-pct" in f[b"event"].decode()
                         for _, f in r.xrange(stream)), 20, what="the decline in the opportunity")
    wait_for(lambda: caught_up(r, stream, "procurement"), 20, what="procurement to read it")
    time.sleep(0.3)
    send_as(r, prefix, LEAD, "tender.awarded", _award("c-declined", [(LEAD, "infrastructure-volunteering", None),
                                                                      ("stoke-pct", "infrastructure-volunteering", None)]),
            "award-declined")
    assert decided(r, prefix, LEAD, "tender.awarded", "award-declined") == ("refused", "need_declined")
    assert figures(proc) == before


def caught_up(r: redis.Redis, stream: str, group: str) -> bool:
    """The group has been handed, and has acknowledged, every entry of the stream."""
    last = r.xrevrange(stream, count=1)
    info = next((g for g in r.xinfo_groups(stream) if g["name"].decode() == group), None)
    return bool(last and info and info["pending"] == 0 and info["last-delivered-id"] == last[0][0])


def test_members_act_on_their_own_part_and_the_figures_follow(
    r: redis.Redis, prefix: str, redis_url: str, tmp_path: Path
) -> None:
    env = service_env(redis_url, prefix, write_tscip_partners(tmp_path / "p.toml"), decide_wait_s="1")
    proc = serve(tmp_path, env)
    try:
        proc.wait_ready()
        send_reference(r, prefix, "ref")
        wait_for(lambda: figures(proc)["portfolio"]["annual_saving"] == "317648.00", 60, what="£317,648")
        # the lead's SLA gives stoke-on-trent-cc a schedule of its own: its return for the
        # quarter the lead has returned stands beside the lead's
        send_as(r, prefix, LEAD, "contract.sla.agreed", {
            "contract_id": ADVOCACY, "partner_id": LEAD, "kpis": [{"kpi_id": "clients", "target": "100"}],
            "schedules": [{"partner_id": "stoke-on-trent-cc", "kpis": [{"kpi_id": "stoke-clients", "target": "10"}]}]},
            "sla")
        assert decided(r, prefix, LEAD, "contract.sla.agreed", "sla") == ("accepted", None)
        send_as(r, prefix, LEAD, "monitoring.return.submitted", _ret(
            ADVOCACY, LEAD, "2012-04-01", "2012-06-30", kpis=[{"kpi_id": "clients", "target": "100", "actual": "120"}]),
            "lead-q1")
        send_as(r, prefix, "stoke-on-trent-cc", "monitoring.return.submitted", _ret(
            ADVOCACY, "stoke-on-trent-cc", "2012-04-01", "2012-06-30",
            kpis=[{"kpi_id": "stoke-clients", "target": "10", "actual": "12"}]), "stoke-q1")
        assert decided(r, prefix, LEAD, "monitoring.return.submitted", "lead-q1") == ("accepted", None)
        assert decided(r, prefix, "stoke-on-trent-cc", "monitoring.return.submitted", "stoke-q1") == ("accepted", None)

        # north-staffs-pct leaves the advocacy contract with three months' notice: from then the
        # contract no longer replaces its need, and the estimated cost is for four partners
        send_as(r, prefix, "north-staffs-pct", "contract.member.exited", {
            "contract_id": ADVOCACY, "partner_id": "north-staffs-pct", "notice_date": "2013-01-01",
            "effective_date": "2013-04-01", "reason": "financial_constraints"}, "nsp-exit")
        assert decided(r, prefix, "north-staffs-pct", "contract.member.exited", "nsp-exit") == ("accepted", None)
        send_as(r, prefix, "staffordshire-police", "investment.recorded", {
            "investment_id": "later", "partner_id": "staffordshire-police", "date": "2013-05-01", "amount": "1.00"},
            "after-exit")  # moves as_of past the exit's effective date

        def advocacy() -> dict[str, Any]:
            return next(c for c in figures(proc)["contracts"] if c["contract_id"] == ADVOCACY)

        # the five's advocacy baselines: 38,415 + 24,120 + 16,330 + 12,880 + 16,985; less north-staffs-pct's
        wait_for(lambda: advocacy()["baseline_annual_cost"] == f"{108730 - 16330:.2f}", 20, what="the exit applied")
        f = figures(proc)
        assert advocacy()["shared_annual_cost"] == f"{20433.50 + 1371.10 * 4:.2f}"
        nsp = next(p for p in f["partners"] if p["partner_id"] == "north-staffs-pct")
        others = [p for p in f["partners"] if p["partner_id"] != "north-staffs-pct"]
        assert Decimal(nsp["baseline_annual_cost"]) == Decimal("11960.00") + Decimal("17240.00"), \
            "its advocacy baseline is no longer replaced"
        assert sum(Decimal(p["annual_saving"]) for p in f["partners"]) == Decimal(f["portfolio"]["annual_saving"])
        assert all(Decimal(p["annual_saving"]) <= Decimal(p["baseline_annual_cost"]) for p in others + [nsp])
    finally:
        assert proc.terminate() == 0, proc.log()


# -- the property: figures follow from accepted acts only -----------------------------------

PARTNERS = ("staffordshire-cc", "stoke-on-trent-cc", "north-staffs-pct", "tamworth-bc")
DATES = ("2012-12-31", "2013-01-01", "2013-03-31", "2013-04-01", "2013-06-30", "2014-01-01", "2016-01-01", "2030-06-30")


def _acts(run: str) -> st.SearchStrategy[list[tuple[str, str, dict[str, Any]]]]:
    partner = st.sampled_from(PARTNERS)
    contract = st.sampled_from([f"{run}-c1", f"{run}-c2"])
    money = st.sampled_from(["0.00", "5000.00", "30000.00", "900000.00"])
    day = st.sampled_from(DATES)

    @st.composite
    def award(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
        lead = draw(partner)
        # mostly with the lead among the partners (else refused `lead_not_a_partner`)
        members = sorted({*draw(st.lists(partner, max_size=3)), *([lead] if draw(st.integers(0, 4)) else [])} or {lead})
        contributions = draw(st.booleans())
        data = {"tender_id": "t", "contract_id": draw(contract), "lead_partner_id": lead,
                "commissioning_model": "aligned_budgets", "supplier": {"id": "s", "name": "S"},
                "annual_value": "60000.00", "contract_start": "2013-01-01", "contract_end": "2015-12-31",
                "partners": [{"partner_id": p, "need_id": draw(st.sampled_from([f"{run}-{p}"] * 7 + ["ghost"])),
                              **({"annual_contribution": f"{60000 / len(members):.2f}"} if contributions else {})}
                             for p in members]}
        if draw(st.booleans()):
            data["annual_management_cost"] = draw(money)
        return lead, "tender.awarded", data

    @st.composite
    def ret(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
        by, start = draw(partner), draw(st.sampled_from(DATES[:5]))
        end = {"2012-12-31": "2013-03-31", "2013-01-01": "2013-03-31", "2013-03-31": "2013-06-30",
               "2013-04-01": "2013-06-30", "2013-06-30": "2030-06-30"}[start]
        return by, "monitoring.return.submitted", _ret(draw(contract), by, start, end, management_cost=draw(money))

    @st.composite
    def end(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
        by = draw(partner)
        return by, "contract.decommissioned", {"contract_id": draw(contract), "partner_id": by, **_END,
                                               "effective_date": draw(day)}

    @st.composite
    def leave(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
        by = draw(partner)
        return by, "contract.member.exited", {"contract_id": draw(contract), "partner_id": by,
                                              "notice_date": "2013-01-01", "effective_date": draw(day),
                                              "reason": "no_longer_strategic"}

    @st.composite
    def invest(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
        by = draw(partner)
        return by, "investment.recorded", {"investment_id": f"{run}-{draw(st.integers(0, 3))}", "partner_id": by,
                                           "date": "2012-01-01", "amount": draw(money)}

    acts = st.lists(st.one_of(award(), ret(), ret(), end(), leave(), invest()), max_size=10)
    return st.builds(lambda first, rest: [first, *rest], award(), acts)


@pytest.fixture(scope="module")
def two_deployments(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[redis.Redis, list[Any]]]:
    """A: receives every act; B: receives only what A accepted."""
    tmp = tmp_path_factory.mktemp("replay")
    partners = write_tscip_partners(tmp / "p.toml")
    r = redis.Redis.from_url(redis_url)
    sides = []
    try:
        for name in ("all", "accepted"):
            prefix = f"t-{uuid.uuid4().hex[:12]}"
            proc = serve(tmp, service_env(redis_url, prefix, partners, decide_wait_s="1"), name=name)
            sides.append((prefix, proc))
        for _, proc in sides:
            proc.wait_ready()
        yield r, sides
    finally:
        for prefix, proc in sides:
            proc.stop()
            keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                r.delete(*keys)
        r.close()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_figures_follow_from_accepted_acts_alone(two_deployments: tuple[redis.Redis, list[Any]],
                                                 data: st.DataObject) -> None:
    r, [(all_prefix, every), (ok_prefix, accepted_only)] = two_deployments
    run = uuid.uuid4().hex[:6]
    needs = [(p, "need.identified", {
        "need_id": f"{run}-{p}", "partner_id": p, "service_category": f"cat-{run}", "title": "t",
        "annual_budget": "50000.00", "current_arrangements": 2, "current_annual_resource_cost": f"{8000 + 1000 * n}.00",
        "current_arrangements_end": "2012-12-31", "open_to_sharing": n != 3}) for n, p in enumerate(PARTNERS)]
    acts = needs + data.draw(_acts(run))
    sent = []
    for n, (by, etype, payload) in enumerate(acts):
        event_id = f"{run}-{n}"
        send_as(r, all_prefix, by, etype, payload, event_id)
        sent.append((by, etype, payload, event_id))
    verdicts = [decided(r, all_prefix, by, etype, eid) for by, etype, _, eid in sent]
    accepted = [s for s, v in zip(sent, verdicts, strict=True) if v[0] == "accepted"]
    for by, etype, payload, event_id in accepted:
        send_as(r, ok_prefix, by, etype, payload, event_id)
    for by, etype, _, event_id in accepted:
        assert decided(r, ok_prefix, by, etype, event_id) == ("accepted", None), "the accepted acts, replayed, stand"

    def same() -> bool:
        a, b = figures(every), figures(accepted_only)
        return a == b and a["events_applied"] == b["events_applied"]

    wait_for(same, 30, interval=0.2, what="equal figures from everything sent and from the accepted acts alone")
