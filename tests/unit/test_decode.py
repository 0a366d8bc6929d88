"""Validate once (shared.decode): the services' one-pass decoding of their own streams gives
what full validation gives, and what is not one of the contract's events is poison."""

from __future__ import annotations

import json

import pytest

from shared.bus import Entry, Poison
from shared.bus.consumer import parse_trusted
from shared.decode import decode
from shared.events import CloudEvent
from shared.tscip import reference_payloads
from tests.support import event, need_data


def test_every_reference_event_decodes_to_what_full_validation_gives() -> None:
    n = 0
    for partner, etype, data in reference_payloads():
        raw = json.dumps(event(data, type=etype, partner=partner, correlationid="c-1")).encode()
        full, fast = CloudEvent.parse(raw), decode(raw)
        assert (fast.key, fast.correlation_id, fast.payload()) == (full.key, full.correlation_id, full.payload())
        n += 1
    assert n > 30


def test_what_is_not_a_contract_event_is_poison_with_its_reason() -> None:
    good = json.dumps(event(need_data())).encode()
    assert parse_trusted(Entry("s", "1-0", {b"event": good})).payload().need_id
    for raw, why in ((b"not json", "json_invalid"),
                     (json.dumps({**json.loads(good), "type": "no.such.type"}).encode(), "union_tag_invalid"),
                     (json.dumps({**json.loads(good), "data": {"need_id": "x"}}).encode(), "missing")):
        with pytest.raises(Poison) as caught:
            parse_trusted(Entry("s", "1-0", {b"event": raw}))
        assert caught.value.code == "invalid_event"
        assert why in json.dumps(caught.value.errors), caught.value.errors
    with pytest.raises(Poison) as caught:
        parse_trusted(Entry("s", "1-0", {}))
    assert caught.value.code == "missing_event"
