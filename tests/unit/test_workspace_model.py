"""The workspace read model: a pure fold of accepted and refused entries into typed views."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from typing import Any

from services.savings.model import project
from services.savings.workspace.appraisal import AppraisalPolicy
from services.savings.workspace.model import (Entry, Workspace, contracts, evolve, next_review, overview, pipeline, providers,
                                      subject_of, today_of, trail)
from shared.events import PAYLOADS
from shared.policy import SavingsPolicy
from shared.tscip import reference_payloads

DEBT = "tscip-debt-advice-2013"


def entry(n: int, etype: str, data: dict[str, Any], actor: str = "staffordshire-cc") -> Entry:
    return Entry(f"{1000 + n}-0", f"/partners/{actor} e{n}", etype, actor, "", PAYLOADS[etype].model_validate(data),
                 subject_of(data))


def reference() -> tuple[Workspace, int]:
    ws = Workspace()
    n = 0
    for n, (pid, etype, data) in enumerate(reference_payloads("fifteen")):
        evolve(ws, entry(n, etype, data, pid))
    return ws, n + 1


def judged(n: int, period_end: str, actual: str, rating: str, revision: int = 0) -> Entry:
    return entry(n, "monitoring.return.accepted", {
        "return_key": f"r{n}", "contract_id": DEBT, "partner_id": "staffordshire-cc", "period_start": "2013-01-01",
        "period_end": period_end, "status": "accepted", "code": None, "message": None, "spend": "1.00",
        "management_cost": None, "revision": revision,
        "ratings": [{"kpi_id": "clients-advised", "target": "1200", "actual": actual, "achievement": str(D(actual) / 1200),
                     "rating": rating}]}, "contracts")


NAMES = {"staffordshire-cc": "Staffordshire County Council"}


def test_the_overview_is_the_savings_model_with_partners_named_and_their_share_of_shared_costs() -> None:
    ws, _ = reference()
    o = overview(ws, NAMES, SavingsPolicy())
    fig = project(ws.facts, SavingsPolicy())
    assert o.annual_saving == D("317648.00") == D(fig["portfolio"]["annual_saving"])
    assert o.roi == D("0.58") and o.as_of == date(2013, 4, 1) and len(o.years) == 6
    county = next(p for p in o.partners if p.partner_id == "staffordshire-cc")
    assert county.name == "Staffordshire County Council" and o.partners[0] is county  # the largest saving first
    # 132,515 baseline - 98,584.08 saved = its share of the management cost of the shared contracts
    assert county.shared_cost_share == D("33930.92")
    assert sum(p.shared_cost_share for p in o.partners) == o.shared_annual_cost == D("109289.00")
    assert county.roi == D("-0.51")  # (295,752.24 - 603,000) / 603,000
    assert all(p.roi is None for p in o.partners if p.investment == 0)


def test_the_register_rates_each_kpi_with_trend_concerns_overdue_and_review_dates() -> None:
    ws, n = reference()
    evolve(ws, judged(n, "2013-03-31", "1315", "on_target"))
    evolve(ws, judged(n + 1, "2013-06-30", "700", "inadequate"))
    evolve(ws, entry(n + 2, "performance.concern.raised", {
        "concern_id": "c1", "contract_id": DEBT, "kpi_id": "clients-advised", "raised_for": "2013-06-30",
        "status": "raised", "period_end": "2013-06-30", "rating": "inadequate", "improvement_plan_due": "2013-09-28",
        "revision": 0}, "contracts"))
    evolve(ws, entry(n + 3, "monitoring.return.overdue", {
        "contract_id": "tscip-advocacy-2012", "period_start": "2012-10-01", "period_end": "2012-12-31", "due": "2013-01-30",
        "status": "overdue", "revision": 0}, "contracts"))
    rows = {r.contract_id: r for r in contracts(ws, NAMES, today_of(ws))}
    debt = rows[DEBT]
    assert debt.lead == "Staffordshire County Council" and debt.status == "active"
    assert [(k.kpi_id, k.actual, k.rag, k.trend) for k in debt.kpis] == [("clients-advised", "700", "red", "worsening")]
    assert debt.returns_received == 2 and [c.status for c in debt.concerns] == ["raised"]
    assert debt.rag == "red" and debt.underperforming
    # annual review on the anniversary of the start (1 Jan 2013), notice three months before it
    assert debt.next_review == date(2014, 1, 1) and debt.review_notice == date(2013, 10, 1)
    assert rows["tscip-advocacy-2012"].overdue == (date(2012, 12, 31),) and rows["tscip-advocacy-2012"].rag == "red"
    assert rows["tscip-infrastructure-2013"].rag == "grey" and not rows["tscip-infrastructure-2013"].underperforming
    # the concern resolved: no longer open
    evolve(ws, entry(n + 4, "performance.concern.resolved", {
        "concern_id": "c1", "contract_id": DEBT, "kpi_id": "clients-advised", "raised_for": "2013-06-30",
        "status": "resolved", "period_end": "2013-09-30", "rating": "on_target", "improvement_plan_due": "2013-09-28",
        "revision": 1}, "contracts"))
    assert {r.contract_id: r for r in contracts(ws, NAMES, today_of(ws))}[DEBT].concerns == ()
    provs = {p.supplier_id: p for p in providers(tuple(rows.values()))}
    assert provs["staffs-cab-consortium"].rag == "red" and provs["staffs-cab-consortium"].open_concerns == 1


def test_reviews_fall_on_anniversaries_inside_the_term() -> None:
    assert next_review(date(2013, 1, 1), date(2015, 12, 31), date(2013, 1, 1)) == date(2014, 1, 1)
    assert next_review(date(2013, 1, 1), date(2015, 12, 31), date(2015, 6, 1)) is None  # the term ends first
    assert next_review(date(2013, 1, 1), date(2015, 12, 31), None) is None


def test_the_pipeline_shows_end_dates_to_recommission_and_appraises_each_opportunity() -> None:
    ws, n = reference()
    rows = contracts(ws, NAMES, date(2015, 1, 1))
    p = pipeline(ws, NAMES, rows, date(2015, 1, 1), AppraisalPolicy())
    soon = [e.subject for e in p.ends if e.within_planning]
    # advocacy ends 31 Mar 2015 and debt advice 31 Dec 2015; infrastructure (31 Mar 2016) is beyond the year
    assert sorted(soon) == ["tscip-advocacy-2012", "tscip-debt-advice-2013"]
    assert all(0 <= e.position <= 100 for e in p.ends)
    assert not any(r.staff_cost is None for r in p.needs) and not hasattr(p.needs[0], "annual_budget")
    evolve(ws, entry(n, "opportunity.identified", {
        "opportunity_id": "opp-1", "service_category": "advocacy", "revision": 0, "status": "proposed",
        "needs": [{"partner_id": "staffordshire-cc", "need_id": "staffordshire-cc-advocacy", "decision": "joined"},
                  {"partner_id": "stoke-on-trent-cc", "need_id": "stoke-on-trent-cc-advocacy", "decision": "joined"}],
        "window_start": "2015-06-01", "window_end": "2016-01-01", "lead_partner_id": "staffordshire-cc",
        "options": [{"option": "aligned_budgets", "annual_cost": "23175.70", "annual_saving": "0.00", "summary": "x"},
                    {"option": "stand_alone_partnership", "annual_cost": "43609.20", "annual_saving": "0.00", "summary": "y"},
                    {"option": "do_nothing", "annual_cost": "0.00", "annual_saving": "0.00", "summary": "z"}],
        "recommendation": "aligned_budgets", "reasons": []}, "needs"))
    opp = pipeline(ws, NAMES, rows, date(2015, 1, 1), AppraisalPolicy()).opportunities[0]
    assert opp.joined == ("Staffordshire County Council", "stoke-on-trent-cc") and opp.lead == "Staffordshire County Council"
    baseline = sum(ws.needs[(x, f"{x}-advocacy")].current_annual_resource_cost for x in ("staffordshire-cc", "stoke-on-trent-cc"))
    assert opp.appraisal.baseline == baseline
    assert opp.appraisal.options[0].annual_saving == baseline - D("23175.70")


def test_the_trail_holds_accepted_and_refused_acts_searchable_and_counts_each_once() -> None:
    ws, n = reference()
    refusal = Entry("9999-0", "/partners/stoke-pct x1", "contract.decommissioned", "stoke-pct", "", None, DEBT,
                    "not_the_lead", "only staffordshire-cc may end it")
    evolve(ws, refusal)
    evolve(ws, refusal)
    found = trail(ws, DEBT)
    assert [e.refused for e in found] == ["not_the_lead", None]  # newest first: the refusal, then the award
    assert trail(ws, "NOT_THE_LEAD")[0].actor == "stoke-pct"
    assert len(trail(ws)) == n + 1
    evolve(ws, entry(0, *reference_payloads("fifteen")[0][1:]))  # the same event again counts once
    assert len(trail(ws)) == n + 1


def test_the_views_do_not_depend_on_the_order_events_came_in() -> None:
    """Two SLAs of the same revision: the larger source id stands, whichever came first;
    a later revision replaces both."""
    def sla(n: int, target: str, revision: int = 0) -> Entry:
        return entry(n, "contract.sla.agreed", {"contract_id": DEBT, "partner_id": "staffordshire-cc",
                                                 "kpis": [{"kpi_id": "clients-advised", "target": target}],
                                                 "revision": revision})

    targets = []
    for order in ((sla(900, "1200"), sla(901, "1300")), (sla(901, "1300"), sla(900, "1200"))):
        ws, _ = reference()
        for e in order:
            evolve(ws, e)
        targets.append(ws.slas[DEBT].kpis[0].target)
    assert targets == [D("1300"), D("1300")]  # "e901" > "e900"
    evolve(ws, sla(5, "1100", revision=1))
    assert ws.slas[DEBT].kpis[0].target == D("1100")


def test_the_register_shows_the_last_review_the_reviews_not_recorded_and_a_planned_decommissioning() -> None:
    ws, n = reference()
    today = date(2015, 3, 31)  # two anniversaries of the start have passed
    review = {"contract_id": DEBT, "partner_id": "staffordshire-cc", "review_for": "2014-01-01",
              "held_on": "2013-12-10", "rag": "amber", "user_feedback": "waiting times too long",
              "decision": "improvement_plan"}
    evolve(ws, entry(n + 1, "contract.review.recorded", review))
    evolve(ws, entry(n + 2, "contract.review.recorded", {**review, "revision": 1, "rag": "green", "decision": "continue"}))
    debt = {r.contract_id: r for r in contracts(ws, NAMES, today)}[DEBT]
    assert debt.last_review is not None and (debt.last_review.rag, debt.last_review.decision) == ("green", "continue")
    assert debt.reviews_missing == (date(2015, 1, 1),), "2014's is recorded; 2015's is not"
    assert debt.proposal is None
    evolve(ws, entry(n + 3, "contract.decommissioning.proposed", {
        "contract_id": DEBT, "partner_id": "staffordshire-cc", "proposed_on": "2015-03-01", "effective_date": "2015-09-30",
        "reason": "financial_constraints", "replacement": "separate_arrangements",
        "consultation": {"started": "2015-03-01", "ended": "2015-05-31", "consulted": ["users' forum"], "summary": "s"},
        "impact": {"service_users_affected": 900, "on_service_users": "u", "on_employees": "e", "mitigation": "m"}}))
    debt = {r.contract_id: r for r in contracts(ws, NAMES, today)}[DEBT]
    assert debt.proposal is not None and debt.proposal.impact.service_users_affected == 900
