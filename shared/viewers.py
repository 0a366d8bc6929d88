"""Viewer credentials: tokens an operator issues (`commissioning viewer issue NAME`) so that a
person or a dashboard may read the savings figures.

A token is 32 random bytes; the store (the `Credentials` port: on Redis the hash `P:viewers`,
digest -> name) keeps only its SHA-256, so a copy of it gives no usable token. A digest of a
random token needs no slow hash: there is nothing to guess. A sign-in session (services/oidc.py)
is such a token that expires by itself (on Redis the key `P:viewer-session:<digest>`, with a time
to live). Revoking a name forgets its digests and sessions; the next request is refused.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from shared.streams import Streams

if TYPE_CHECKING:
    from shared.ports import Credentials

PREFIX = "cv1_"


def key(streams: Streams) -> str:
    return streams.key("viewers")


def session_key(streams: Streams, token_digest: str) -> str:
    """A sign-in session (OpenID Connect, services/oidc.py): expires by itself."""
    return streams.key(f"viewer-session:{token_digest}")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


async def issue(credentials: Credentials, name: str) -> str:
    """A new token for `name` (shown once; only its digest is stored)."""
    token = new_token()
    await credentials.add(digest(token), name)
    return token


async def issue_session(credentials: Credentials, name: str, seconds: int) -> str:
    """A token for `name` that expires after `seconds` (a sign-in session)."""
    token = new_token()
    await credentials.add(digest(token), name, expires_s=seconds)
    return token


async def revoke(credentials: Credentials, name: str) -> int:
    """Forget every token issued to `name`, sessions included; how many there were."""
    return await credentials.remove(name)


async def names(credentials: Credentials) -> list[str]:
    return await credentials.names()


async def viewer(credentials: Credentials, token: str) -> str | None:
    """The name a token was issued to, or None."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    return await credentials.name_of(digest(token))
