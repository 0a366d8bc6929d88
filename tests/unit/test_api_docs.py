"""The checked-in API documents (event and HTTP) are what the code generates, and say what the contract says."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from services import apidocs as docs
from shared.events import SavingsUpdatedData
from tests.support import ROOT


def test_checked_in_documents_match_the_code() -> None:
    assert docs.stale() == [], "the event API changed: run `commissioning docs --write` and commit docs/"


def test_asyncapi_documents_every_contract_stream() -> None:
    spec = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    assert spec["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in spec["channels"].values()}
    for key in ("inbound", "need.identified", "tender.awarded", "monitoring.return.submitted",
                "contract.decommissioned", "investment.recorded", "savings.updated", "dead-letter",
                "rejected:{partner}"):
        assert f"commissioning:{key}" in addresses, key


def test_openapi_documents_the_read_api_with_its_credentials() -> None:
    spec = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert spec["openapi"].startswith("3.")
    schemes = spec["components"]["securitySchemes"]
    assert schemes["viewer"] == {"type": "http", "scheme": "bearer", "description": schemes["viewer"]["description"]}
    assert (schemes["partner"]["in"], schemes["partner"]["name"]) == ("header", "Authorization")
    assert (schemes["signed_in"]["in"], schemes["signed_in"]["name"]) == ("cookie", "commissioning_viewer")
    reads = {"/savings", "/savings/stream", "/events/recent", "/workspace/report.csv", "/workspace/report.pdf"}
    for path in reads:
        assert spec["paths"][path]["get"]["security"] == [{"viewer": []}, {"partner": []}, {"signed_in": []}]
    for path in ("/needs", "/needs/opportunities", "/needs/timetable", "/tenders", "/contracts",
                 "/contracts/{contract_id}"):
        assert spec["paths"][path]["get"]["security"] == [{"partner": []}], path
    # every route answers a bad parameter itself (400 with a reason): no FastAPI 422 is listed
    assert "HTTPValidationError" not in json.dumps(spec)


def test_payload_schemas_use_strings_for_money() -> None:
    schema = json.loads((ROOT / "docs" / "schemas" / "need.identified.json").read_text())
    budget = schema["$defs"]["NeedIdentified"]["properties"]["annual_budget"]
    assert budget["type"] == "string" and "pattern" in budget
    assert schema["$defs"]["NeedIdentified"]["additionalProperties"] is False


def test_savings_updated_model_matches_the_contract_example() -> None:
    SavingsUpdatedData.model_validate({
        "as_of": "2013-04-01",
        "portfolio": {"baseline_annual_cost": "426937.00", "shared_annual_cost": "109289.00",
                      "annual_saving": "317648.00", "contract_price_annual_saving": "0.00",
                      "investment": "0.00", "projected_saving": "0.00", "realised_saving": "0.00", "roi": None},
        "partners": [{"partner_id": "staffordshire-cc", "annual_saving": "1.00"}],
        "contracts": [{"contract_id": "c", "annual_saving": "1.00", "status": "active"}],
    })
    with pytest.raises(ValidationError):
        SavingsUpdatedData.model_validate({"as_of": None, "portfolio": {}, "partners": [], "contracts": []})
