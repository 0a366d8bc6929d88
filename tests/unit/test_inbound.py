"""Verification of partner input: every reason a partner can meet."""

from __future__ import annotations

import json

import pytest

from shared.inbound import Accepted, Rejected, check
from shared.partners import PartnerRegistry, PartnerRegistryError, sign
from tests.support import PARTNERS, event, need_data, signed

MAX = 64 * 1024


def verdict(registry: PartnerRegistry, fields: dict[str, bytes]) -> Accepted | Rejected:
    return check(fields.get("event"), fields.get("signature"), registry, MAX)


def test_a_signed_valid_need_is_accepted(registry: PartnerRegistry) -> None:
    v = verdict(registry, signed(event(need_data())))
    assert isinstance(v, Accepted)
    assert v.partner_id == "staffordshire-cc" and v.event.type == "need.identified"


def test_signature_matches_openssl_hmac(registry: PartnerRegistry) -> None:
    # printf %s "$ev" | openssl dgst -sha256 -hmac "key" -r  ->  this hex
    assert sign("key", b"The quick brown fox jumps over the lazy dog") == (
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )


@pytest.mark.parametrize(
    ("fields", "code", "partner"),
    [
        ({"event": json.dumps(event(need_data())).encode(), "signature": b"00" * 32}, "bad_signature", "staffordshire-cc"),
        ({"event": json.dumps(event(need_data())).encode()}, "missing_signature", "staffordshire-cc"),
        (signed(event(need_data()), secret=PARTNERS["tamworth-bc"]), "bad_signature", "staffordshire-cc"),
        (signed(event(need_data(partner="nobody"), partner="nobody"), secret="x"), "unknown_partner", "unknown"),
        (signed(b'{"specversion": "1.0", "id": '), "malformed_json", "unknown"),
        (signed(b"\xff\xfe not utf-8"), "malformed_json", "unknown"),
        (signed(b"[1, 2, 3]"), "malformed_json", "unknown"),
        (signed(event(need_data(), source="staffordshire-cc")), "invalid_source", "unknown"),
        (signed(event(need_data(), type="savings.updated")), "type_not_allowed", "staffordshire-cc"),
        (signed(event(need_data(), type="need.identifed")), "type_not_allowed", "staffordshire-cc"),
        (signed(event(need_data(annual_budget=1200000))), "invalid_data", "staffordshire-cc"),
        (signed(event(need_data(annual_budget="-1.00"))), "invalid_data", "staffordshire-cc"),
        (signed(event(need_data(annual_budget="1.001"))), "invalid_data", "staffordshire-cc"),
        (signed(event(need_data(extra="field"))), "invalid_data", "staffordshire-cc"),
        (signed(event(need_data(), specversion="2.0")), "invalid_envelope", "staffordshire-cc"),
        (signed(event(need_data(partner="tamworth-bc"))), "acting_for_another", "staffordshire-cc"),
        ({"signature": b"ab"}, "missing_event", "unknown"),
    ],
)
def test_each_bad_entry_is_rejected_with_its_reason(
    registry: PartnerRegistry, fields: dict[str, bytes], code: str, partner: str
) -> None:
    v = verdict(registry, fields)
    assert isinstance(v, Rejected), v
    assert (v.code, v.partner_id) == (code, partner)
    reason = json.loads(v.reason_json())
    assert reason["code"] == code and reason["message"]
    assert isinstance(reason["errors"], list)


def test_invalid_data_lists_each_error_without_echoing_values(registry: PartnerRegistry) -> None:
    v = verdict(registry, signed(event(need_data(annual_budget=12, title=""))))
    assert isinstance(v, Rejected)
    locs = {e["loc"] for e in v.errors}
    assert locs == {"annual_budget", "title"}
    assert all("input" not in e for e in v.errors)


def test_an_award_led_by_another_partner_is_refused(registry: PartnerRegistry) -> None:
    award = {
        "tender_id": "t", "contract_id": "c", "lead_partner_id": "stoke-on-trent-cc",
        "commissioning_model": "aligned_budgets", "supplier": {"id": "s", "name": "S"},
        "annual_value": "10.00", "contract_start": "2013-01-01", "contract_end": "2015-12-31",
        "partners": [{"partner_id": "staffordshire-cc", "need_id": "n"}],
    }
    v = verdict(registry, signed(event(award, type="tender.awarded", id="a-1")))
    assert isinstance(v, Rejected) and v.code == "acting_for_another"
    v = verdict(registry, signed(event(award, type="tender.awarded", partner="stoke-on-trent-cc", id="a-1"), partner="stoke-on-trent-cc"))
    assert isinstance(v, Accepted)


def test_oversized_entries_are_refused_unparsed_but_attributed(registry: PartnerRegistry) -> None:
    big = event(need_data(outcomes=["x" * 1000] * 70))
    v = verdict(registry, signed(big))
    assert isinstance(v, Rejected) and v.code == "too_large" and v.partner_id == "staffordshire-cc"
    assert "limit is 65536 bytes" in v.message


def test_registry_errors_say_what_to_fix(tmp_path) -> None:
    with pytest.raises(PartnerRegistryError, match="COMMISSIONING_PARTNERS"):
        PartnerRegistry.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[partner]]\nid = "Bad Id"\nname = "x"\nsecret = "s"\n')
    with pytest.raises(PartnerRegistryError, match="bad.toml"):
        PartnerRegistry.load(bad)
    dup = tmp_path / "dup.toml"
    dup.write_text('[[partner]]\nid = "a"\nname = "x"\nsecret = "s"\n[[partner]]\nid = "a"\nname = "y"\nsecret = "t"\n')
    with pytest.raises(PartnerRegistryError, match="more than once"):
        PartnerRegistry.load(dup)


def test_secrets_are_not_shown_in_reprs(registry: PartnerRegistry) -> None:
    p = registry.get("staffordshire-cc")
    assert p is not None and "secret-staffordshire" not in repr(p)


def test_bids_come_only_from_providers_and_are_dated_today(tmp_path) -> None:
    from datetime import date

    from shared.streams import Streams

    path = tmp_path / "r.toml"
    path.write_text('[[partner]]\nid = "cab"\nname = "CAB"\nkind = "provider"\nsecret = "k1"\n'
                    '[[partner]]\nid = "council"\nname = "Council"\nkind = "unitary"\nsecret = "k2"\n')
    reg = PartnerRegistry.load(path)
    bid = {"tender_id": "t", "bid_id": "b", "provider_id": "cab", "provider_name": "CAB",
           "submitted_on": "2026-11-22", "annual_price": "1000.00"}
    today = date(2026, 11, 22)

    def v(data: dict, partner: str, secret: str, etype: str = "bid.submitted", on: date = today) -> Accepted | Rejected:
        f = signed(event(data, type=etype, partner=partner, id="x"), secret=secret)
        return check(f["event"], f["signature"], reg, MAX, on, 2)

    assert isinstance(v(bid, "cab", "k1"), Accepted)
    assert v(bid, "cab", "k1", on=date(2026, 11, 30)).code == "stale_date"
    assert v({**bid, "provider_id": "council"}, "council", "k2").code == "type_not_allowed"
    assert v(need_data(partner="cab"), "cab", "k1", etype="need.identified").code == "type_not_allowed"
    assert Streams("p").accepted("bid.submitted") == "p:sealed:bid.submitted"
    assert Streams("p").accepted("need.identified") == "p:need.identified"
