"""The contract's payload models: strict money, dates, unknown fields refused."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.events import (
    PARTNER_TYPES,
    CloudEvent,
    ContractDecommissioned,
    NeedIdentified,
    TenderAwarded,
    new_event,
    to_json,
)
from shared.money import money_str, to_pence
from shared.streams import Streams
from tests.support import event, need_data

AWARD = {
    "tender_id": "tscip-debt-advice",
    "contract_id": "tscip-debt-advice-2013",
    "lead_partner_id": "staffordshire-cc",
    "commissioning_model": "aligned_budgets",
    "supplier": {"id": "staffs-cab-consortium", "name": "Staffordshire CAB consortium"},
    "annual_value": "1900000.00",
    "contract_start": "2013-01-01",
    "contract_end": "2015-12-31",
    "partners": [
        {"partner_id": "staffordshire-cc", "need_id": "staffs-cc-debt-advice", "annual_contribution": "600000.00"}
    ],
    "annual_management_cost": "41000.00",
}


def test_need_parses_money_as_decimal_and_dates_as_dates() -> None:
    need = NeedIdentified.model_validate(need_data())
    assert need.annual_budget == Decimal("1200000.00")
    assert isinstance(need.current_annual_resource_cost, Decimal)
    assert need.current_arrangements_end == date(2012, 12, 31)


@pytest.mark.parametrize(
    "bad",
    [1200000, 1200000.0, "1200000.001", "-5.00", "1,200.00", "£12", "1e6", "", " 12.00", "NaN"],
)
def test_money_must_be_a_string_of_pounds_with_at_most_two_places(bad: object) -> None:
    with pytest.raises(ValidationError) as e:
        NeedIdentified.model_validate(need_data(annual_budget=bad))
    assert e.value.errors()[0]["loc"] == ("annual_budget",)


@pytest.mark.parametrize("good", ["0", "12", "12.5", "12.50", "999999999999.99"])
def test_money_accepts_up_to_two_places(good: str) -> None:
    assert NeedIdentified.model_validate(need_data(annual_budget=good)).annual_budget == Decimal(good)


@pytest.mark.parametrize("bad", ["2012-13-01", "31/12/2012", "2012-12-31T00:00:00", 20121231, "1066-10-14", "9999-01-01"])
def test_dates_are_iso_calendar_dates_in_range(bad: object) -> None:
    with pytest.raises(ValidationError):
        NeedIdentified.model_validate(need_data(current_arrangements_end=bad))


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as e:
        NeedIdentified.model_validate(need_data(colour="blue"))
    assert e.value.errors()[0]["type"] == "extra_forbidden"


def test_strict_types_refuse_coercion() -> None:
    with pytest.raises(ValidationError):
        NeedIdentified.model_validate(need_data(current_arrangements="12"))
    with pytest.raises(ValidationError):
        NeedIdentified.model_validate(need_data(open_to_sharing="yes"))
    with pytest.raises(ValidationError):
        NeedIdentified.model_validate(need_data(partner_id="Not A Partner Id"))


def test_award_checks_term_and_repeated_needs() -> None:
    award = TenderAwarded.model_validate(AWARD)
    assert award.partners[0].annual_contribution == Decimal("600000.00")
    with pytest.raises(ValidationError, match="before contract_start"):
        TenderAwarded.model_validate({**AWARD, "contract_end": "2012-01-01"})
    with pytest.raises(ValidationError, match="listed twice"):
        TenderAwarded.model_validate({**AWARD, "partners": AWARD["partners"] * 2})
    with pytest.raises(ValidationError):
        TenderAwarded.model_validate({**AWARD, "partners": []})
    without_cost = {k: v for k, v in AWARD.items() if k != "annual_management_cost"}
    assert TenderAwarded.model_validate(without_cost).annual_management_cost is None


def test_decommission_reasons_are_the_contracts() -> None:
    ok = {"contract_id": "c", "partner_id": "p", "effective_date": "2014-06-30",
          "reason": "financial_constraints", "replacement": "separate_arrangements"}
    assert ContractDecommissioned.model_validate(ok).reason == "financial_constraints"
    with pytest.raises(ValidationError):
        ContractDecommissioned.model_validate({**ok, "reason": "bored"})


def test_partner_types_are_the_contracts_plus_the_documented_additions() -> None:
    assert set(PARTNER_TYPES) == {
        "need.identified",
        "tender.awarded",
        "monitoring.return.submitted",
        "contract.decommissioned",
        "investment.recorded",
        # docs/contract-additions.md
        "need.updated",
        "need.withdrawn",
        "opportunity.joined",
        "opportunity.declined",
        "contract.sla.agreed",
        "contract.member.exited",
        "contract.review.recorded",
        "contract.decommissioning.proposed",
        "tender.requested",
        "bid.submitted",
        "tender.evaluation.submitted",
        "tender.award.confirmed",
        "tender.cancel.requested",
    }


def test_cloudevent_round_trip_keeps_money_as_strings() -> None:
    need = NeedIdentified.model_validate(need_data())
    ev = new_event(need, source="/services/needs", event_id="e-1")
    doc = json.loads(to_json(ev))
    assert doc["data"]["annual_budget"] == "1200000.00"
    assert doc["data"]["current_arrangements_end"] == "2012-12-31"
    assert doc["specversion"] == "1.0" and doc["time"].endswith("+00:00")
    back = CloudEvent.parse(to_json(ev))
    assert back.payload() == need
    assert back.key == "/services/needs e-1"


def test_event_bytes_are_compact_utf8_json_with_nulls_in_data_kept() -> None:
    """`to_json` writes what `json.dumps(..., separators=(",", ":"), ensure_ascii=False)` of the
    dumped envelope writes, byte for byte: no spaces, text as UTF-8 (controls and quotes
    escaped), nulls in `data` kept, the envelope's own unset attributes left out, extension
    attributes after `data`."""
    data = {
        "note": 'quote " backslash \\ tab \t nul \x00 line sep \u2028 accents éü emoji \U0001f600',
        "nothing": None,
        "nested": {"list": [None, 1, "2", {"deep": None}], "big": 10**30, "empty": {}},
    }
    for ev in (
        CloudEvent(specversion="1.0", id="e-1", source="/s", type="x.y", data=data, correlationid="c-1"),
        new_event(NeedIdentified.model_validate(need_data()), source="/services/needs", event_id="e-2"),
    ):
        expected = json.dumps(
            ev.model_dump(mode="json", exclude_none=True), separators=(",", ":"), ensure_ascii=False
        ).encode()
        assert to_json(ev) == expected
        assert CloudEvent.parse(to_json(ev)) == ev
    bare = to_json(CloudEvent(specversion="1.0", id="e", source="/s", type="t", data=data))
    assert b'"nothing":null' in bare and b'"time"' not in bare


def test_cloudevent_envelope_rules() -> None:
    CloudEvent.model_validate(event(need_data(), correlationid="abc"))
    with pytest.raises(ValidationError):
        CloudEvent.model_validate(event(need_data(), specversion="0.3"))
    with pytest.raises(ValidationError):
        CloudEvent.model_validate(event(need_data(), time="2011-09-08T10:00:00"))  # no offset
    with pytest.raises(ValidationError):
        CloudEvent.model_validate(event(need_data(), **{"Bad-Name": "x"}))


def test_money_rounding_is_half_up_to_the_penny() -> None:
    assert to_pence(Decimal("0.005")) == Decimal("0.01")
    assert money_str(Decimal("317648")) == "317648.00"


def test_stream_names_follow_the_prefix() -> None:
    s = Streams("acme")
    assert s.inbound == "acme:inbound"
    assert s.rejected("tamworth-bc") == "acme:rejected:tamworth-bc"
    assert s.of_type("need.identified") == "acme:need.identified"
    assert s.dead_letter == "acme:dead-letter"
    assert s.savings_updated == "acme:savings.updated"
