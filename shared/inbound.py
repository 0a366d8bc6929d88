"""Verification of what partners send (`P:inbound`, `POST /events`): pure, no I/O.

Every entry ends as `Accepted` or as `Rejected` with a machine-readable reason. The checks
run cheapest and most fundamental first: size, JSON, who claims to send it, the signature
(so nothing unauthenticated is examined further), the envelope, the type, the payload, and
that the partner acts only for itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import ValidationError

from shared.events import PARTNER_SOURCE, PARTNER_TYPES, PROVIDER_TYPES, BidSubmitted, CloudEvent, Payload, errors_of
from shared.partners import PartnerRegistry

UNKNOWN = "unknown"
_SOURCE_IN_PREFIX = re.compile(rb'"source"\s*:\s*"/partners/([a-z0-9-]{1,64})"')


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


def check(
    raw: bytes | None,
    signature: bytes | str | None,
    registry: PartnerRegistry,
    max_bytes: int,
    today: date | None = None,
    bid_date_tolerance_days: int | None = None,
) -> Accepted | Rejected:
    if raw is None:
        return Rejected(UNKNOWN, "missing_event", "the entry has no `event` field")

    if len(raw) > max_bytes:
        # Do not parse what is too large; name the partner if the prefix says who it is.
        m = _SOURCE_IN_PREFIX.search(raw[:4096])
        partner_id = m.group(1).decode() if m and registry.get(m.group(1).decode()) else UNKNOWN
        return Rejected(
            partner_id,
            "too_large",
            f"the event is {len(raw)} bytes; the limit is {max_bytes} bytes",
        )

    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return Rejected(UNKNOWN, "malformed_json", f"the event is not UTF-8 JSON: {e}")
    if not isinstance(doc, dict):
        return Rejected(UNKNOWN, "malformed_json", "the event is JSON but not an object")

    source = doc.get("source")
    m = PARTNER_SOURCE.match(source) if isinstance(source, str) else None
    if not m:
        return Rejected(
            UNKNOWN, "invalid_source", "`source` must be /partners/<partner-id>"
        )
    partner = registry.get(m.group(1))
    if partner is None:
        return Rejected(
            UNKNOWN, "unknown_partner", f"no partner '{m.group(1)}' is registered"
        )

    sig = _text(signature)
    if not sig:
        return Rejected(partner.id, "missing_signature", "the entry has no `signature` field")
    if not partner.verifies(raw, sig):
        return Rejected(
            partner.id,
            "bad_signature",
            "the signature is not the HMAC-SHA256 of the event bytes under this partner's key",
        )

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
                f"submitted_on {payload.submitted_on} is more than {bid_date_tolerance_days} days from today ({today})",
            )

    return Accepted(partner.id, event, payload, raw)

