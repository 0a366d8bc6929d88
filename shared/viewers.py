"""Viewer credentials: tokens an operator issues (`commissioning viewer issue NAME`) so that a
person or a dashboard may read the savings figures.

A token is 32 random bytes; Redis keeps only its SHA-256 (hash `P:viewers`: digest -> name), so
a copy of Redis gives no usable token. A digest of a random token needs no slow hash: there is
nothing to guess. A sign-in session (services/oidc.py) is such a token that expires by itself:
its digest is the key `P:viewer-session:<digest>`, with a time to live. Revoking a name deletes
its digests and sessions; the next request is refused.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import redis
from redis.asyncio import Redis

from shared.streams import Streams

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


async def issue(redis: Redis, streams: Streams, name: str) -> str:
    """A new token for `name` (shown once; only its digest is stored)."""
    token = new_token()
    await redis.hset(key(streams), digest(token), name)
    return token


async def issue_session(redis: Redis, streams: Streams, name: str, seconds: int) -> str:
    """A token for `name` that expires after `seconds` (a sign-in session)."""
    token = new_token()
    await redis.set(session_key(streams, digest(token)), name, ex=seconds)
    return token


async def revoke(redis: Redis, streams: Streams, name: str) -> int:
    """Delete every token issued to `name`, sessions included; how many there were."""
    stored = await redis.hgetall(key(streams))
    mine = [d for d, n in stored.items() if n.decode() == name]
    if mine:
        await redis.hdel(key(streams), *mine)
    sessions = [k async for k in redis.scan_iter(match=session_key(streams, "*"), count=1000)]
    ended = 0
    for k in sessions:
        if await redis.get(k) == name.encode():
            ended += await redis.delete(k)
    return len(mine) + ended


async def names(redis: Redis, streams: Streams) -> list[str]:
    return sorted({n.decode() for n in (await redis.hgetall(key(streams))).values()})


def local_token(url: str, streams: Streams, path: Path) -> str:
    """`commissioning up`'s own viewer token: kept in `path` (mode 600) and issued again only
    when that file is missing or the token no longer valid, so restarts add no tokens."""
    client = redis.Redis.from_url(url)
    try:
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            if client.hexists(key(streams), digest(token)):
                return token
        token = new_token()
        client.hset(key(streams), digest(token), "local")
        path.touch(mode=0o600)
        path.write_text(token, encoding="utf-8")
        return token
    finally:
        client.close()


async def viewer(redis: Redis, streams: Streams, token: str) -> str | None:
    """The name a token was issued to, or None."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    name = await redis.hget(key(streams), digest(token))
    if name is None:
        name = await redis.get(session_key(streams, digest(token)))
    return name.decode() if name is not None else None
