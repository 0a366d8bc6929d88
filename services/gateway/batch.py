"""HTTP batch mode (contract 1.1): a JSON array of events signed as a whole. Pure, no I/O.

The batch's signature covers the body only, so once it verifies, each event is checked exactly
as if it had been sent alone: the gateway's own `check`, fed with the event's own bytes and the
HMAC of those bytes under the signer's key (computed here, since the signer's authenticity is
already established). The bytes kept on `P:<type>` are the event's own bytes, cut out of the
body as sent, never a re-serialisation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from shared.inbound import UNKNOWN, Rejected
from shared.partners import Partner, PartnerRegistry

MEDIA_TYPE = "application/cloudevents-batch+json"
MAX_EVENTS = 1000
MAX_BYTES = 4 * 1024 * 1024

_SOURCE = re.compile(r"^/partners/([a-z0-9-]{1,64})$")
_decoder = json.JSONDecoder()
_WS = " \t\n\r"


@dataclass(frozen=True)
class Item:
    """One element of the batch: its own bytes, and what could be read of it."""

    raw: bytes
    doc: object
    id: object  # the element's `id` as sent (anything), echoed back in its result
    partner_id: str | None  # from its `source`, when that names a partner


@dataclass(frozen=True)
class Batch:
    signer: Partner
    items: list[Item]


def _elements(text: str) -> list[tuple[str, object]]:
    """The array's elements as (exact source text, parsed value); ValueError if not an array."""
    i = len(text) - len(text.lstrip(_WS))
    if not text.startswith("[", i):
        raise ValueError("the body is not a JSON array")
    i += 1
    out: list[tuple[str, object]] = []
    while True:
        while i < len(text) and text[i] in _WS:
            i += 1
        if text.startswith("]", i) and not out:
            i += 1
            break
        value, end = _decoder.raw_decode(text, i)
        out.append((text[i:end], value))
        if len(out) > MAX_EVENTS:
            raise OverflowError
        i = end
        while i < len(text) and text[i] in _WS:
            i += 1
        if text.startswith(",", i):
            i += 1
        elif text.startswith("]", i):
            i += 1
            break
        else:
            raise ValueError(f"expected ',' or ']' at character {i}")
    if text[i:].strip(_WS):
        raise ValueError("there is more after the array")
    return out


def parse(body: bytes, signature_header: str | None, registry: PartnerRegistry) -> Batch | Rejected:
    """The batch, or a rejection of the batch as a whole (answered with one 4xx)."""
    if len(body) > MAX_BYTES:
        return Rejected(UNKNOWN, "too_large", f"the batch is over {MAX_BYTES} bytes")
    try:
        elements = _elements(body.decode("utf-8"))
    except OverflowError:
        return Rejected(UNKNOWN, "too_many_events", f"a batch holds at most {MAX_EVENTS} events")
    except (UnicodeDecodeError, ValueError) as e:
        return Rejected(UNKNOWN, "malformed_json", f"the batch is not a UTF-8 JSON array of events: {e}")
    items = []
    for text, doc in elements:
        fields = doc if isinstance(doc, dict) else {}
        m = _SOURCE.match(fields["source"]) if isinstance(fields.get("source"), str) else None
        items.append(Item(text.encode(), doc, fields.get("id"), m.group(1) if m else None))

    signature = (signature_header or "").removeprefix("sha256=")
    if not items:
        return Rejected(UNKNOWN, "empty_batch", "the batch holds no events")
    # The signer is the first registered partner an event's `source` names: one HMAC of the
    # body, however many partners a (hostile) batch names; others' events are refused one by one.
    signer = next((p for p in map(registry.get, (i.partner_id for i in items if i.partner_id)) if p), None)
    if signer is None:
        return Rejected(UNKNOWN, "unknown_partner", "no event's `source` names a registered partner")
    if not signature:
        return Rejected(
            signer.id, "missing_signature", "send X-Signature: sha256=<hex HMAC of the whole body>"
        )
    if not signer.verifies(body, signature):
        return Rejected(
            signer.id,
            "bad_signature",
            f"the signature is not the HMAC-SHA256 of the whole body under the key of '{signer.id}', "
            "the partner the first event's `source` names",
        )
    return Batch(signer, items)


def not_from_signer(item: Item, signer: Partner) -> Rejected | None:
    """A batch carries one partner's events only: any other `source` is refused on its own."""
    if item.partner_id is None or item.partner_id == signer.id:
        return None
    return Rejected(
        signer.id,
        "acting_for_another",
        f"the batch is signed by '{signer.id}' but this event's source is /partners/{item.partner_id}",
    )
