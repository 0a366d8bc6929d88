"""Hostile input against the inbound checks: never a crash, always a verdict with a reason."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings

from shared.inbound import Accepted, Rejected, check
from shared.partners import PartnerRegistry
from tests.fuzzing import hostile_entry

CODES = {"missing_event", "too_large", "malformed_json", "invalid_source", "unknown_partner", "missing_signature",
         "bad_signature", "invalid_envelope", "type_not_allowed", "invalid_data", "acting_for_another", "stale_date"}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fields=hostile_entry())
def test_every_entry_gets_a_verdict(registry: PartnerRegistry, fields: dict[str, bytes]) -> None:
    verdict = check(fields.get("event"), fields.get("signature"), registry, 64 * 1024)
    if isinstance(verdict, Rejected):
        assert verdict.code in CODES
        reason = json.loads(verdict.reason_json())
        assert reason["message"] and isinstance(reason["errors"], list)
        assert verdict.partner_id == "unknown" or registry.get(verdict.partner_id)
    else:
        assert isinstance(verdict, Accepted)
        assert verdict.raw == fields["event"]
        assert verdict.payload.partner_id == verdict.partner_id
        # what is accepted is exactly within the contract: money with at most 2 places
        for value in verdict.event.data.values():
            assert not isinstance(value, float)
        wire = json.loads(verdict.raw)["data"]["annual_budget"]  # first-wins or last-wins: one value
        assert wire.isascii() and "\n" not in wire and verdict.payload.annual_budget == Decimal(wire)
        assert verdict.raw.count(b'"annual_budget"') == 1
