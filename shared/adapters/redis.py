"""The ports on Redis. Every Redis command and script a port needs is here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources

from redis.asyncio import Redis

from shared.ports import Decision
from shared.streams import Streams


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisDecisionLog:
    """An owner's requests and decisions (shared.ports.DecisionLog) in its state keys:
    `P:state:<owner>:events` (held requests; the bus stores them there with their ack),
    `:arrivals`, `:decisions` (request key -> verdict), `:claims` (slot -> request key).
    Decisions are recorded by shared/bus/decide.lua, a batch in one call."""

    def __init__(self, redis: Redis, streams: Streams, owner: str) -> None:
        self.redis, self.streams = redis, streams
        self.requests_key = streams.state(owner, "events")
        self.arrivals_key = streams.state(owner, "arrivals")
        self.decisions_key = streams.state(owner, "decisions")
        self.claims_key = streams.state(owner, "claims")
        self._script = redis.register_script(
            resources.files("shared.bus").joinpath("decide.lua").read_text(encoding="utf-8"))

    def arrival(self, key: str, request_id: str, inbound_id: str) -> tuple[str, ...]:
        """The command noting where a request arrived (stored with it, by the bus's apply step)."""
        return ("HSET", self.arrivals_key, key, f"{request_id} {inbound_id}")

    async def hold(self, key: str, raw: bytes, request_id: str, inbound_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.requests_key, key, raw)
            pipe.execute_command(*self.arrival(key, request_id, inbound_id))
            await pipe.execute()

    async def record(self, decisions: Sequence[Decision]) -> list[str]:
        if not decisions:
            return []
        keys = [self.decisions_key, self.claims_key, self.requests_key, self.arrivals_key]
        where: dict[str, int] = {}
        args: list[str | int] = []
        for d in decisions:
            if d.refused is None:
                dest, reason = self.streams.accepted(d.type), ""
            else:
                dest = self.streams.rejected(d.partner)
                reason = json.dumps(d.refused.reason(), separators=(",", ":"))
            if dest not in where:
                keys.append(dest)
                where[dest] = len(keys)  # Lua's KEYS count from 1
            args += [d.key, d.verdict, reason, where[dest], len(d.claims), *d.claims]
        stood = [_text(v) for v in await self._script(keys=keys, args=args)]
        return [d.verdict if v == "ok" else v for d, v in zip(decisions, stood, strict=False)]

    async def verdicts(self) -> dict[str, str]:
        out: dict[str, str] = {}
        cursor = 0
        while True:
            cursor, chunk = await self.redis.hscan(self.decisions_key, cursor, count=1000)
            out.update({_text(k): _text(v) for k, v in chunk.items()})
            if cursor == 0:
                return out

    async def arrivals(self, keys: Sequence[str]) -> dict[str, str]:
        """`<request entry id> <inbound id>` of each held request that has one."""
        values = await self.redis.hmget(self.arrivals_key, list(keys)) if keys else []
        return {k: _text(v) for k, v in zip(keys, values, strict=True) if v is not None}
