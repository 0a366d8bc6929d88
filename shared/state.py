"""A service's state as the set of events it has applied.

The set is a Redis hash `P:state:<service>:events` (`source id` -> the event's JSON), written by
the bus's atomic step together with the idempotency mark and the ack, so a crash can neither
lose an event nor count it twice. Each process folds the set into an in-memory index
(`fold(index, key, payload)`, order-independent) and reloads it whenever the hash changed
under it: another replica applied events, or a rebuild swapped it (the generation key).
Subclasses say what to do when the index changes (`changed`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Generic, Protocol, TypeVar

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis

from shared.bus import Applied, Entry, Poison
from shared.bus.consumer import parse_event
from shared.events import CloudEvent, Payload, errors_of, to_json
from shared.streams import Streams

log = structlog.get_logger("state")


class Index(Protocol):
    applied: set[str]


I = TypeVar("I", bound=Index)  # noqa: E741


def payload_of(event: CloudEvent) -> Payload:
    """The typed payload, or `Poison` (dead-lettered at once) when it can never be used."""
    try:
        return event.payload()
    except ValidationError as e:
        raise Poison("invalid_data", f"{event.type} data is invalid", errors_of(e)) from e
    except KeyError as e:
        raise Poison("unexpected_type", f"no payload model for {event.type}") from e


async def hscan(redis: Redis, key: str, count: int = 1000) -> AsyncIterator[tuple[bytes, bytes]]:
    cursor = 0
    while True:
        cursor, chunk = await redis.hscan(key, cursor, count=count)
        for k, v in chunk.items():
            yield k, v
        if cursor == 0:
            return


class EventSetState(Generic[I]):
    def __init__(self, redis: Redis, streams: Streams, service: str,
                 new_index: Callable[[], I], fold: Callable[[I, str, Any], I]) -> None:
        self.redis = redis
        self.streams = streams
        self.events_key = streams.state(service, "events")
        self.generation_key = streams.state(service, "generation")
        self.new_index, self.fold = new_index, fold
        self.index: I = new_index()
        self.generation: bytes | None = None
        self._lock = asyncio.Lock()

    async def changed(self, fresh: bool) -> None:
        """Called, under the lock, after the index may have changed (`fresh`: by this batch)."""

    # -- handlers (for `event_subscription`) ------------------------------------------------

    async def handle(self, event: CloudEvent, entry: Entry) -> list[tuple[str | bytes, ...]]:
        payload_of(event)  # refuse, before storing, what the fold could never use
        return [("HSET", self.events_key, event.key, entry.raw_event or to_json(event))]

    async def after_batch(self, applied: list[Applied]) -> None:
        async with self._lock:
            for a in applied:
                if a.fresh:
                    event = parse_event(a.entry)
                    self.fold(self.index, event.key, payload_of(event))
            await self._refresh()
            await self.changed(any(a.fresh for a in applied))

    # -- loading ----------------------------------------------------------------------------

    async def load(self) -> int:
        """Read the whole applied set from Redis into a fresh index."""
        async with self._lock:
            await self._load()
            await self.changed(False)
            return len(self.index.applied)

    async def _load(self) -> None:
        index = self.new_index()
        generation = await self.redis.get(self.generation_key)
        async for key, raw in hscan(self.redis, self.events_key):
            self.fold(index, key.decode(), CloudEvent.parse(raw).payload())
        self.index, self.generation = index, generation

    async def _refresh(self) -> bool:
        stored = await self.redis.hlen(self.events_key)
        generation = await self.redis.get(self.generation_key)
        if stored != len(self.index.applied) or generation != self.generation:
            log.info("state changed elsewhere; reloading", key=self.events_key, stored=stored,
                     known=len(self.index.applied))
            await self._load()
            return True
        return False

    async def start(self) -> None:
        """Load, then keep fresh in the background (a service's on_startup hook)."""
        await self.load()
        self._fresh_task = asyncio.create_task(self.keep_fresh())

    async def stop(self) -> None:
        task = getattr(self, "_fresh_task", None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def keep_fresh(self, interval: float = 2.0) -> None:
        """Pick up changes made elsewhere (another replica, a rebuild) even when idle."""
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._lock:
                    if await self._refresh():
                        await self.changed(False)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis away: next round
                log.exception("refresh failed; will retry")


class Published:
    """What a service last published for each entity it derives (an opportunity, a tender),
    and publishing a new version exactly once, even with several replicas racing: the version
    and its event are written together only if the last version is still the one we saw."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis, self.key = redis, key
        self._script = redis.register_script(
            resources.files("shared.bus").joinpath("publish_changed.lua").read_text(encoding="utf-8")
        )

    async def all(self) -> dict[str, dict[str, Any]]:
        return {k.decode(): json.loads(v) for k, v in (await self.redis.hgetall(self.key)).items()}

    async def publish(self, entity: str, expected: dict[str, Any] | None, new: dict[str, Any],
                      stream: str, event: CloudEvent | None = None, fields: dict[str, str | bytes] | None = None) -> bool:
        """Write `new` and append the entry (`event`, or raw `fields`) to `stream`, if the last
        version is still `expected`."""
        def dump(v: dict[str, Any] | None) -> str:
            return "" if v is None else json.dumps(v, sort_keys=True, separators=(",", ":"))

        entry = fields if fields is not None else {"event": to_json(event)} if event is not None else {}
        flat = [x for kv in entry.items() for x in kv]
        return bool(await self._script(keys=[self.key, stream], args=[entity, dump(expected), dump(new), *flat]))


@dataclass(frozen=True)
class Derived:
    """One entity a service derives and publishes: the event type for its first version and
    for later ones, and its payload (validated by `model`, which also shapes the JSON)."""

    first_type: str
    later_type: str
    payload: dict[str, Any]
    model: type[Payload]
    #: False for a one-off event in a contract type without a `revision` field: published
    #: once, with the entity as its id, never updated
    revisioned: bool = True


async def publish_changes(published: Published, streams: Streams, source: str, current: dict[str, Derived],
                          vanished: Callable[[str, dict[str, Any]], Derived | None] = lambda e, b: None) -> list[str]:
    """Publish every entity whose payload differs from what was last published (new ones at
    revision 0), and what `vanished` says for entities no longer derived. Event ids are
    `<entity>-r<revision>`: a version published twice counts once everywhere."""
    last = await published.all()
    done = []
    for entity in sorted(set(current) | set(last)):
        before = last.get(entity)
        derived = current.get(entity) or (vanished(entity, before) if before is not None else None)
        if derived is None or (before is not None and (before["payload"] == derived.payload or not derived.revisioned)):
            continue
        revision = 0 if before is None else before["revision"] + 1
        stamped = {**derived.payload, "revision": revision} if derived.revisioned else derived.payload
        data = derived.model.model_validate(stamped).model_dump(mode="json", exclude_none=not derived.revisioned)
        etype = derived.first_type if before is None else derived.later_type
        event = CloudEvent(specversion="1.0", id=f"{entity}-r{revision}" if derived.revisioned else entity,
                           source=source, type=etype, time=datetime.now(timezone.utc), data=data)
        if await published.publish(entity, before, {"revision": revision, "payload": derived.payload},
                                   streams.of_type(etype), event):
            done.append(entity)
    return done
