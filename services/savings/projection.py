"""The savings projection's state in Redis, and the handlers that keep it.

State is the set of events applied: a hash `P:state:savings:events` of `source id` -> the
event's JSON, written by the same atomic step that acks the entry and marks it seen, so a
crash can never count an event twice or lose one. Figures are `model.project` of that set;
each process keeps the set indexed in memory and reloads it when the hash has changed under
it (another replica, or a rebuild).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone
from typing import Any

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis

from services.savings.model import Facts, evolve, project
from shared.bus import Applied, Entry, Poison
from shared.bus.consumer import parse_event
from shared.events import CloudEvent, Payload, errors_of, to_json
from shared.policy import SavingsPolicy
from shared.streams import Streams

SOURCE = "/services/savings"
TYPES = (
    "need.identified",
    "tender.awarded",
    "monitoring.return.submitted",
    "contract.decommissioned",
    "investment.recorded",
)
log = structlog.get_logger("savings")


def payload_of(event: CloudEvent) -> Payload:
    try:
        return event.payload()
    except ValidationError as e:
        raise Poison("invalid_data", f"{event.type} data is invalid", errors_of(e)) from e
    except KeyError as e:
        raise Poison("unexpected_type", f"the savings service does not use {event.type}") from e


class Projection:
    def __init__(self, redis: Redis, streams: Streams, policy: SavingsPolicy) -> None:
        self.redis = redis
        self.streams = streams
        self.policy = policy
        self.events_key = streams.state("savings", "events")
        self.generation_key = streams.state("savings", "generation")
        self.facts = Facts()
        self.generation: bytes | None = None
        self.figures: dict[str, Any] = project(self.facts, policy)
        self._lock = asyncio.Lock()

    # -- handlers ------------------------------------------------------------------------

    async def handle(self, event: CloudEvent, entry: Entry) -> list[tuple[str | bytes, ...]]:
        payload_of(event)  # refuse, before storing, what the model could never use
        return [("HSET", self.events_key, event.key, entry.raw_event or to_json(event))]

    async def after_batch(self, applied: list[Applied]) -> None:
        async with self._lock:
            for a in applied:
                if a.fresh:
                    event = parse_event(a.entry)
                    evolve(self.facts, event.key, payload_of(event))
            await self._refresh()
            self.figures = project(self.facts, self.policy)
            if any(a.fresh for a in applied):
                await self.publish()

    async def publish(self) -> None:
        event = CloudEvent(
            specversion="1.0",
            id=str(uuid.uuid4()),
            source=SOURCE,
            type="savings.updated",
            time=datetime.now(timezone.utc),
            datacontenttype="application/json",
            data=self.dashboard_view(),
        )
        await self.redis.xadd(self.streams.savings_updated, {"event": to_json(event)})

    def dashboard_view(self) -> dict[str, Any]:
        f = self.figures
        keys = ("as_of", "portfolio", "discounted", "horizon", "years", "partners", "events_applied")
        view = {k: f[k] for k in keys}
        view["contracts"] = [
            {k: c[k] for k in ("contract_id", "annual_saving", "status", "realised_saving", "projected_saving", "partners", "supplier", "saving_until")}
            for c in f["contracts"]
        ]
        return view

    # -- loading -------------------------------------------------------------------------

    async def load(self) -> int:
        """Read the whole applied set from Redis into a fresh index."""
        async with self._lock:
            await self._load()
            self.figures = project(self.facts, self.policy)
            return len(self.facts.applied)

    async def _load(self) -> None:
        facts = Facts()
        generation = await self.redis.get(self.generation_key)
        async for key, raw in _hscan(self.redis, self.events_key):
            event = CloudEvent.parse(raw)
            evolve(facts, key.decode(), event.payload())
        self.facts, self.generation = facts, generation

    async def _refresh(self) -> bool:
        stored = await self.redis.hlen(self.events_key)
        generation = await self.redis.get(self.generation_key)
        if stored != len(self.facts.applied) or generation != self.generation:
            log.info("projection changed elsewhere; reloading", stored=stored, known=len(self.facts.applied))
            await self._load()
            return True
        return False

    async def keep_fresh(self, interval: float = 2.0) -> None:
        """Pick up changes made elsewhere (another replica, a rebuild) even when idle."""
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._lock:
                    if await self._refresh():
                        self.figures = project(self.facts, self.policy)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis away: next round
                log.exception("refresh failed; will retry")


async def _hscan(redis: Redis, key: str, count: int = 1000) -> AsyncIterator[tuple[bytes, bytes]]:
    cursor = 0
    while True:
        cursor, chunk = await redis.hscan(key, cursor, count=count)
        for k, v in chunk.items():
            yield k, v
        if cursor == 0:
            return


def streams_read(streams: Streams) -> Sequence[str]:
    return [streams.of_type(t) for t in TYPES]

