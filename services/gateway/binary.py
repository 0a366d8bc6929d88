"""CloudEvents binary mode over HTTP (an addition to the contract), signed with HTTP Message
Signatures (RFC 9421, HMAC-SHA256 under the partner's key) so the `ce-` headers are signed too.

In binary mode the attributes travel as `ce-` headers and the body is the data alone, so
`X-Signature` over the body would leave who-sends-what unsigned. The request must instead carry
an RFC 9421 signature (`Signature-Input`, `Signature`) with `keyid` the partner id, covering
`@method`, `@path`, `content-type`, `content-digest` (RFC 9530, the body's SHA-256) and every
`ce-` header sent. Verified by the maintained `http-message-signatures` library; the event is
then rebuilt in structured mode and checked exactly as if it had been sent so (docs/import.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)

from shared.inbound import UNKNOWN, Rejected
from shared.partners import Partner, PartnerRegistry

REQUIRED = (
    "@method",
    "@path",
    "content-type",
    "content-digest",
    "ce-specversion",
    "ce-id",
    "ce-source",
    "ce-type",
)
_SOURCE = re.compile(r"^/partners/([a-z0-9-]{1,64})$")


@dataclass(frozen=True)
class _Message:
    """The request as the library reads it: method, absolute URL, header lines."""

    method: str
    url: str
    headers: dict[str, str]


class _Keys(HTTPSignatureKeyResolver):
    def __init__(self, partner: Partner) -> None:
        self.partner = partner

    def resolve_public_key(self, key_id: str) -> bytes | None:
        # only the partner the event's source names may sign it
        return self.partner.secret.get_secret_value().encode() if key_id == self.partner.id else None

    def resolve_private_key(self, key_id: str) -> bytes:  # pragma: no cover - the server only verifies
        raise KeyError(key_id)


def structured(headers: dict[str, str], body: bytes) -> bytes | Rejected:
    """The event in structured mode, from the `ce-` headers and the JSON data in the body."""
    content_type = headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/json":
        return Rejected(
            UNKNOWN, "invalid_envelope", "binary mode carries JSON data: Content-Type: application/json"
        )
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return Rejected(UNKNOWN, "malformed_json", f"the body is not UTF-8 JSON: {e}")
    event: dict[str, Any] = {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
    event |= {"datacontenttype": content_type, "data": data}
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def verify(headers: dict[str, str], body: bytes, registry: PartnerRegistry) -> Partner | Rejected:
    """The signing partner, or the reason the request is refused."""
    m = _SOURCE.match(headers.get("ce-source", ""))
    partner = registry.get(m.group(1)) if m else None
    if partner is None:
        return Rejected(
            UNKNOWN,
            "unknown_partner" if m else "invalid_source",
            "ce-source must be /partners/<id> of a registered partner",
        )
    if "signature" not in headers or "signature-input" not in headers:
        return Rejected(
            partner.id,
            "missing_signature",
            "binary mode needs an HTTP Message Signature (RFC 9421): "
            f'Signature-Input and Signature, keyid "{partner.id}", alg hmac-sha256, covering '
            f"{', '.join(REQUIRED)} and every ce- header",
        )
    covered = REQUIRED + tuple(sorted(n for n in headers if n.startswith("ce-") and n not in REQUIRED))
    message = _Message("POST", f"http://{headers.get('host', 'localhost')}/events", headers)
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.HMAC_SHA256, key_resolver=_Keys(partner))
    try:
        verifier.verify(message, require_components=covered, body=body)
    except (HTTPMessageSignaturesException, KeyError, ValueError) as e:
        return Rejected(partner.id, "bad_signature", f"the HTTP Message Signature does not verify: {e}")
    return partner
