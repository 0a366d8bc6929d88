"""Partner authentication for HTTP reads: a request signed with the partner's HMAC key.

    Authorization: Partner <partner-id>:<unix-seconds>:<hex>
    hex = HMAC-SHA256(secret, "<METHOD>\\n<path with query>\\n<unix-seconds>")

The time must be within `skew` seconds of the server's, so a captured header soon expires.
"""

from __future__ import annotations

import time

from shared.partners import PartnerRegistry, sign

SKEW_S = 300


class AuthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def request_signature(secret: str, method: str, target: str, timestamp: int) -> str:
    return sign(secret, f"{method.upper()}\n{target}\n{timestamp}".encode())


def authorization(partner_id: str, secret: str, method: str, target: str, now: float | None = None) -> str:
    """The header value a partner system sends (what tests and clients use)."""
    ts = int(now if now is not None else time.time())
    return f"Partner {partner_id}:{ts}:{request_signature(secret, method, target, ts)}"


def authenticate(
    registry: PartnerRegistry,
    method: str,
    target: str,
    header: str | None,
    now: float | None = None,
    skew: int = SKEW_S,
) -> str:
    """The partner id, or `AuthError` saying what is wrong."""
    if not header or not header.startswith("Partner "):
        raise AuthError("unauthenticated", "send Authorization: Partner <id>:<unix-seconds>:<hmac-hex>")
    try:
        partner_id, ts_text, signature = header.removeprefix("Partner ").split(":")
        ts = int(ts_text)
    except ValueError as e:
        raise AuthError(
            "unauthenticated", "the Authorization header is not <id>:<unix-seconds>:<hmac-hex>"
        ) from e
    partner = registry.get(partner_id)
    if partner is None:
        raise AuthError("unknown_partner", f"no partner '{partner_id}' is registered")
    if abs((now if now is not None else time.time()) - ts) > skew:
        raise AuthError("stale_request", f"the request time is more than {skew}s from the server's clock")
    if not partner.verifies(f"{method.upper()}\n{target}\n{ts}".encode(), signature):
        raise AuthError("bad_signature", "the request signature does not verify under this partner's key")
    return partner.id
