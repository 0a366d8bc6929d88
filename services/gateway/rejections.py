"""How a rejection is recorded on `P:rejected:<partner>`: cheaply, in a stream capped by count.

An authenticated partner's rejected event is kept whole (at most 64 KiB), so the partner can
see what it sent. From an unknown or unauthenticated sender, and for `too_large` and
`rate_limited`, only a digest, the size and the first bytes are kept: those streams are
where a flood lands, so an entry there costs a few hundred bytes whatever was sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shared.bus.consumer import Command
from shared.inbound import UNKNOWN, Rejected
from shared.streams import Streams

#: codes whose bytes are never kept whole, even from an authenticated partner
SLIM_CODES = frozenset({"too_large", "rate_limited"})


@dataclass(frozen=True)
class RejectionPolicy:
    #: entries kept per partner's rejection stream (`MAXLEN ~`: Redis trims in whole nodes)
    partner_maxlen: int = 1_000
    #: entries kept in `P:rejected:unknown`
    unknown_maxlen: int = 10_000
    #: bytes of an unauthenticated entry kept, to help whoever sent it recognise it
    keep_bytes: int = 256


def record(
    streams: Streams,
    policy: RejectionPolicy,
    verdict: Rejected,
    raw: bytes | None,
    inbound_id: str,
    size: int | None = None,
) -> Command:
    """The XADD that records `verdict` for `raw` (the entry's bytes; `size` when only part of
    them was read, as over HTTP: then no digest either)."""
    raw = raw or b""
    maxlen = policy.unknown_maxlen if verdict.partner_id == UNKNOWN else policy.partner_maxlen
    fields: list[str | bytes] = ["reason", verdict.reason_json(), "inbound_id", inbound_id]
    if verdict.authenticated and verdict.code not in SLIM_CODES:
        fields += ["event", raw]
    else:
        kept = b"" if verdict.code == "too_large" else raw[: policy.keep_bytes]  # CONTRACT.md: not kept
        fields += ["event", kept, "size", str(len(raw) if size is None else size)]
        if size is None:
            fields += ["sha256", hashlib.sha256(raw).hexdigest()]
    return ("XADD", streams.rejected(verdict.partner_id), "MAXLEN", "~", maxlen, "*", *fields)
