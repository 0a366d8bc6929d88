"""The OCDS mapping, event by event, checked by libcoveocds: every stage of a contracting
process, including the procurement service's notices and sealed bids."""

from __future__ import annotations

import json
from typing import Any

from services.dataio.export import packages
from services.dataio.ocds import Builder, Fact
from tests.ocdscheck import problems

NEED = {
    "service_category": "advocacy",
    "title": "Advocacy",
    "current_arrangements": 3,
    "current_arrangements_end": "2012-03-31",
    "open_to_sharing": True,
    "current_annual_resource_cost": "100.00",
}


def facts() -> list[Fact]:
    ms = iter(range(1_300_000_000_000, 1_400_000_000_000, 60_000))

    def fact(etype: str, **data: Any) -> Fact:
        return Fact(f"{next(ms)}-0", etype, data)

    return [
        fact("need.identified", need_id="a-adv", partner_id="a", annual_budget="600000.00", **NEED),
        fact("need.identified", need_id="b-adv", partner_id="b", annual_budget="330000.50", **NEED),
        fact("need.identified", need_id="c-adv", partner_id="c", annual_budget="1.00", **NEED),
        fact("need.withdrawn", need_id="c-adv", partner_id="c", revision=1),
        fact(
            "tender.published",
            tender_id="t1",
            status="published",
            revision=0,
            title="Advocacy",
            service_category="advocacy",
            lead_partner_id="a",
            partners=["a", "b", "c"],
            route="competitive_tender",
            route_reason="£180,000 lifetime value",
            lifetime_value="180000.00",
            date="2012-01-02",
            clarification_deadline="2012-01-09",
            closing_date="2012-01-16",
        ),
        fact(
            "bid.submitted",
            tender_id="t1",
            bid_id="bid-p",
            provider_id="p",
            provider_name="Provider P",
            submitted_on="2012-01-10",
            annual_price="58123.45",
        ),
        fact(
            "bid.submitted",
            tender_id="t1",
            bid_id="bid-q",
            provider_id="q",
            provider_name="Provider Q",
            submitted_on="2012-01-11",
            annual_price="55432.10",
        ),
        fact(
            "tender.closed",
            tender_id="t1",
            status="closed",
            revision=0,
            closing_date="2012-01-16",
            bids_received=2,
        ),
        fact(
            "tender.awarded",
            tender_id="t1",
            contract_id="k1",
            lead_partner_id="a",
            commissioning_model="aligned_budgets",
            supplier={"id": "p", "name": "Provider P"},
            annual_value="58123.45",
            contract_start="2012-04-01",
            contract_end="2015-03-31",
            partners=[{"partner_id": "a", "need_id": "a-adv"}, {"partner_id": "b", "need_id": "b-adv"}],
        ),
        fact(
            "monitoring.return.submitted",
            contract_id="k1",
            partner_id="a",
            period_start="2012-04-01",
            period_end="2012-06-30",
            spend="14530.86",
        ),
        fact(
            "monitoring.return.submitted",
            contract_id="k1",
            partner_id="b",
            period_start="2012-04-01",
            period_end="2012-06-30",
            spend="100.00",
        ),
        fact(
            "monitoring.return.submitted",
            contract_id="elsewhere",
            partner_id="b",
            period_start="2012-04-01",
            period_end="2012-06-30",
            spend="1.00",
        ),
        fact(
            "contract.decommissioned",
            contract_id="k1",
            partner_id="a",
            effective_date="2014-06-30",
            reason="financial_constraints",
            replacement="separate_arrangements",
        ),
    ]


def test_a_process_from_planning_to_termination_is_valid_ocds_and_compiles() -> None:
    releases = Builder("ocds-abc123", {"a": "Council A"}, public=False).releases(facts())
    assert [r["tag"] for r in releases] == [
        ["planning"],
        ["tender"],
        ["tender"],
        ["award"],
        ["contract"],
        ["implementation"],
        ["implementation"],
        ["contractTermination"],
    ]
    release_package, record_package = packages(releases, "https://example.org/ocds", "Test partnership")
    assert problems(release_package) == {}
    assert problems(record_package) == {}
    [record] = record_package["records"]
    compiled = record["compiledRelease"]
    assert record["ocid"] == compiled["ocid"] == "ocds-abc123-t1"
    assert compiled["planning"]["budget"]["amount"] == {"amount": 930000.5, "currency": "GBP"}, "c withdrew"
    assert compiled["tender"]["status"] == "complete" and compiled["tender"]["numberOfTenderers"] == 2
    assert compiled["tender"]["procurementMethod"] == "open"
    assert [t["id"] for t in compiled["tender"]["tenderers"]] == ["p", "q"]
    assert compiled["awards"][0]["value"] == {"amount": 174370.35, "currency": "GBP"}, "36 months"
    [contract] = compiled["contracts"]
    assert contract["status"] == "terminated" and contract["period"]["endDate"] == "2014-06-30T00:00:00Z"
    assert [(t["payer"]["id"], t["value"]["amount"]) for t in contract["implementation"]["transactions"]] == [
        ("a", 14530.86),
        ("b", 100.0),
    ]
    roles = {p["id"]: sorted(p["roles"]) for p in compiled["parties"]}
    assert roles == {
        "a": ["buyer", "funder", "payer", "procuringEntity"],
        "b": ["funder", "payer"],
        "p": ["payee", "supplier", "tenderer"],
        "q": ["tenderer"],
    }
    assert next(p for p in compiled["parties"] if p["id"] == "a")["name"] == "Council A"


def test_the_public_export_leaves_out_budgets_and_bids() -> None:
    releases = Builder("ocds-abc123", {}, public=True).releases(facts())
    text = json.dumps(releases)
    for secret in ("600000.0", "600,000", "330000.5", "330,000", "tenderer", "Provider Q", '"q"'):
        assert secret not in text
    assert problems(packages(releases, "https://example.org/ocds", "Test")[1]) == {}
    planning = releases[0]["planning"]["budget"]
    assert "amount" not in planning and planning["description"].startswith("2 partners' needs")


def test_the_checker_does_find_errors() -> None:
    releases = Builder("ocds-abc123", {}, public=False).releases(facts())
    releases[3]["awards"][0]["value"]["amount"] = "lots"
    releases[0]["tag"] = ["not-a-tag"]
    found = problems(packages(releases, "https://example.org/ocds", "Test")[0])
    assert [e["path"] for e in found["validation_errors"]] == ["releases/3/awards/0/value/amount"]
    assert found["additional_closed_codelist_values"]["releases/tag"]["values"] == ["not-a-tag"]


def test_events_are_linked_by_id_not_by_their_position_across_streams() -> None:
    # every stream numbers its entries from 0 within a millisecond: the same id on each stream
    same = [Fact("1300000000000-0", f.type, f.data) for f in reversed(facts())]
    tags = [r["tag"][0] for r in Builder("ocds-abc123", {}, public=False).releases(same)]
    assert tags.count("implementation") == 2 and tags[-1] == "contractTermination"
