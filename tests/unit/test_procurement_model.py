"""Procurement: routes either side of each threshold, lifecycle by dates, evaluation, award."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.procurement.model import ProcurementPolicy, Register, awards, check_request, evolve, route, tenders
from shared.authority import Refused, Wait
from services.procurement.state import notices
from shared.events import PAYLOADS, TenderAwarded, TenderRequested

POLICY = ProcurementPolicy()
T = "t-advocacy"


def request(value: str = "200000.00", months: int = 36, category: str = "advocacy", kind: str = "service",
            **over: Any) -> tuple[str, dict[str, Any]]:
    data = {"tender_id": T, "partner_id": "lead", "title": "Advocacy", "service_category": category, "kind": kind,
            "partners": [{"partner_id": "lead", "need_id": "n1", "annual_contribution": "120000.00"},
                         {"partner_id": "other", "need_id": "n2", "annual_contribution": "80000.00"}],
            "estimated_annual_value": value, "term_months": months, "date": "2012-01-02",
            "clarification_deadline": "2012-01-20", "closing_date": "2012-02-01", "contract_start": "2012-04-01",
            "weighting": {"price": "40", "quality": "50", "social_value": "10"}}
    return ("tender.requested", {**data, **over})


def bid(bid_id: str, provider: str, price: str, on: str = "2012-01-25", **over: Any) -> tuple[str, dict[str, Any]]:
    return ("bid.submitted", {"tender_id": T, "bid_id": bid_id, "provider_id": provider, "provider_name": provider.upper(),
                              "submitted_on": on, "annual_price": price, **over})


def evaluation(date: str = "2012-02-10", **over: Any) -> tuple[str, dict[str, Any]]:
    return ("tender.evaluation.submitted", {"tender_id": T, "partner_id": "lead", "date": date, "scores": [
        {"bid_id": "b1", "quality": "80", "social_value": "50"},
        {"bid_id": "b2", "quality": "70", "social_value": "90"},
        {"bid_id": "b3", "quality": "60", "social_value": "20"}], **over})


def confirm(date: str = "2012-02-20", partner: str = "lead") -> tuple[str, dict[str, Any]]:
    return ("tender.award.confirmed", {"tender_id": T, "partner_id": partner, "date": date, "contract_id": "advocacy-2012"})


BIDS = [bid("b1", "cab", "190000.00"), bid("b2", "age-uk", "180000.00"), bid("b3", "other-co", "185000.00")]


def run(items: list[tuple[str, dict[str, Any]]], kinds: dict[str, str] | None = None) -> tuple[dict[str, Any], list[Any]]:
    reg = Register()
    for n, (t, d) in enumerate(items):
        sender = d.get("provider_id") or d["partner_id"]
        evolve(reg, f"/partners/{sender} e{n:03d}", PAYLOADS[t].model_validate(d))
    return tenders(reg, POLICY, kinds or {})


@pytest.mark.parametrize(
    ("value", "months", "category", "kind", "lead_kind", "expected"),
    [
        ("3000.00", 36, "advocacy", "project", "", "grant_funding"),            # £9,000
        ("3400.00", 36, "advocacy", "project", "", "request_for_quotations"),   # £10,200
        ("8333.00", 36, "advocacy", "service", "", "request_for_quotations"),   # £24,999
        ("8334.00", 36, "advocacy", "service", "", "competitive_tender"),       # £25,002
        ("221179.99", 36, "advocacy", "service", "", "competitive_tender"),     # £663,539.97
        ("221180.00", 36, "advocacy", "service", "", "regulated_light_touch"),  # £663,540
        ("69239.99", 36, "ict", "service", "", "competitive_tender"),           # £207,719.97
        ("69240.00", 36, "ict", "service", "", "regulated_open"),               # £207,720
        ("45005.99", 36, "ict", "service", "nhs", "competitive_tender"),        # £135,017.97
        ("45006.00", 36, "ict", "service", "nhs", "regulated_open"),            # £135,018
    ],
)
def test_route_either_side_of_each_threshold(value: str, months: int, category: str, kind: str, lead_kind: str, expected: str) -> None:
    req = TenderRequested.model_validate(request(value, months, category, kind)[1])
    name, why, _ = route(req, lead_kind, POLICY)
    assert name == expected, why
    assert "lifetime value" in why


def test_large_contracts_are_expected_in_lots() -> None:
    req = TenderRequested.model_validate(request("400000.00")[1])
    assert "lots" in route(req, "", POLICY)[1]


def test_the_full_lifecycle_to_the_contracts_award() -> None:
    view, refusals = run([request(), *BIDS, evaluation(), confirm()])
    assert refusals == []
    t = view[T]
    assert t["status"] == "awarded" and t["route"] == "competitive_tender"
    lot = t["results"]["-"]
    # price 40%: cheapest (180,000) scores 100; quality 50%; social value 10%
    totals = {r["bid_id"]: r["total"] for r in lot["bids"]}
    assert totals == {"b1": "82.89", "b2": "84.00", "b3": "70.92"}  # b3: 0.4 x 97.30 + 0.5 x 60 + 0.1 x 20
    assert lot["winner"] == "b2" and [r["rank"] for r in lot["bids"]] == [1, 2, 3]
    [award] = awards(T, t)
    TenderAwarded.model_validate(award)  # exactly the contract's payload
    assert award["supplier"] == {"id": "age-uk", "name": "AGE-UK"} and award["annual_value"] == "180000.00"
    assert award["contract_end"] == "2015-03-31"
    # the tender's estimated contributions (120,000 : 80,000), scaled to the price won: they sum
    # to the award's annual value (docs/authority.md, Money)
    assert award["partners"] == [{"partner_id": "lead", "need_id": "n1", "annual_contribution": "108000.00"},
                                 {"partner_id": "other", "need_id": "n2", "annual_contribution": "72000.00"}]


@pytest.mark.parametrize(
    ("items", "code"),
    [
        ([request(), bid("late", "cab", "1.00", on="2012-02-02")], "tender_closed"),
        ([request(), bid("early", "cab", "1.00", on="2012-01-01")], "tender_not_open"),
        ([request(), *BIDS, confirm()], "tender_not_evaluated"),
        ([request(), *BIDS, evaluation(date="2012-02-01")], "tender_still_open"),
        ([request(), *BIDS, evaluation(), confirm(date="2012-02-15")], "standstill_not_over"),
        ([request(), *BIDS, evaluation(), confirm(partner="other")], "not_the_lead"),
        ([request(), *BIDS, evaluation(scores=[{"bid_id": "b1", "quality": "1"}])], "bids_not_scored"),
        ([bid("x", "cab", "1.00")], "unknown_tender"),
        ([request(consortia_allowed=False), bid("c", "cab", "1.00", consortium=["age-uk"])], "consortia_not_allowed"),
        ([request(), *BIDS, evaluation(), confirm(), confirm(date="2012-03-01")], "already_awarded"),
        ([request(), ("tender.cancel.requested", {"tender_id": T, "partner_id": "lead", "date": "2012-01-10", "reason": "budget withdrawn"}),
          bid("b9", "cab", "1.00", on="2012-01-11")], "tender_cancelled"),
    ],
)
def test_invalid_transitions_are_refused_with_a_reason(items: list[tuple[str, dict[str, Any]]], code: str) -> None:
    view, refusals = run(items)
    assert code in [r.code for r in refusals], [(r.code, r.message) for r in refusals]
    assert all(r.message for r in refusals)


def test_abnormally_low_bids_and_ties() -> None:
    low = [*BIDS, bid("b4", "lowball", "90000.00")]
    scores = evaluation(scores=[*evaluation()[1]["scores"], {"bid_id": "b4", "quality": "90", "social_value": "90"}])
    lot = run([request(), *low, scores])[0][T]["results"]["-"]
    b4 = next(r for r in lot["bids"] if r["bid_id"] == "b4")
    assert b4["abnormally_low"] and b4["excluded"] and lot["winner"] == "b2"
    accepted = evaluation(scores=scores[1]["scores"], accept_abnormally_low=["b4"])
    assert run([request(), *low, accepted])[0][T]["results"]["-"]["winner"] == "b4"
    tie = [bid("b1", "cab", "100000.00"), bid("b2", "age-uk", "100000.00")]
    ev = evaluation(scores=[{"bid_id": "b1", "quality": "70"}, {"bid_id": "b2", "quality": "70"}])
    lot = run([request(weighting={"price": "50", "quality": "50"}), *tie, ev])[0][T]["results"]["-"]
    assert lot["tie_broken"] and lot["winner"] == "b1", "equal totals and quality: the earlier submission, then the bid id"


def test_notices_carry_no_bid_before_the_award() -> None:
    before = notices(run([request(), *BIDS, evaluation()])[0])
    text = repr([d.payload for d in before.values()])
    for secret in ("190000.00", "185000.00", "b1", "b3", "quality_score"):
        assert secret not in text
    assert before[f"{T}:closed"].payload["bids_received"] == 3
    after = notices(run([request(), *BIDS, evaluation(), confirm()])[0])
    assert "advocacy-2012" in after and f"{T}:evaluation.published" in after


@settings(max_examples=40, deadline=None)
@given(order=st.randoms(use_true_random=False))
def test_the_lifecycle_does_not_depend_on_arrival_order(order: random.Random) -> None:
    items = [request(), *BIDS, bid("late", "cab", "1.00", on="2012-02-02"), evaluation(), confirm(date="2012-02-15"), confirm()]
    expected = run(items)
    keyed = list(enumerate(items))
    order.shuffle(keyed)
    reg = Register()
    for n, (t, d) in keyed:
        evolve(reg, f"/partners/{d.get('provider_id') or d['partner_id']} e{n:03d}", PAYLOADS[t].model_validate(d))
    got = tenders(reg, POLICY, {})
    assert got[0][T]["results"] == expected[0][T]["results"] and got[0][T]["status"] == "awarded"
    assert sorted((r.key, r.code) for r in got[1]) == sorted((r.key, r.code) for r in expected[1])


# -- what the procurement service decides as owner (docs/authority.md) -----------------------


def _needs(reg: Register, *, open_: bool = True) -> Register:
    for n, (pid, nid) in enumerate((("lead", "n1"), ("other", "n2"))):
        evolve(reg, f"/partners/{pid} need{n}", PAYLOADS["need.identified"].model_validate({
            "need_id": nid, "partner_id": pid, "service_category": "advocacy", "title": "A", "annual_budget": "1.00",
            "current_arrangements": 1, "current_annual_resource_cost": "1.00", "current_arrangements_end": "2012-03-31",
            "open_to_sharing": open_ or pid == "lead"}))
    return reg


def _verdict(reg: Register, t: str, d: dict[str, Any], awarded: frozenset[str] = frozenset()) -> Any:
    try:
        return check_request(reg, PAYLOADS[t].model_validate(d), set(awarded))
    except Refused as no:
        return no.code


def test_a_tender_or_an_award_names_only_needs_their_partners_share() -> None:
    reg = _needs(Register())
    assert _verdict(reg, *request()) == ("tender:t-advocacy",)
    assert isinstance(_verdict(Register(), *request()), Wait), "needs not read yet: it waits for them"
    assert _verdict(_needs(Register(), open_=False), *request()) == "need_not_open"
    outsider = request(partner_id="z")
    assert _verdict(reg, *outsider) == "lead_not_a_partner"
    short = request(value="199999.99")
    assert _verdict(reg, *short) == "contributions_mismatch"
    evolve(reg, "/services/needs o1", PAYLOADS["opportunity.updated"].model_validate({
        "opportunity_id": "advocacy-2012-03", "service_category": "advocacy", "status": "open", "revision": 1,
        "needs": [{"partner_id": "lead", "need_id": "n1", "decision": "joined"},
                  {"partner_id": "other", "need_id": "n2", "decision": "declined"}],
        "window_start": "2012-03-31", "window_end": "2012-03-31", "lead_partner_id": "lead", "options": [],
        "recommendation": "do_nothing", "reasons": []}))
    assert _verdict(reg, *request()) == "need_declined"
    evolve(reg, "/partners/lead t1", PAYLOADS["tender.requested"].model_validate(request()[1]))
    assert _verdict(reg, *request()) == "tender_exists"
    award = {"tender_id": "x", "contract_id": "c", "lead_partner_id": "lead", "commissioning_model": "aligned_budgets",
             "supplier": {"id": "s", "name": "S"}, "annual_value": "10.00", "contract_start": "2012-04-01",
             "contract_end": "2013-03-31", "partners": [{"partner_id": "lead", "need_id": "n1"}]}
    assert _verdict(reg, "tender.awarded", award) == ("award:c",)
    assert _verdict(reg, "tender.awarded", award, frozenset({"c"})) == "already_awarded"


class _Counted(dict):  # type: ignore[type-arg]
    """A register's table, counting how often it is walked whole."""

    walked = 0

    def items(self):  # type: ignore[no-untyped-def]
        _Counted.walked += 1
        return super().items()

    def values(self):  # type: ignore[no-untyped-def]
        _Counted.walked += 1
        return super().values()


def test_each_tender_reads_its_own_lifecycle_not_every_tenders() -> None:
    """The tenders' states equal what they were with every tender's events walked for each
    tender; the register's tables of every bid, evaluation, confirmation and cancellation are
    not walked once a tender (that was quadratic in the number of tenders)."""
    items = []
    for t in ("t-a", "t-b", "t-c", "t-d"):
        items += [(k, {**d, "tender_id": t}) for k, d in [request(), *BIDS, evaluation(), confirm()]]
        items[-1][1]["contract_id"] = f"{t}-2012"
    reg = Register()
    for n, (t, d) in enumerate(items):
        evolve(reg, f"/partners/{d.get('provider_id') or d['partner_id']} e{n:03d}", PAYLOADS[t].model_validate(d))
    expected = tenders(reg, POLICY, {})
    assert [v["status"] for v in expected[0].values()] == ["awarded"] * 4
    for table in ("bids", "evaluations", "confirmations", "cancellations"):
        setattr(reg, table, _Counted(getattr(reg, table)))
    _Counted.walked = 0
    assert tenders(reg, POLICY, {}) == expected
    assert _Counted.walked == 0, "a table of every tender's events was walked for a tender"
