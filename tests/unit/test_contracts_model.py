"""The contract register: returns judged, KPIs rated, concerns, payment by results, schedule."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.contracts.model import ContractsPolicy, Register, RegisterView, check_request, evolve, register
from services.contracts.state import OWNED, derive
from shared.authority import Refused, Wait
from shared.events import PAYLOADS

POLICY = ContractsPolicy()
C = "debt-2013"


def award(value: str = "400000.00", start: str = "2013-01-01", end: str = "2015-12-31") -> tuple[str, dict[str, Any]]:
    return ("tender.awarded", {
        "tender_id": "t", "contract_id": C, "lead_partner_id": "a", "commissioning_model": "aligned_budgets",
        "supplier": {"id": "cab", "name": "CAB"}, "annual_value": value, "contract_start": start, "contract_end": end,
        "partners": [{"partner_id": "a", "need_id": "na"}, {"partner_id": "b", "need_id": "nb"}]})


def sla(**over: Any) -> tuple[str, dict[str, Any]]:
    data = {"contract_id": C, "partner_id": "a", "kpis": [
        {"kpi_id": "clients-advised", "target": "1200"},
        {"kpi_id": "waiting-days", "target": "10", "higher_is_better": False}],
        "schedules": [{"partner_id": "b", "kpis": [{"kpi_id": "b-local-clients", "target": "100"}]}],
        "payment_by_results": {"share": "0.10"}}
    return ("contract.sla.agreed", {**data, **over})


def ret(start: str, end: str, clients: str, waiting: str = "8", partner: str = "a", **extra: Any) -> tuple[str, dict[str, Any]]:
    return ("monitoring.return.submitted", {
        "contract_id": C, "partner_id": partner, "period_start": start, "period_end": end, "spend": "98000.00",
        "kpis": [{"kpi_id": "clients-advised", "target": "1200", "actual": clients},
                 {"kpi_id": "waiting-days", "target": "10", "actual": waiting}], **extra})


QUARTERS = [("2013-01-01", "2013-03-31", "1315"), ("2013-04-01", "2013-06-30", "1000"),
            ("2013-07-01", "2013-09-30", "1250"), ("2013-10-01", "2013-12-31", "1210")]


def decided(items: list[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], list[str]]:
    """The register after the owner decided each act in turn, as the service does; and the
    refusal code of each refused act (`wait:<code>` for one still waiting for its contract)."""
    reg, refused = owned(items)
    return register(reg, POLICY), refused


def derived(items: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Everything the service would publish for the register after `items`."""
    entries = RegisterView(POLICY)
    entries.refresh(owned(items)[0])
    return {e: d for entry in entries.entries.values() for e, d in derive(entry).items()}


def owned(items: list[tuple[str, dict[str, Any]]]) -> tuple[Register, list[str]]:
    reg, refused = Register(), []
    for n, (t, d) in enumerate(items):
        payload = PAYLOADS[t].model_validate(d)
        if t in OWNED:
            try:
                verdict = check_request(reg, POLICY, payload)
            except Refused as no:
                refused.append(no.code)
                continue
            if isinstance(verdict, Wait):
                refused.append(f"wait:{verdict.code}")
                continue
        evolve(reg, f"/partners/{d.get('partner_id') or d.get('lead_partner_id')} e{n:03d}", payload)
    return reg, refused


def view(items: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return decided(items)[0]


def test_four_quarterly_returns_rated_a_miss_raises_a_concern_that_resolves() -> None:
    v = view([award(), sla(), *[ret(a, b, c) for a, b, c in QUARTERS]])
    c = v["contracts"][C]
    assert c["monitoring_months"] == 3 and c["status"] == "active"
    assert [r["status"] for r in c["returns"]] == ["accepted"] * 4
    ratings = [{x["kpi_id"]: x["rating"] for x in r["ratings"]} for r in c["returns"]]
    assert [r["clients-advised"] for r in ratings] == ["on_target", "requires_improvement", "on_target", "on_target"]
    assert ratings[0]["waiting-days"] == "on_target", "lower is better: 8 days against 10"
    [concern] = c["concerns"]
    assert (concern["kpi_id"], concern["raised_for"], concern["status"]) == ("clients-advised", "2013-06-30", "resolved")
    assert concern["improvement_plan_due"] == "2013-09-28"


def test_a_concern_escalates_then_termination_is_considered_as_the_last_resort() -> None:
    misses = [("2013-01-01", "2013-03-31", "800"), ("2013-04-01", "2013-06-30", "800"),
              ("2013-07-01", "2013-09-30", "800"), ("2013-10-01", "2013-12-31", "800")]
    [concern] = view([award(), sla(), *[ret(a, b, c) for a, b, c in misses]])["contracts"][C]["concerns"]
    assert [h["rating"] for h in concern["history"]] == ["inadequate"] * 4
    assert concern["status"] == "termination_considered"
    two = view([award(), sla(), *[ret(a, b, c) for a, b, c in misses[:2]]])["contracts"][C]["concerns"][0]
    assert two["status"] == "escalated"


def test_payment_by_results() -> None:
    v = view([award(), sla(), *[ret(a, b, c) for a, b, c in QUARTERS]])
    q1, q2 = v["contracts"][C]["payments"][:2]
    value = Decimal(400000) * 90 / 365
    at_risk = (value * Decimal("0.1")).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert q1["results_payment"] == q1["results_at_risk"] == f"{at_risk}"
    assert q1["fixed_payment"] == f"{value.quantize(Decimal('0.01'), ROUND_HALF_UP) - at_risk}"
    assert q1["total"] == "98630.14"
    value2 = Decimal(400000) * 91 / 365
    achievement = (Decimal(1000) / Decimal(1200) + 1) / 2
    assert q2["results_payment"] == f"{(value2 * Decimal('0.1') * achievement).quantize(Decimal('0.01'), ROUND_HALF_UP)}"
    assert Decimal(q2["total"]) == Decimal(q2["fixed_payment"]) + Decimal(q2["results_payment"])
    floored = view([award(), sla(payment_by_results={"share": "0.10", "floor": "0.95"}), ret("2013-04-01", "2013-06-30", "1000")])
    assert floored["contracts"][C]["payments"][0]["results_payment"] == "0.00"


def test_returns_are_judged_against_the_contract() -> None:
    items = [award(), sla(), ret("2013-01-01", "2013-03-31", "1300"),
             ret("2013-01-01", "2013-03-31", "9999"),                       # the same period again
             ret("2012-10-01", "2012-12-31", "1300"),                       # before the term
             ret("2013-04-01", "2013-06-30", "1300", partner="z"),          # not a partner
             ("monitoring.return.submitted", {**ret("2013-04-01", "2013-06-30", "1")[1],
                                              "kpis": [{"kpi_id": "made-up", "target": "1", "actual": "1"}]}),
             ("monitoring.return.submitted", {**ret("2013-04-01", "2013-06-30", "1")[1], "contract_id": "nope"}),
             ("contract.decommissioned", {"contract_id": C, "partner_id": "a", "effective_date": "2014-01-01",
                                          "reason": "provider_unable", "replacement": "separate_arrangements"}),
             ret("2014-01-01", "2014-03-31", "1300")]
    v, refused = decided(items)
    assert refused == ["duplicate_period", "outside_term", "not_a_partner", "unknown_kpi", "wait:unknown_contract",
                       "contract_decommissioned"]
    [kept] = v["contracts"][C]["returns"]
    assert (kept["period_start"], kept["ratings"][0]["actual"]) == ("2013-01-01", "1300"), "the first return stands"
    assert v["contracts"][C]["status"] == "decommissioned"
    assert v["as_of"] == "2014-01-01", "refused returns move no date"


def test_the_lead_decides_the_contract_and_a_member_only_its_own_part() -> None:
    end = {"contract_id": C, "effective_date": "2014-01-01", "reason": "provider_unable", "replacement": "none"}
    exit_ = {"contract_id": C, "partner_id": "b", "notice_date": "2013-06-01", "effective_date": "2013-09-01",
             "reason": "financial_constraints"}
    _, refused = decided([award(), sla(), ("contract.decommissioned", {**end, "partner_id": "b"}),
                          ("contract.decommissioned", {**end, "partner_id": "z"}),
                          ("contract.decommissioned", {**end, "partner_id": "a", "effective_date": "2030-01-01"}),
                          ("contract.member.exited", {**exit_, "partner_id": "a"}),
                          ("contract.member.exited", {**exit_, "effective_date": "2013-08-31"}),
                          ("contract.sla.agreed", {**sla()[1], "partner_id": "b"})])
    assert refused == ["not_the_lead", "not_a_partner", "outside_term", "lead_cannot_exit", "short_notice",
                       "not_the_lead"]
    v, refused = decided([award(), sla(), ("contract.member.exited", exit_), ("contract.member.exited", exit_),
                          ("contract.decommissioned", {**end, "partner_id": "a"}),
                          ("contract.decommissioned", {**end, "partner_id": "a", "effective_date": "2013-12-01"})])
    assert refused == ["already_exited", "already_decommissioned"]
    c = v["contracts"][C]
    assert [x["partner_id"] for x in c["exits"]] == ["b"] and c["status"] == "decommissioned"
    assert c["member_schedules"]["b"][-1]["period_end"] == "2013-09-30", "b's schedule stops at its exit"
    _, refused = decided([award(), sla(exit_notice_months=6), ("contract.member.exited", exit_)])
    assert refused == ["short_notice"], "the SLA sets the notice"


def test_partner_schedules_add_requirements() -> None:
    mine = ("monitoring.return.submitted", {**ret("2013-01-01", "2013-03-31", "1300", partner="b")[1],
                                             "kpis": [{"kpi_id": "b-local-clients", "target": "100", "actual": "120"}]})
    lead = ret("2013-01-01", "2013-03-31", "1300")
    v, refused = decided([award(), sla(), lead, mine])
    assert refused == [] and [r["partner_id"] for r in v["contracts"][C]["returns"]] == ["a", "b"], \
        "a member's return on its own schedule stands beside the lead's for the same quarter"
    theirs = ("monitoring.return.submitted", {**mine[1], "partner_id": "a"})
    assert decided([award(), sla(), theirs])[1] == ["unknown_kpi"]
    assert decided([award(), sla(schedules=[]), mine])[1] == ["no_schedule"]
    costed = ("monitoring.return.submitted", {**mine[1], "management_cost": "900000.00"})
    assert decided([award(), sla(), costed])[1] == ["not_the_lead"], "the cost of managing it is the lead's to report"


def test_only_the_lead_partner_sets_the_sla() -> None:
    v, refused = decided([award(), sla(partner_id="b"), ret("2013-01-01", "2013-03-31", "1300")])
    assert refused == ["not_the_lead"]
    assert v["contracts"][C]["sla"] is None and v["contracts"][C]["payments"] == []


def test_monitoring_is_proportionate_and_overdue_periods_are_flagged() -> None:
    assert view([award(value="20000.00")])["contracts"][C]["monitoring_months"] == 12
    assert view([award(value="60000.00")])["contracts"][C]["monitoring_months"] == 6
    items = [award(), sla(), ret("2013-01-01", "2013-03-31", "1300"), ret("2013-07-01", "2013-09-30", "1300")]
    v = view(items)
    assert [p["status"] for p in v["contracts"][C]["schedule"][:3]] == ["received", "overdue", "received"]
    assert derived(items)["overdue:debt-2013:2013-04-01"].payload["status"] == "overdue"


def test_a_contract_past_its_end_without_renewal_ends_as_contract_end() -> None:
    last_day = view([award(end="2013-12-31"), ret("2013-10-01", "2013-12-31", "1300")])
    assert not last_day["contracts"][C]["ends_without_renewal"], "as_of on the last day: not past it"
    other = ("tender.awarded", {**award()[1], "contract_id": "other", "contract_start": "2014-02-01", "contract_end": "2016-01-31"})
    later = view([award(end="2013-12-31"), other])
    c = later["contracts"][C]
    assert c["ends_without_renewal"] and c["status"] == "ended"
    end = derived([award(end="2013-12-31"), other])[f"{C}-contract-end"]
    assert end.payload == {"contract_id": C, "partner_id": "a", "effective_date": "2014-01-01",
                           "reason": "contract_end", "replacement": "separate_arrangements"}
    assert not end.revisioned
    # its own contract_end event, read back, changes nothing (effective after the end)
    echoed = view([award(end="2013-12-31"), other, ("contract.decommissioned", {**end.payload})])["contracts"][C]
    assert echoed["ends_without_renewal"] and echoed["decommissioning"] is None and echoed["status"] == "ended"
    early = ("contract.decommissioned", {**end.payload, "effective_date": "2013-12-01", "reason": "provider_unable"})
    c = view([award(end="2013-12-31"), other, early])["contracts"][C]
    assert not c["ends_without_renewal"] and c["status"] == "decommissioned"


@settings(max_examples=40, deadline=None)
@given(order=st.randoms(use_true_random=False))
def test_the_register_does_not_depend_on_arrival_order(order: random.Random) -> None:
    # the owner's decisions depend on the order requests came in; the register of what it
    # accepted does not
    items = [award(), sla(), *[ret(a, b, c) for a, b, c in QUARTERS],
             ("contract.decommissioned", {"contract_id": C, "partner_id": "a", "effective_date": "2013-10-01",
                                          "reason": "financial_constraints", "replacement": "none"})]
    keyed = [(f"/partners/a e{n:03d}", PAYLOADS[t].model_validate(d)) for n, (t, d) in enumerate(items)]

    def fold(events: list[tuple[str, Any]]) -> dict[str, Any]:
        reg = Register()
        for k, p in events:
            evolve(reg, k, p)
        v = register(reg, POLICY)
        return {k: v[k] for k in ("as_of", "contracts", "concerns", "payments")}

    expected = fold(keyed)
    shuffled = list(keyed) + keyed[:3]
    order.shuffle(shuffled)
    assert fold(shuffled) == expected


@settings(max_examples=40, deadline=None)
@given(order=st.randoms(use_true_random=False), steps=st.lists(st.integers(1, 4), min_size=1, max_size=12))
def test_the_view_kept_up_to_date_a_few_events_at_a_time_equals_the_whole_register(
        order: random.Random, steps: list[int]) -> None:
    # the service refreshes its view after each batch, building again only the contracts a
    # batch touched (all of them when "today" moves): it must end where building it whole ends
    other = {**award()[1], "contract_id": "other", "contract_start": "2014-02-01", "contract_end": "2016-01-31"}
    # "third" runs on with no return: its periods fall overdue as other contracts move "today"
    third = {**award()[1], "contract_id": "third", "contract_start": "2014-01-01", "contract_end": "2016-12-31"}
    items = [award(end="2013-12-31"), sla(), *[ret(a, b, c) for a, b, c in QUARTERS], ("tender.awarded", other),
             ("tender.awarded", third),
             ("monitoring.return.submitted", {**ret("2014-02-01", "2014-04-30", "900")[1], "contract_id": "other"}),
             ("contract.decommissioned", {"contract_id": "other", "partner_id": "a", "effective_date": "2015-01-01",
                                          "reason": "financial_constraints", "replacement": "none"})]
    keyed = [(f"/partners/a e{n:03d}", PAYLOADS[t].model_validate(d)) for n, (t, d) in enumerate(items)]
    order.shuffle(keyed)
    reg, kept = Register(), RegisterView(POLICY)
    published: dict[str, Any] = {}
    while keyed:
        batch, keyed = keyed[:steps[0]], keyed[steps[0]:]
        steps = steps[1:] or [1]
        for k, p in batch:
            evolve(reg, k, p)
        rebuilt = kept.refresh(reg)
        for cid in set(kept.entries) if rebuilt is None else rebuilt:
            published.update(derive(kept.entries[cid]))
    whole = RegisterView(POLICY)
    whole.refresh(reg)
    assert kept.view == whole.view
    everything = {e: d for entry in whole.entries.values() for e, d in derive(entry).items()}
    assert {e: published[e] for e in everything} == everything


def test_the_services_own_contract_end_gives_way_to_the_leads_decommissioning() -> None:
    """Whether the service published a contract's `contract_end` before the lead's own
    decommissioning arrived depends on timing alone: the lead's is accepted either way, and
    the register reads the same."""
    other = ("tender.awarded", {**award()[1], "contract_id": "other", "contract_start": "2014-02-01",
                                "contract_end": "2016-01-31"})
    items = [award(end="2013-12-31"), sla(), other]
    lead = {"contract_id": C, "partner_id": "a", "effective_date": "2013-12-01", "reason": "provider_unable",
            "replacement": "none"}
    last_day = {**lead, "effective_date": "2014-01-01"}  # the latest it may be: the same day as contract_end
    for mine in (lead, last_day):
        reg, refused = owned(items)
        assert refused == []
        end = derived(items)[f"{C}-contract-end"]
        evolve(reg, f"/services/contracts {C}-contract-end", PAYLOADS["contract.decommissioned"].model_validate(
            end.payload))
        request = PAYLOADS["contract.decommissioned"].model_validate(mine)
        assert check_request(reg, POLICY, request) == (f"decommission:{C}",), "the contract_end does not block it"
        evolve(reg, "/partners/a e100", request)
        first, _ = owned([*items, ("contract.decommissioned", mine)])
        assert register(reg, POLICY)["contracts"][C] == register(first, POLICY)["contracts"][C]
        assert reg.decommissions[C][1].reason == "provider_unable", "the lead's stands, even on the same day"
        with_it = register(reg, POLICY)["contracts"][C]
        assert with_it["ends_without_renewal"] is (mine is last_day)
        again = PAYLOADS["contract.decommissioned"].model_validate({**lead, "effective_date": "2013-11-01"})
        try:
            check_request(reg, POLICY, again)
        except Refused as no:
            assert no.code == "already_decommissioned", "the lead's own decision is final"
        else:
            raise AssertionError("a second decommissioning by the lead was accepted")


def review(**over: Any) -> tuple[str, dict[str, Any]]:
    return ("contract.review.recorded", {
        "contract_id": C, "partner_id": "a", "review_for": "2014-01-01", "held_on": "2013-12-10", "rag": "amber",
        "user_feedback": "clients value the outreach sessions; waiting times too long", "decision": "improvement_plan",
        **over})


def proposal(**over: Any) -> tuple[str, dict[str, Any]]:
    return ("contract.decommissioning.proposed", {
        "contract_id": C, "partner_id": "a", "proposed_on": "2014-03-01", "effective_date": "2014-09-30",
        "reason": "financial_constraints", "replacement": "separate_arrangements",
        "consultation": {"started": "2014-03-01", "ended": "2014-05-31",
                         "consulted": ["service users' forum", "CAB (the provider)", "b"],
                         "summary": "users asked for a local drop-in to continue"},
        "impact": {"service_users_affected": 1200, "on_service_users": "drop-in moves to the library",
                   "on_employees": "two advisers redeployed by the provider", "mitigation": "signposting for a year"},
        **over})


def test_the_lead_records_each_annual_review_once_for_an_anniversary_inside_the_term() -> None:
    v, refused = decided([award(), review(), review(partner_id="b"), review(review_for="2014-02-01"),
                          review(held_on="2013-09-30"), review(review_for="2016-01-01", held_on="2015-12-01"),
                          review(revision=1, rag="red", decision="recommission"), review(rag="green")])
    assert refused == ["not_the_lead", "not_an_anniversary", "outside_review_window", "not_an_anniversary",
                       "already_recorded"]
    [kept] = v["contracts"][C]["reviews"]
    assert (kept["review_for"], kept["rag"], kept["decision"], kept["revision"]) == ("2014-01-01", "red", "recommission", 1)
    assert decided([review()])[1] == ["wait:unknown_contract"], "a review waits for its contract's award"


def test_a_planned_decommissioning_records_its_consultation_and_impact_before_it_takes_effect() -> None:
    q1 = ret("2014-01-01", "2014-03-31", "1300")
    v, refused = decided([award(), sla(), q1, proposal(), proposal(partner_id="b"),
                          proposal(effective_date="2016-06-30", consultation={**proposal()[1]["consultation"]})])
    assert refused == ["not_the_lead", "already_proposed"]
    c = v["contracts"][C]
    assert c["decommissioning_proposal"]["status"] == "consulting", "as of 2014-03-31 the consultation is open"
    assert c["decommissioning_proposal"]["impact"]["service_users_affected"] == 1200
    assert c["decommissioning"] is None and c["status"] == "active", "a proposal changes nothing by itself"
    later = ret("2014-04-01", "2014-06-30", "1300")
    assert decided([award(), sla(), proposal(), later])[0]["contracts"][C]["decommissioning_proposal"]["status"] == "proposed"
    end = ("contract.decommissioned", {"contract_id": C, "partner_id": "a", "effective_date": "2014-09-30",
                                       "reason": "financial_constraints", "replacement": "separate_arrangements"})
    done = decided([award(), sla(), proposal(), later, end])[0]["contracts"][C]
    assert done["decommissioning_proposal"]["status"] == "decommissioned"
    assert decided([award(), sla(), end, proposal()])[1] == ["already_decommissioned"]
    assert decided([award(), proposal(proposed_on="2012-12-01")])[1] == ["outside_term"]


def test_a_proposal_that_is_not_planned_is_refused_at_the_gateway() -> None:
    import pytest
    from pydantic import ValidationError

    for bad in ({"effective_date": "2014-03-01"}, {"reason": "contract_end"},
                {"consultation": {**proposal()[1]["consultation"], "ended": "2014-12-31"}},
                {"consultation": {**proposal()[1]["consultation"], "consulted": []}},
                {"impact": {**proposal()[1]["impact"], "on_employees": ""}}):
        with pytest.raises(ValidationError):
            PAYLOADS["contract.decommissioning.proposed"].model_validate({**proposal()[1], **bad})
