"""Verification of what partners send (`P:inbound`, `POST /events`): pure, no I/O.

Every entry ends as `Accepted` or as `Rejected` with a machine-readable reason; no input
raises. The checks run cheapest and most fundamental first: size (nothing larger is read),
who the bytes say sent them (a bounded scan, not a parse), the signature over the raw bytes
(so nothing unauthenticated is parsed when a partner is named), a bounded parse
(shared.limits: depth, number length, duplicate keys), the envelope, the type, the payload,
and that the partner acts only for itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from pydantic import ValidationError

from shared.events import (
    PARTNER_SOURCE,
    PARTNER_TYPES,
    PROVIDER_TYPES,
    BidSubmitted,
    CloudEvent,
    Payload,
    errors_of,
)
from shared.limits import MAX_EVENT_BYTES, Unparseable, parse_json
from shared.partners import Partner, PartnerRegistry

UNKNOWN = "unknown"
_SOURCE = re.compile(rb'"source"\s*:\s*"/partners/([a-z0-9-]{1,64})"')
#: partners tried per entry when the bytes name several (each try is one HMAC)
MAX_CANDIDATES = 4
#: how much of an oversized entry is scanned for the partner it names
PREFIX_SCAN_BYTES = 4096


#: partner id -> 0 to admit its event, else seconds until it may send again (shared.ratelimit)
Admit = Callable[[str], float]


@dataclass(frozen=True)
class Accepted:
    partner_id: str
    event: CloudEvent
    payload: Payload
    raw: bytes


@dataclass(frozen=True)
class Rejected:
    partner_id: str  # "unknown" when the sending partner cannot be determined
    code: str
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: True once the signature verified: only then are the bytes kept whole (services.gateway)
    authenticated: bool = False
    #: seconds until the partner may send again (`rate_limited` only)
    retry_after: float | None = None

    def reason(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "errors": self.errors}

    def reason_json(self) -> str:
        return json.dumps(self.reason(), separators=(",", ":"))


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace")
    return value


def _candidates(raw: bytes, registry: PartnerRegistry) -> list[Partner]:
    """Registered partners named by a `"source": "/partners/<id>"` in the bytes: a linear scan
    of at most 64 KiB, so the signature is checked before the JSON is parsed. A nested object
    may name another partner too; the signature decides which (if any) sent it."""
    found: list[Partner] = []
    for m in _SOURCE.finditer(raw):
        partner = registry.get(m.group(1).decode())
        if partner is not None and partner not in found:
            found.append(partner)
            if len(found) == MAX_CANDIDATES:
                break
    return found


def _rate_limited(partner: Partner, wait: float) -> Rejected:
    return Rejected(
        partner.id,
        "rate_limited",
        f"{partner.id} is sending faster than its limit; send again in {wait:.1f}s",
        authenticated=True,
        retry_after=wait,
    )


def _signer(raw: bytes, sig: str, candidates: list[Partner]) -> Partner | None:
    return next((p for p in candidates if p.verifies(raw, sig)), None)


def check(
    raw: bytes | None,
    signature: bytes | str | None,
    registry: PartnerRegistry,
    max_bytes: int = MAX_EVENT_BYTES,
    today: date | None = None,
    bid_date_tolerance_days: int | None = None,
    admit: Admit | None = None,
) -> Accepted | Rejected:
    """`admit(partner_id)` is asked once the sender is authenticated, before its JSON is parsed:
    0 lets the event through, else the seconds until the partner may send again."""
    if raw is None:
        return Rejected(UNKNOWN, "missing_event", "the entry has no `event` field")

    if len(raw) > max_bytes:
        # Not parsed, not verified, not kept; named after the partner its first bytes claim, so
        # that partner learns of it (the record holds a digest and the size, never the bytes).
        claimed = _candidates(raw[:PREFIX_SCAN_BYTES], registry)
        return Rejected(
            claimed[0].id if claimed else UNKNOWN,
            "too_large",
            f"the event is {len(raw)} bytes; the limit is {max_bytes} bytes",
        )

    sig = _text(signature)
    candidates = _candidates(raw, registry)
    partner = _signer(raw, sig, candidates) if sig and candidates else None
    if partner is None and candidates:
        claimed = candidates[0]
        if not sig:
            return Rejected(claimed.id, "missing_signature", "the entry has no `signature` field")
        return Rejected(
            claimed.id,
            "bad_signature",
            "the signature is not the lower-case hex HMAC-SHA256 of the event bytes under this partner's key",
        )

    if partner is not None and admit is not None and (wait := admit(partner.id)) > 0:
        return _rate_limited(partner, wait)
    # Parsed only once the sender is authenticated, or when no partner is named (to say why).
    who, known = (partner.id, True) if partner else (UNKNOWN, False)
    try:
        doc = parse_json(raw, max_bytes)
    except Unparseable as e:
        return Rejected(who, "malformed_json", str(e), authenticated=known)
    if not isinstance(doc, dict):
        return Rejected(who, "malformed_json", "the event is JSON but not an object", authenticated=known)

    source = doc.get("source")
    m = PARTNER_SOURCE.match(source) if isinstance(source, str) else None
    if partner is None:  # no registered partner named in the bytes: nothing could be verified
        if not m:
            return Rejected(UNKNOWN, "invalid_source", "`source` must be /partners/<partner-id>")
        named = registry.get(m.group(1))
        if named is None:
            return Rejected(UNKNOWN, "unknown_partner", f"no partner '{m.group(1)}' is registered")
        # a registered partner written with JSON escapes, which the scan does not read: verify now
        if not sig or not named.verifies(raw, sig):
            code = "bad_signature" if sig else "missing_signature"
            return Rejected(named.id, code, "the entry is not signed by the partner it names")
        partner = named
        if admit is not None and (wait := admit(partner.id)) > 0:
            return _rate_limited(partner, wait)
    elif not m or m.group(1) != partner.id:
        return Rejected(
            partner.id,
            "invalid_source",
            f"`source` must be /partners/{partner.id}, the signing partner",
            authenticated=True,
        )
    verdict = _validate(partner, doc, raw, today, bid_date_tolerance_days)
    return replace(verdict, authenticated=True) if isinstance(verdict, Rejected) else verdict


def _validate(
    partner: Partner, doc: dict[str, Any], raw: bytes, today: date | None, bid_date_tolerance_days: int | None
) -> Accepted | Rejected:
    """What an authenticated partner sent: envelope, type, payload, acting for itself."""
    try:
        event = CloudEvent.model_validate(doc)
    except ValidationError as e:
        return Rejected(partner.id, "invalid_envelope", "the CloudEvents envelope is invalid", errors_of(e))

    model = PARTNER_TYPES.get(event.type)
    is_provider = partner.kind == "provider"
    if model is None or (event.type in PROVIDER_TYPES) != is_provider:
        allowed = sorted(PROVIDER_TYPES) if is_provider else sorted(set(PARTNER_TYPES) - PROVIDER_TYPES)
        who = "a provider" if is_provider else "a partner"
        return Rejected(
            partner.id,
            "type_not_allowed",
            f"{who} may not send '{event.type}'; allowed: {', '.join(allowed)}",
        )

    try:
        payload = model.model_validate(event.data)
    except ValidationError as e:
        return Rejected(partner.id, "invalid_data", f"the {event.type} data is invalid", errors_of(e))

    if model.signer_field is not None:
        named = getattr(payload, model.signer_field)
        if named != partner.id:
            return Rejected(
                partner.id,
                "acting_for_another",
                f"`{model.signer_field}` is '{named}' but the event is signed by '{partner.id}'",
            )

    if isinstance(payload, BidSubmitted) and bid_date_tolerance_days is not None and today is not None:
        if abs((payload.submitted_on - today).days) > bid_date_tolerance_days:
            return Rejected(
                partner.id,
                "stale_date",
                f"submitted_on {payload.submitted_on} is more than {bid_date_tolerance_days} days "
                f"from today ({today})",
            )

    return Accepted(partner.id, event, payload, raw)
