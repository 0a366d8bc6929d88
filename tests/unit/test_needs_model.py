"""Needs: matching, appraisal against the report's three options, sovereignty, revisions."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.needs.model import Matched, NeedsPolicy, Register, evolve, opportunities
from services.needs.views import own_needs, partner_opportunities, timetable
from shared.auth import AuthError, authenticate, authorization
from shared.authority import Refused
from shared.events import PAYLOADS
from shared.policy import SavingsPolicy
from shared.tscip import reference_payloads

POLICY, SAVINGS = NeedsPolicy(), SavingsPolicy()


def need(pid: str, nid: str, category: str = "advocacy", budget: str = "50000.00", cost: str = "10000.00",
         ends: str = "2013-03-31", sharing: bool = True, **extra: Any) -> tuple[str, dict[str, Any]]:
    data = {"need_id": nid, "partner_id": pid, "service_category": category, "title": category,
            "annual_budget": budget, "current_arrangements": 2, "current_annual_resource_cost": cost,
            "current_arrangements_end": ends, "open_to_sharing": sharing}
    if "revision" in extra:
        return "need.updated", {**data, **extra}
    return "need.identified", data


def register(items: list[tuple[str, dict[str, Any]]]) -> Register:
    reg = Register()
    for n, (etype, data) in enumerate(items):
        evolve(reg, f"/partners/{data['partner_id']} e{n}", PAYLOADS[etype].model_validate(data))
    return reg


def opps(items: list[tuple[str, dict[str, Any]]], policy: NeedsPolicy = POLICY) -> dict[str, dict[str, Any]]:
    return opportunities(register(items), policy, SAVINGS)


def saving(opp: dict[str, Any], option: str = "aligned_budgets") -> str:
    return next(o["annual_saving"] for o in opp["options"] if o["option"] == option)


def test_reference_partnership_gives_the_reports_three_shared_contracts() -> None:
    items = [(t, d) for _, t, d in reference_payloads("fifteen") if t == "need.identified"]
    found = opps(items)
    assert {oid: saving(o) for oid, o in found.items()} == {
        "advocacy-2012-03": "81441.00",
        "debt-benefits-consumer-advice-2012-12": "96500.00",
        "infrastructure-volunteering-2013-03": "139707.00",
    }
    assert sum(Decimal(saving(o)) for o in found.values()) == Decimal("317648.00")
    for o in found.values():
        assert o["recommendation"] == "aligned_budgets"
        assert o["lead_partner_id"] == "staffordshire-cc", "the largest contributor leads"
        assert [x["option"] for x in o["options"]] == ["aligned_budgets", "stand_alone_partnership", "do_nothing"]
        assert o["status"] == "open"
    assert len(found["advocacy-2012-03"]["needs"]) == 5


def test_one_partner_alone_or_below_the_floor_is_no_opportunity() -> None:
    assert opps([need("a", "n1"), need("a", "n2")]) == {}
    assert opps([need("a", "n1", budget="900.00"), need("b", "n2", budget="5000.00")]) == {}
    assert opps([need("a", "n1"), need("b", "n2", sharing=False)]) == {}
    small_joins_large = opps([need("a", "n1", budget="900.00"), need("b", "n2", budget="50000.00")])
    assert [len(o["needs"]) for o in small_joins_large.values()] == [2]


def test_timing_window() -> None:
    apart = [need("a", "n1", ends="2013-01-31"), need("b", "n2", ends="2014-03-31")]
    assert opps(apart) == {}
    assert len(opps(apart, NeedsPolicy(window_months=14))) == 1
    assert len(opps([need("a", "n1", ends="2013-01-31"), need("b", "n2", ends="2014-01-31")])) == 1


def test_a_decline_removes_the_partner_and_the_appraisal_updates() -> None:
    items = [need(p, f"{p}-adv", cost="20000.00") for p in ("a", "b", "c")]
    oid = next(iter(opps(items)))
    before = opps(items)[oid]
    assert saving(before) == f"{Decimal('60000') - SAVINGS.shared_cost(3):.2f}"
    declined = opps([*items, ("opportunity.declined", {"opportunity_id": oid, "partner_id": "c"})])[oid]
    assert saving(declined) == f"{Decimal('40000') - SAVINGS.shared_cost(2):.2f}"
    assert {n["partner_id"]: n["decision"] for n in declined["needs"]}["c"] == "declined"
    assert any("declined: c" in r for r in declined["reasons"])
    alone = opps([*items, *[("opportunity.declined", {"opportunity_id": oid, "partner_id": p}) for p in "bc"]])[oid]
    assert alone["status"] == "not_viable" and alone["recommendation"] == "do_nothing"


def test_only_joined_partners_are_carried_forward() -> None:
    items = [need(p, f"{p}-adv", cost="20000.00", budget=b) for p, b in (("a", "10000.00"), ("b", "90000.00"), ("c", "50000.00"))]
    oid = next(iter(opps(items)))
    one = opps([*items, ("opportunity.joined", {"opportunity_id": oid, "partner_id": "a"})])[oid]
    assert one["status"] == "open"
    two = [*items, ("opportunity.joined", {"opportunity_id": oid, "partner_id": "a"}),
           ("opportunity.joined", {"opportunity_id": oid, "partner_id": "c"})]
    proposed = opps(two)[oid]
    assert proposed["status"] == "proposed"
    assert saving(proposed) == f"{Decimal('40000') - SAVINGS.shared_cost(2):.2f}", "b has not joined"
    assert proposed["lead_partner_id"] == "c", "the largest contributor among the members"
    offered = opps([*two[:-1], ("opportunity.joined", {"opportunity_id": oid, "partner_id": "c"}),
                    ("opportunity.joined", {"opportunity_id": oid, "partner_id": "a", "revision": 1, "offers_to_lead": True})])[oid]
    assert offered["lead_partner_id"] == "a", "partners can say otherwise"


def test_a_partners_needs_count_together_for_the_lead_and_the_costs() -> None:
    """Partner a's three small needs outweigh b's one large one (the lead is the largest
    contributor by its needs' budgets together); the baseline and arrangements sum every need of
    the partners carried forward, and none of a declined partner's."""
    items = [need("a", f"a-{k}", budget="40000.00", cost="1000.10") for k in range(3)]
    items += [need("b", "b-1", budget="100000.00", cost="2000.20"), need("c", "c-1", cost="3000.30")]
    oid = next(iter(opps(items)))
    opp = opps(items)[oid]
    assert opp["lead_partner_id"] == "a", "120,000 over three needs against 100,000 in one"
    assert opp["options"][2]["annual_cost"] == "8000.80", "a's three needs, b's and c's"
    assert opp["reasons"][0].startswith("3 partners need advocacy") and "10 arrangements" in opp["reasons"][0]
    declined = opps([*items, ("opportunity.declined", {"opportunity_id": oid, "partner_id": "a"})])[oid]
    assert declined["lead_partner_id"] == "b"
    assert declined["options"][2]["annual_cost"] == "5000.50" and "4 arrangements" in declined["reasons"][0]
    assert [n["decision"] for n in declined["needs"] if n["partner_id"] == "a"] == ["declined"] * 3


def test_when_sharing_costs_more_the_recommendation_is_do_nothing() -> None:
    o = next(iter(opps([need("a", "n1", cost="1000.00"), need("b", "n2", cost="1000.00")]).values()))
    assert o["recommendation"] == "do_nothing"
    assert any("better off as they are" in r for r in o["reasons"])


def test_updates_and_withdrawals_follow_revisions_not_arrival() -> None:
    base = [need("a", "n1", cost="10000.00"), need("b", "n2", cost="10000.00")]
    update = need("a", "n1", cost="30000.00", revision=2)
    older = need("a", "n1", cost="20000.00", revision=1)
    one = opps([*base, update, older])
    two = opps([older, update, *base])
    assert one == two
    assert saving(next(iter(one.values()))) == f"{Decimal('40000') - SAVINGS.shared_cost(2):.2f}"
    withdrawn = ("need.withdrawn", {"need_id": "n1", "partner_id": "a", "revision": 3})
    assert opps([*base, update, withdrawn]) == {}
    restored = need("a", "n1", cost="5000.00", revision=4)
    assert len(opps([*base, withdrawn, restored])) == 1


@settings(max_examples=40, deadline=None)
@given(order=st.randoms(use_true_random=False))
def test_opportunities_do_not_depend_on_arrival_order(order: random.Random) -> None:
    items = [(t, d) for _, t, d in reference_payloads("fifteen") if t == "need.identified"]
    items += [("opportunity.declined", {"opportunity_id": "advocacy-2012-03", "partner_id": "stoke-pct"}),
              ("opportunity.joined", {"opportunity_id": "advocacy-2012-03", "partner_id": "stoke-pct", "revision": 1}),
              ("opportunity.joined", {"opportunity_id": "advocacy-2012-03", "partner_id": "north-staffs-pct"}),
              need("tamworth-bc", "tamworth-bc-debt-benefits-consumer-advice", category="debt-benefits-consumer-advice",
                   budget="1.00", cost="1.00", ends="2012-12-31", revision=1)]
    expected = opps(items)
    shuffled = list(items)
    order.shuffle(shuffled)
    assert opps(shuffled) == expected


def test_partners_see_their_own_detail_and_only_joined_budgets() -> None:
    items = [need("a", "na", budget="11111.00"), need("b", "nb", budget="22222.00"), need("c", "nc", budget="33333.00")]
    reg = register(items)
    found = opportunities(reg, POLICY, SAVINGS)
    oid = next(iter(found))
    as_a = partner_opportunities(reg, found, "a")[0]
    budgets = {n["partner_id"]: n.get("annual_budget") for n in as_a["needs"]}
    assert budgets == {"a": "11111.00", "b": None, "c": None}
    reg2 = register([*items, ("opportunity.joined", {"opportunity_id": oid, "partner_id": "a"}),
                     ("opportunity.joined", {"opportunity_id": oid, "partner_id": "b"})])
    found2 = opportunities(reg2, POLICY, SAVINGS)
    budgets = {n["partner_id"]: n.get("annual_budget") for n in partner_opportunities(reg2, found2, "a")[0]["needs"]}
    assert budgets == {"a": "11111.00", "b": "22222.00", "c": None}
    assert partner_opportunities(reg2, found2, "zzz") == []
    assert [n["need_id"] for n in own_needs(reg2, "b")] == ["nb"]
    assert all("annual_budget" not in r for r in timetable(reg2, None))
    assert [r["need_id"] for r in timetable(reg2, "c")] == ["nc"]


def test_request_authentication(registry: Any) -> None:
    header = authorization("tamworth-bc", "secret-tamworth", "GET", "/needs?x=1", now=1000)
    assert authenticate(registry, "GET", "/needs?x=1", header, now=1010) == "tamworth-bc"
    for target, now, code in (("/needs?x=2", 1010, "bad_signature"), ("/needs?x=1", 2000, "stale_request")):
        try:
            authenticate(registry, "GET", target, header, now=now)
        except AuthError as e:
            assert e.code == code
        else:
            raise AssertionError(code)
    for bad in (None, "Bearer x", "Partner nobody:1:ab", "Partner a:b"):
        try:
            authenticate(registry, "GET", "/needs", bad, now=1000)
        except AuthError:
            pass
        else:
            raise AssertionError(bad)


@settings(max_examples=40, deadline=None)
@given(order=st.randoms(use_true_random=False), steps=st.lists(st.integers(1, 4), min_size=1, max_size=12))
def test_opportunities_matched_a_few_events_at_a_time_equal_matching_everything(
        order: random.Random, steps: list[int]) -> None:
    # the service matches again only the categories a batch touched: it must end where
    # matching the whole register ends
    items = [need("a", "n1"), need("b", "n2"), need("c", "n3", ends="2013-09-30"),
             need("a", "m1", category="carers"), need("b", "m2", category="carers", budget="5000.00"),
             need("c", "m3", category="carers"), need("b", "n2", category="carers", revision=1),
             ("need.withdrawn", {"need_id": "n3", "partner_id": "c", "revision": 1}),
             ("opportunity.joined", {"opportunity_id": "advocacy-2013-03", "partner_id": "a",
                                     "revision": 0, "offers_to_lead": True}),
             ("opportunity.declined", {"opportunity_id": "carers-2013-03", "partner_id": "c",
                                       "revision": 0, "reason": "not now"})]
    keyed = [(f"/partners/{d['partner_id']} e{n}", PAYLOADS[t].model_validate(d)) for n, (t, d) in enumerate(items)]
    order.shuffle(keyed)
    reg, kept = Register(), Matched(POLICY, SAVINGS)
    seen: dict[str, Any] = {}
    while keyed:
        batch, keyed = keyed[:steps[0]], keyed[steps[0]:]
        steps = steps[1:] or [1]
        for k, p in batch:
            evolve(reg, k, p)
        scope = kept.refresh(reg)
        for oid in set(kept.opportunities) if scope is None else scope:
            seen[oid] = kept.opportunities.get(oid)
    whole = opportunities(reg, POLICY, SAVINGS)
    assert kept.opportunities == whole
    assert {oid: p for oid, p in seen.items() if p is not None} == whole, "every change was in a batch's scope"


@settings(max_examples=60, deadline=None)
@given(
    changes=st.lists(
        st.tuples(
            st.sampled_from("abcd"),  # partner
            st.integers(0, 5),  # need
            st.integers(0, 3),  # revision
            st.sampled_from(["advocacy", "carers", "advice"]),
            st.sampled_from(["2013-03-31", "2013-09-30", "2014-06-30", "2015-01-31"]),
            st.booleans(),  # open to sharing
            st.booleans(),  # withdrawn instead
        ),
        min_size=1,
        max_size=40,
    ),
    cuts=st.lists(st.integers(1, 6), min_size=1, max_size=10),
)
def test_each_categorys_order_kept_as_needs_move_matches_as_sorting_everything(
    changes: list[tuple[str, int, int, str, str, bool, bool]], cuts: list[int]
) -> None:
    """`Matched` keeps each category's needs in matching order as they are identified, updated
    (to another category, end or sharing), withdrawn and identified again, rather than sorting
    them each time: after every batch, what it holds is what matching everything finds."""
    reg, kept = Register(), Matched(POLICY, SAVINGS)
    for n, (pid, k, revision, category, ends, sharing, withdrawn) in enumerate(changes):
        if withdrawn:
            item = ("need.withdrawn", {"need_id": f"n{k}", "partner_id": pid, "revision": revision or 1})
        else:
            item = need(pid, f"n{k}", category=category, ends=ends, sharing=sharing,
                        **({"revision": revision} if revision else {}))
        evolve(reg, f"/partners/{pid} e{n}", PAYLOADS[item[0]].model_validate(item[1]))
        if n + 1 == cuts[0] or n + 1 == len(changes):
            cuts = [cuts[0] + (cuts[1:] or [1])[0]] + cuts[2:]
            kept.refresh(reg)
            assert kept.opportunities == opportunities(reg, POLICY, SAVINGS)


def test_a_partners_decision_on_an_opportunity_is_checked_against_its_category_alone(
    monkeypatch: Any,
) -> None:
    """Joining or declining is judged by matching the opportunity's own service category (its
    id names it), not every need of the partnership for each decision; the verdicts are those
    of matching everything."""
    from services.needs import model

    reg = register([need(p, f"{p}-{c}", category=c) for c in ("advocacy", "carers", "advice") for p in "abc"])
    oid = next(o for o in opportunities(reg, POLICY, SAVINGS) if o.startswith("carers-"))
    matched: list[set[str]] = []
    real = model.match

    def spy(needs: list[Any], policy: NeedsPolicy) -> Any:
        matched.append({n.service_category for n in needs})
        return real(needs, policy)

    monkeypatch.setattr(model, "match", spy)
    joined = PAYLOADS["opportunity.joined"].model_validate({"opportunity_id": oid, "partner_id": "b"})
    assert model.check_request(reg, POLICY, joined) == ()
    stranger = PAYLOADS["opportunity.joined"].model_validate({"opportunity_id": oid, "partner_id": "z"})
    with pytest.raises(Refused) as no:
        model.check_request(reg, POLICY, stranger)
    assert no.value.code == "not_in_opportunity"
    gone = PAYLOADS["opportunity.declined"].model_validate({"opportunity_id": "carers-1999-01", "partner_id": "b"})
    with pytest.raises(Refused) as no:
        model.check_request(reg, POLICY, gone)
    assert no.value.code == "unknown_opportunity"
    assert matched and all(categories <= {"carers"} for categories in matched), matched
