"""Hostile input refused before work (issue 16): the repros as tests, each with its reason."""

from __future__ import annotations

import json

import pytest

from shared.inbound import Accepted, Rejected, check
from shared.limits import MAX_DEPTH, TooLarge, Unparseable, check_size, parse_json
from shared.partners import PartnerRegistry, sign
from tests.support import PARTNERS, event, need_data, signed


def verdict(registry: PartnerRegistry, fields: dict[str, bytes]) -> Accepted | Rejected:
    return check(fields.get("event"), fields.get("signature"), registry)


def body(ev: dict) -> bytes:
    return json.dumps(ev).encode()


def test_json_nested_30000_deep_is_rejected_not_raised(registry: PartnerRegistry) -> None:
    # the repro: redis-cli XADD P:inbound '*' event "[[[...]]]" signature x
    v = verdict(registry, {"event": b"[" * 30_000 + b"]" * 30_000, "signature": b"x"})
    assert isinstance(v, Rejected) and (v.code, v.partner_id) == ("malformed_json", "unknown")
    assert f"more than {MAX_DEPTH} deep" in v.message


def test_deep_json_inside_a_signed_event_is_rejected_for_that_partner(registry: PartnerRegistry) -> None:
    raw = body(event(need_data()))[:-1] + b', "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    v = verdict(registry, signed(raw))
    assert isinstance(v, Rejected) and (v.code, v.partner_id, v.authenticated) == (
        "malformed_json",
        "staffordshire-cc",
        True,
    )


def test_an_integer_of_5000_digits_is_rejected_not_raised(registry: PartnerRegistry) -> None:
    raw = body(event(need_data()))[:-1] + b', "n": ' + b"9" * 5000 + b"}"
    v = verdict(registry, signed(raw))
    assert isinstance(v, Rejected) and v.code == "malformed_json" and "5000 characters" in v.message


@pytest.mark.parametrize(
    "amount", ["1.00\n", "\u0661.\u0660\u0660", "\uff11.00", " 1.00", "1.00 ", "+1.00", "1."]
)
def test_money_is_ascii_and_exactly_the_contracts_grammar(registry: PartnerRegistry, amount: str) -> None:
    v = verdict(registry, signed(event(need_data(annual_budget=amount))))
    assert isinstance(v, Rejected) and v.code == "invalid_data", amount


@pytest.mark.parametrize("day", ["2012-12-31\n", "\uff12012-12-31", "2012-12-\u0663\u0661"])
def test_dates_are_ascii_only(registry: PartnerRegistry, day: str) -> None:
    v = verdict(registry, signed(event(need_data(current_arrangements_end=day))))
    assert isinstance(v, Rejected) and v.code == "invalid_data", day


@pytest.mark.parametrize(
    "time",
    [
        "2011-09-08T10:00:00+01:00\n",
        "\uff12011-09-08T10:00:00+01:00",
        "2011-09-08 10:00:00+01:00",
        "20110908T100000+0100",
    ],
)
def test_times_are_ascii_iso_8601_with_an_offset(registry: PartnerRegistry, time: str) -> None:
    v = verdict(registry, signed(event(need_data(), time=time)))
    assert isinstance(v, Rejected) and v.code == "invalid_envelope", time


def test_a_duplicate_key_is_refused_not_read_either_way(registry: PartnerRegistry) -> None:
    raw = body(event(need_data()))[:-2] + b', "annual_budget": "1.00", "annual_budget": "1000.00"}}'
    v = verdict(registry, signed(raw))
    assert (
        isinstance(v, Rejected)
        and v.code == "malformed_json"
        and "'annual_budget' appears twice" in v.message
    )


def test_upper_case_hex_signatures_are_refused(registry: PartnerRegistry) -> None:
    raw = body(event(need_data()))
    good = sign(PARTNERS["staffordshire-cc"], raw)
    assert isinstance(verdict(registry, {"event": raw, "signature": good.encode()}), Accepted)
    for bad in (good.upper(), f" {good}", f"{good}\n", f"sha256={good}"):
        v = verdict(registry, {"event": raw, "signature": bad.encode()})
        assert isinstance(v, Rejected) and (v.code, v.authenticated) == ("bad_signature", False), bad


def test_the_signature_is_checked_before_the_json_is_parsed(registry: PartnerRegistry) -> None:
    # malformed after the source: with no key, the sender learns only that the signature is wrong
    raw = b'{"source": "/partners/staffordshire-cc", "x": [[[' + b"[" * 30_000
    v = verdict(registry, {"event": raw, "signature": b"00" * 32})
    assert isinstance(v, Rejected) and (v.code, v.partner_id) == ("bad_signature", "staffordshire-cc")


def test_a_source_named_inside_data_cannot_borrow_another_partners_identity(
    registry: PartnerRegistry,
) -> None:
    ev = event(need_data(partner="tamworth-bc"), partner="tamworth-bc")
    ev["data"] = {"source": "/partners/staffordshire-cc", **ev["data"]}
    raw = json.dumps({"data": ev.pop("data"), **ev}).encode()  # the nested source comes first
    v = verdict(registry, signed(raw, partner="tamworth-bc"))
    assert isinstance(v, Rejected) and (v.code, v.partner_id) == (
        "invalid_data",
        "tamworth-bc",
    )  # extra field
    # signed by staffordshire but the envelope says tamworth: refused for the signer
    v = verdict(registry, signed(raw, partner="staffordshire-cc"))
    assert isinstance(v, Rejected) and (v.code, v.partner_id, v.authenticated) == (
        "invalid_source",
        "staffordshire-cc",
        True,
    )


def test_a_source_written_with_json_escapes_is_still_verified(registry: PartnerRegistry) -> None:
    raw = body(event(need_data())).replace(
        b'"/partners/staffordshire-cc"', b'"\\/partners\\/staffordshire-cc"'
    )
    assert isinstance(verdict(registry, signed(raw)), Accepted)
    v = verdict(registry, signed(raw, secret="wrong"))
    assert isinstance(v, Rejected) and (v.code, v.partner_id) == ("bad_signature", "staffordshire-cc")


def test_a_source_with_a_trailing_newline_is_not_a_partner_source(registry: PartnerRegistry) -> None:
    v = verdict(registry, signed(event(need_data(), source="/partners/staffordshire-cc\n")))
    assert isinstance(v, Rejected) and v.code == "invalid_source"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"a": NaN}', "NaN is not JSON"),
        (b'{"a": -Infinity}', "-Infinity is not JSON"),
        ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "deep"),
        (b'{"a": 1, "a": 1}', "appears twice"),
        (b'{"a": 1e' + b"9" * 50 + b"}", "characters"),
    ],
)
def test_the_bounded_parse_refuses_with_a_reason(raw: bytes, why: str) -> None:
    with pytest.raises(Unparseable, match=why):
        parse_json(raw)


def test_the_bounded_parse_reads_what_the_contract_sends() -> None:
    nested = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_json(nested) == json.loads(nested)
    assert parse_json(b'{"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"[[["}') == {"s": "[" * 38 + '"[[['}


def test_sizes_are_refused_by_their_declared_length_before_reading() -> None:
    check_size(64 * 1024)
    with pytest.raises(TooLarge, match="65537 bytes; the limit is 65536"):
        check_size(64 * 1024 + 1)
    with pytest.raises(TooLarge, match="batch"):
        check_size(4 * 1024 * 1024 + 1, 4 * 1024 * 1024, "batch")


def test_only_an_authenticated_partners_allowance_is_spent(registry: PartnerRegistry) -> None:
    asked: list[str] = []

    def admit(partner_id: str) -> float:
        asked.append(partner_id)
        return 0.0 if len(asked) < 2 else 3.0

    forged = {"event": body(event(need_data())), "signature": b"0" * 64}
    assert check(forged["event"], forged["signature"], registry, admit=admit).code == "bad_signature"
    assert asked == [], "a forger cannot spend staffordshire's allowance"
    good = signed(event(need_data()))
    assert isinstance(check(good["event"], good["signature"], registry, admit=admit), Accepted)
    v = check(good["event"], good["signature"], registry, admit=admit)
    assert isinstance(v, Rejected) and (v.code, v.retry_after) == ("rate_limited", 3.0)
    assert asked == ["staffordshire-cc", "staffordshire-cc"]
