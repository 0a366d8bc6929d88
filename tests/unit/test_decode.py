"""Validate once (shared.decode): the services' one-pass decoding of their own streams gives
what full validation gives, and what is not one of the contract's events is poison."""

from __future__ import annotations

import json

import pytest

from services.gateway.service import Gateway
from shared import decode as decoding
from shared.bus import Entry, Poison
from shared.bus.consumer import parse_trusted
from shared.decode import ValidationError, decode
from shared.events import CloudEvent
from shared.inbound import Accepted
from shared.partners import PartnerRegistry
from shared.streams import Streams
from shared.tscip import reference_payloads
from tests.support import event, need_data, signed


def test_every_reference_event_decodes_to_what_full_validation_gives() -> None:
    n = 0
    for partner, etype, data in reference_payloads():
        raw = json.dumps(event(data, type=etype, partner=partner, correlationid="c-1")).encode()
        full, fast = CloudEvent.parse(raw), decode(raw)
        assert (fast.key, fast.correlation_id, fast.payload()) == (
            full.key,
            full.correlation_id,
            full.payload(),
        )
        n += 1
    assert n > 30


def test_what_is_not_a_contract_event_is_poison_with_its_reason() -> None:
    good = json.dumps(event(need_data())).encode()
    assert parse_trusted(Entry("s", "1-0", {b"event": good})).payload().need_id
    for raw, why in (
        (b"not json", "json_invalid"),
        (json.dumps({**json.loads(good), "type": "no.such.type"}).encode(), "union_tag_invalid"),
        (json.dumps({**json.loads(good), "data": {"need_id": "x"}}).encode(), "missing"),
    ):
        with pytest.raises(Poison) as caught:
            parse_trusted(Entry("s", "1-0", {b"event": raw}))
        assert caught.value.code == "invalid_event"
        assert why in json.dumps(caught.value.errors), caught.value.errors
    with pytest.raises(Poison) as caught:
        parse_trusted(Entry("s", "1-0", {}))
    assert caught.value.code == "missing_event"


def _fresh(raw: bytes):  # decoded without the recent events kept by shared.decode
    return decoding._ADAPTER.validate_json(raw)


def test_what_the_gateway_validated_is_what_its_readers_decode() -> None:
    """`remember`: in one process the owner and the canonical stream's readers share what the
    gateway validated, and it equals what decoding the bytes gives, for every type."""
    n = 0
    for correlation in ("c-1", None):
        for partner, etype, data in reference_payloads():
            extra = {"correlationid": correlation} if correlation else {}
            raw = json.dumps(event(data, type=etype, partner=partner, **extra)).encode()
            validated = CloudEvent.parse(raw)
            decoding.remember(raw, validated, validated.payload())
            seen = decode(bytes(bytearray(raw)))  # the bytes as another stream's read gives them
            fresh = _fresh(raw)
            assert type(seen) is type(fresh) and seen == fresh
            got = (seen.key, seen.correlation_id, seen.payload())
            assert got == (fresh.key, fresh.correlation_id, fresh.payload())
            assert decode(raw) is seen
            n += 1
    assert n > 60


def test_a_correlation_id_that_is_not_a_string_is_decoded_as_before() -> None:
    raw = json.dumps(event(need_data(), correlationid=7)).encode()
    validated = CloudEvent.parse(raw)
    decoding.remember(raw, validated, validated.payload())
    with pytest.raises(ValidationError):
        decode(raw)


def test_a_reader_16384_events_behind_the_first_meets_what_it_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """README (The core): under a backlog the gateway reads far ahead of the canonical streams'
    readers in its process; each of the last 16,384 events it decoded is still the one shared."""
    monkeypatch.setattr(decoding, "_recent", {})
    monkeypatch.setattr(decoding, "_older", {})
    monkeypatch.setattr(decoding, "_recent_bytes", 0)
    raws = [json.dumps(event(need_data(need_id=f"n-{i}"), id=f"e-{i}")).encode() for i in range(20_000)]
    first = [decode(raw) for raw in raws]
    assert all(decode(raw) is ev for raw, ev in zip(raws[-16_384:], first[-16_384:], strict=True))
    assert len(decoding._recent) + len(decoding._older) <= 2 * 16_384


def test_the_events_kept_are_bounded_by_count_and_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoding, "RECENT", 5)
    monkeypatch.setattr(decoding, "RECENT_BYTES", 3_000)
    monkeypatch.setattr(decoding, "_recent", {})
    monkeypatch.setattr(decoding, "_older", {})
    monkeypatch.setattr(decoding, "_recent_bytes", 0)
    raws = [json.dumps(event(need_data(need_id=f"n-{i}"), id=f"e-{i}")).encode() for i in range(40)]
    for raw in raws:
        decode(raw)
        kept = len(decoding._recent) + len(decoding._older)
        held = sum(map(len, decoding._recent)) + sum(map(len, decoding._older))
        assert kept <= 10 and held <= 6_000
    assert decode(raws[-1]) is decode(raws[-1])  # the newest are kept
    big = json.dumps(event(need_data(title="x" * 1_900, outcomes=["y" * 1_900]))).encode()
    decode(big)
    assert big not in decoding._recent and big not in decoding._older
    assert len(decoding._recent) + len(decoding._older) > 0


@pytest.mark.parametrize("share", [True, False])
def test_a_gateway_alone_in_its_process_keeps_nothing_to_share(
    registry: PartnerRegistry, monkeypatch: pytest.MonkeyPatch, share: bool
) -> None:
    monkeypatch.setattr(decoding, "_recent", {})
    monkeypatch.setattr(decoding, "_older", {})
    gateway = Gateway(Streams("t"), registry, 65_536, share_decoded=share)
    fields = signed(event(need_data(need_id="shared-or-not")))
    verdict, _ = gateway.decide(fields["event"], fields["signature"], "1-0")
    assert isinstance(verdict, Accepted)
    assert (fields["event"] in decoding._recent) is share


def test_decoding_once_gives_what_decode_gives_and_keeps_nothing() -> None:
    """A state read whole decodes each event once (`decode_once`): the same typed event, and
    the recent events (what this process's readers share) left as they were."""
    raw = json.dumps(event(need_data(), correlationid="c-9")).encode()
    kept = (dict(decoding._recent), dict(decoding._older))
    once = decoding.decode_once(raw)
    assert (dict(decoding._recent), dict(decoding._older)) == kept
    assert once == decode(raw)
    assert (once.key, once.correlation_id, once.payload()) == (
        CloudEvent.parse(raw).key,
        "c-9",
        CloudEvent.parse(raw).payload(),
    )


def test_an_events_key_is_made_once_and_kept_out_of_its_figures() -> None:
    """`Decoded.key` is made at the first look and kept on the event (`_MadeOnce`): the same
    string object after; the event compares and dumps as before."""
    raw = json.dumps(event(need_data())).encode()
    one, other = decoding.decode_once(raw), decoding.decode_once(raw)
    assert "key" not in one.__dict__
    key = one.key
    assert key == f"{one.source} {one.id}" and one.key is key and one.__dict__["key"] is key
    assert one == other and "key" not in other.__dict__  # a key asked of one only
    assert one.model_dump() == other.model_dump() and "key" not in one.model_dump()
    assert isinstance(decoding.Decoded.__dict__["key"], decoding._MadeOnce)  # no lock taken
