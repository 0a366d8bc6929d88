"""The savings model: the report's check figures to the penny, and each rule of docs/savings.md."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from services.savings.model import Facts, capped_split, evolve, project, split
from shared.dates import add_months
from shared.events import PAYLOADS
from shared.policy import SavingsPolicy
from shared.tscip import reference_payloads

POLICY = SavingsPolicy()


def facts_of(items: list[tuple[str, str, dict[str, Any]]]) -> Facts:
    facts = Facts()
    for n, (pid, etype, data) in enumerate(items):
        evolve(facts, f"/partners/{pid} e-{n}", PAYLOADS[etype].model_validate(data))
    return facts


def figures(items: list[tuple[str, str, dict[str, Any]]], policy: SavingsPolicy = POLICY) -> dict[str, Any]:
    return project(facts_of(items), policy)


def need(pid: str, nid: str, cost: str, budget: str = "100000.00", arrangements: int = 3) -> tuple[str, str, dict[str, Any]]:
    return (pid, "need.identified", {
        "need_id": nid, "partner_id": pid, "service_category": "advocacy", "title": "Advocacy",
        "annual_budget": budget, "current_arrangements": arrangements,
        "current_annual_resource_cost": cost, "current_arrangements_end": "2012-12-31",
        "open_to_sharing": True,
    })


def award(cid: str, shares: list[tuple[str, str] | tuple[str, str, str]], start: str = "2013-01-01",
          end: str = "2015-12-31", cost: str | None = None, value: str = "150000.00") -> tuple[str, str, dict[str, Any]]:
    data: dict[str, Any] = {
        "tender_id": f"t-{cid}", "contract_id": cid, "lead_partner_id": shares[0][0],
        "commissioning_model": "aligned_budgets", "supplier": {"id": "s", "name": "Supplier"},
        "annual_value": value, "contract_start": start, "contract_end": end,
        "partners": [
            {"partner_id": s[0], "need_id": s[1], **({"annual_contribution": s[2]} if len(s) == 3 else {})}
            for s in shares
        ],
    }
    if cost is not None:
        data["annual_management_cost"] = cost
    return (shares[0][0], "tender.awarded", data)


def decommission(cid: str, pid: str, when: str, replacement: str = "separate_arrangements") -> tuple[str, str, dict[str, Any]]:
    return (pid, "contract.decommissioned", {"contract_id": cid, "partner_id": pid, "effective_date": when,
                                             "reason": "financial_constraints", "replacement": replacement})


def monitoring(cid: str, pid: str, start: str, end: str, cost: str | None) -> tuple[str, str, dict[str, Any]]:
    data: dict[str, Any] = {"contract_id": cid, "partner_id": pid, "period_start": start, "period_end": end, "spend": "1000.00"}
    if cost is not None:
        data["management_cost"] = cost
    return (pid, "monitoring.return.submitted", data)


def investment(pid: str, iid: str, when: str, amount: str) -> tuple[str, str, dict[str, Any]]:
    return (pid, "investment.recorded", {"investment_id": iid, "partner_id": pid, "date": when, "amount": amount})


# -- DOMAIN.md's check figures ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "baseline", "costs", "shared", "saving", "roi"),
    [
        ("fifteen", "426937.00", ["27289.00", "41000.00", "41000.00"], "109289.00", "317648.00", "0.58"),
        ("five", "347365.00", ["27289.00", "27289.00", "27289.00"], "81867.00", "265498.00", "0.55"),
    ],
)
def test_reference_check_figures(case: str, baseline: str, costs: list[str], shared: str, saving: str, roi: str) -> None:
    f = figures(reference_payloads(case))
    p = f["portfolio"]
    assert (p["baseline_annual_cost"], p["shared_annual_cost"], p["annual_saving"]) == (baseline, shared, saving)
    assert [c["shared_annual_cost"] for c in f["contracts"]] == costs
    assert all(c["shared_cost_estimated"] for c in f["contracts"])
    assert p["roi"] == roi
    assert p["projected_saving"] == f"{Decimal(saving) * 3:.2f}", "three full contract years each, inside the horizon"
    assert f["horizon"] == {"from": "2010-10-01", "to": "2016-03-31", "months": 66}
    assert sum(Decimal(x["annual_saving"]) for x in f["partners"]) == Decimal(saving)
    assert sum(Decimal(y["saving"]) for y in f["years"]) == Decimal(p["projected_saving"])
    assert f["warnings"] == []


def test_reference_mapping_totals() -> None:
    f = figures(reference_payloads("fifteen"))
    assert sum(n["current_arrangements"] for n in f["needs"]) == 100
    assert all("annual_budget" not in n for n in f["needs"]), "budgets are confidential (docs/authority.md)"
    budgets = sum(Decimal(d["annual_budget"]) for _, t, d in reference_payloads("fifteen") if t == "need.identified")
    assert budgets == Decimal("6000000.00")
    assert sum(c["arrangements_replaced"] for c in f["contracts"]) == 100
    five = figures(reference_payloads("five"))
    assert sum(n["current_arrangements"] for n in five["needs"]) == 74


def test_shared_cost_policy_is_the_line_through_the_reports_two_points() -> None:
    assert POLICY.shared_cost(15) == Decimal("41000.00")
    assert POLICY.shared_cost(5) == Decimal("27289.00")
    assert POLICY.shared_cost(2) == Decimal("23175.70")
    custom = SavingsPolicy(cost_intercept=Decimal("10000"), cost_per_partner=Decimal("1000"))
    f = figures([need("a", "n1", "50000.00"), need("b", "n2", "50000.00"), award("c", [("a", "n1"), ("b", "n2")])], custom)
    assert f["portfolio"]["shared_annual_cost"] == "12000.00"


def test_a_stated_management_cost_replaces_the_estimate() -> None:
    f = figures([need("a", "n1", "30000.00"), need("b", "n2", "20000.00"), award("c", [("a", "n1"), ("b", "n2")], cost="12345.67")])
    c = f["contracts"][0]
    assert (c["shared_annual_cost"], c["shared_cost_estimated"], c["annual_saving"]) == ("12345.67", False, "37654.33")


def test_contract_price_saving_is_budgets_minus_contract_value() -> None:
    f = figures([need("a", "n1", "1.00", budget="100000.00"), need("b", "n2", "1.00", budget="60000.00"),
                 award("c", [("a", "n1"), ("b", "n2")], value="150000.00")])
    assert f["portfolio"]["contract_price_annual_saving"] == "10000.00"


# -- partner shares -------------------------------------------------------------------------


def test_split_gives_every_penny_to_someone() -> None:
    assert split(10000, {"a": Fraction(1), "b": Fraction(1), "c": Fraction(1)}) == {"a": 3334, "b": 3333, "c": 3333}
    assert split(-10000, {"a": Fraction(1), "b": Fraction(1), "c": Fraction(1)}) == {"a": -3334, "b": -3333, "c": -3333}
    assert split(7, {"a": Fraction(0), "b": Fraction(0)}) == {"a": 4, "b": 3}


def test_shares_follow_contributions_else_baselines() -> None:
    by_contribution = figures([need("a", "n1", "30000.00"), need("b", "n2", "30000.00"),
                               award("c", [("a", "n1", "100.00"), ("b", "n2", "300.00")], cost="20000.00")])
    assert {p["partner_id"]: p["annual_saving"] for p in by_contribution["partners"]} == {"a": "10000.00", "b": "30000.00"}
    by_baseline = figures([need("a", "n1", "30000.00"), need("b", "n2", "10000.00"),
                           award("c", [("a", "n1"), ("b", "n2")], cost="0.00")])
    assert {p["partner_id"]: p["annual_saving"] for p in by_baseline["partners"]} == {"a": "30000.00", "b": "10000.00"}


def test_no_partner_is_credited_more_than_its_own_baseline() -> None:
    # by contributions b would get 30,000 a year against the 10,000 it no longer spends: it is
    # credited its baseline and a the rest (issue 14: north-staffs-pct's £7,211 on £5,000)
    f = figures([need("a", "n1", "30000.00"), need("b", "n2", "10000.00"),
                 award("c", [("a", "n1", "100.00"), ("b", "n2", "300.00")], cost="0.00")])
    shares = {p["partner_id"]: p for p in f["partners"]}
    assert {k: v["annual_saving"] for k, v in shares.items()} == {"a": "30000.00", "b": "10000.00"}
    assert all(Decimal(v["annual_saving"]) <= Decimal(v["baseline_annual_cost"]) for v in shares.values())
    assert sum(Decimal(v["projected_saving"]) for v in shares.values()) == Decimal(f["portfolio"]["projected_saving"])


def test_capped_split_moves_the_excess_to_the_others_by_weight() -> None:
    assert capped_split(40000, {"a": 100, "b": 300}, {"a": 30000, "b": 10000}) == {"a": 30000, "b": 10000}
    assert capped_split(30000, {"a": 1, "b": 1, "c": 2}, {"a": 20000, "b": 20000, "c": 5000}) == \
        {"a": 12500, "b": 12500, "c": 5000}
    assert capped_split(-900, {"a": 1, "b": 2}, {"a": 0, "b": 0}) == {"a": -300, "b": -600}


# -- time ----------------------------------------------------------------------------------


def test_as_of_is_the_latest_business_date_and_time_never_moves_figures() -> None:
    items = [need("a", "n1", "36500.00"), need("b", "n2", "36500.00"), award("c", [("a", "n1"), ("b", "n2")], cost="0.00")]
    f = figures(items)
    assert f["as_of"] == "2013-01-01"
    assert f["contracts"][0]["realised_saving"] == "200.00", "saving to the end of as_of: one day of £73,000 a year"
    f = figures([*items, monitoring("c", "a", "2013-01-01", "2013-03-31", None)])
    assert f["as_of"] == "2013-03-31"
    assert f["contracts"][0]["realised_saving"] == "18000.00"  # 90 days at £200


def test_actual_management_cost_replaces_the_estimate_for_its_period() -> None:
    items = [need("a", "n1", "36500.00"), need("b", "n2", "36500.00"),
             award("c", [("a", "n1"), ("b", "n2")], cost="36500.00")]  # £100 a day saved, estimate
    f = figures([*items, monitoring("c", "a", "2013-01-01", "2013-03-31", "4500.00")])
    # 90 days: baseline £200 a day = £18,000, actual cost £4,500 for the quarter
    assert f["contracts"][0]["realised_saving"] == "13500.00"
    assert f["contracts"][0]["annual_saving"] == "36500.00", "the run-rate stays the contract's"
    without = figures([*items, monitoring("c", "a", "2013-01-01", "2013-03-31", None)])
    assert without["contracts"][0]["realised_saving"] == "9000.00"


def test_decommissioning_stops_the_saving_and_brings_back_the_baselines() -> None:
    items = [need("a", "n1", "36500.00"), need("b", "n2", "36500.00"), need("a", "n3", "20000.00"), need("b", "n4", "20000.00"),
             award("c1", [("a", "n1"), ("b", "n2")], cost="36500.00"), award("c2", [("a", "n3"), ("b", "n4")], cost="10000.00"),
             investment("a", "i", "2012-01-01", "10000.00")]
    before = figures(items)
    assert before["portfolio"]["annual_saving"] == "66500.00"
    after = figures([*items, decommission("c1", "a", "2014-01-01")])
    c1 = next(c for c in after["contracts"] if c["contract_id"] == "c1")
    assert (after["as_of"], c1["status"], c1["saving_until"]) == ("2014-01-01", "decommissioned", "2013-12-31")
    assert after["portfolio"]["annual_saving"] == "30000.00"
    assert after["portfolio"]["baseline_annual_cost"] == "40000.00"
    assert c1["projected_saving"] == "36500.00", "one year saved, then nothing"
    assert {n["need_id"]: n["status"] for n in after["needs"]} == {
        "n1": "separate_arrangements", "n2": "separate_arrangements", "n3": "shared_contract", "n4": "shared_contract"}
    none = figures([*items, decommission("c1", "a", "2014-01-01", replacement="none")])
    assert {n["need_id"]: n["status"] for n in none["needs"]}["n1"] == "no_arrangements"


def test_a_contract_stops_counting_when_as_of_reaches_its_end() -> None:
    items = [need("a", "n1", "36500.00"), need("b", "n2", "36500.00"),
             award("c", [("a", "n1"), ("b", "n2")], start="2013-01-01", end="2013-12-31", cost="0.00")]
    assert figures([*items, monitoring("c", "a", "2013-10-01", "2013-12-30", None)])["portfolio"]["annual_saving"] == "73000.00"
    ended = figures([*items, monitoring("c", "a", "2013-10-01", "2013-12-31", None)])
    assert ended["portfolio"]["annual_saving"] == "0.00"
    assert ended["contracts"][0]["status"] == "ended"
    assert ended["contracts"][0]["realised_saving"] == "73000.00"


def test_roi_npv_and_payback() -> None:
    items = [need("a", "n1", "36500.00"), need("b", "n2", "36500.00"),
             award("c", [("a", "n1"), ("b", "n2")], start="2013-01-01", end="2015-12-31", cost="0.00")]
    assert figures(items)["portfolio"]["roi"] is None
    assert figures(items)["discounted"]["roi"] is None
    f = figures([*items, investment("a", "i", "2013-01-01", "73000.00")])
    p, d = f["portfolio"], f["discounted"]
    assert p["projected_saving"] == "219000.00"
    assert p["roi"] == "2.00"
    assert p["payback_date"] == "2013-12-31", "£200 a day pays back £73,000 on day 365"
    # discounted: year 1 undiscounted, year 2 at 1/1.035, year 3 at 1/1.035^2
    pv = Decimal(73000) + Decimal(73000) / Decimal("1.035") + Decimal(73000) / Decimal("1.035") ** 2
    assert d["present_value_saving"] == f"{pv.quantize(Decimal('0.01')):.2f}"
    assert d["npv"] == f"{(pv - 73000).quantize(Decimal('0.01')):.2f}"
    assert d["payback_date"] == "2013-12-31"


def test_order_of_arrival_does_not_matter_for_an_award_before_its_needs() -> None:
    items = [need("a", "n1", "30000.00"), need("b", "n2", "10000.00"), award("c", [("a", "n1"), ("b", "n2")])]
    early = figures([items[2]])
    assert early["contracts"][0]["needs_missing"] == ["a/n1", "b/n2"]
    assert early["warnings"]
    assert figures(items[::-1]) == figures(items)


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(date(2012, 2, 29), 12) == date(2013, 2, 28)
    assert add_months(date(2010, 10, 1), 66) == date(2016, 4, 1)
