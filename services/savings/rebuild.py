"""`commissioning savings rebuild`: replay the streams into a fresh projection.

1. Read every accepted event of the types it uses from the archive (COMMISSIONING_ARCHIVE_DIR:
   what was trimmed from Redis, shared.archive) and then from its stream (XRANGE, in chunks,
   from where the archive ends) into new keys, showing progress, folding each into a fresh
   index as it goes; events the model cannot use are counted and left out, as the service
   would have dead-lettered them.
2. Swap the new keys in atomically (MULTI: RENAME both, bump the generation) so running
   savings processes reload.
3. Catch up: events appended while step 1 ran are applied through the same once-only step the
   service uses, so nothing that arrived meanwhile is lost or counted twice; the index takes
   them from the state's log. Its figures are computed and saved as the new generation's
   snapshot, which the running processes then reload from (the set is not read back).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from pydantic import ValidationError
from redis.asyncio import Redis

from services.savings.app import GROUP
from services.savings.projection import SNAPSHOT_EVERY_S, TYPES, Projection
from shared import collector
from shared.adapters.redis import RedisStateStore
from shared.archive import Archive
from shared.bus import Bus, Effect
from shared.decode import Decoded, decode_once
from shared.progress import Progress
from shared.settings import savings_policy
from shared.streams import Streams

CHUNK = 2000


def _parse(raw: bytes | None) -> Decoded | None:
    """The event, typed (shared.decode), or None for an entry that is not one of the contract's."""
    if raw is None:
        return None
    try:
        return decode_once(raw)
    except ValidationError:
        return None


# The rebuilt set and ids in place of the old, and the generation moved on, in one step (a
# script with every key declared: on Redis Cluster, where a partnership's keys share a slot,
# the cluster client refuses RENAME in a transaction).
# KEYS[1] rebuilt events, KEYS[2] rebuilt ids, KEYS[3] events, KEYS[4] ids, KEYS[5] generation
SWAP = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[3])
  redis.call('RENAME', KEYS[2], KEYS[4])
else
  redis.call('DEL', KEYS[3], KEYS[4])
end
return redis.call('INCR', KEYS[5])
"""


class _Writes:
    """The rebuilt set and its idempotency marks, written a chunk at a time: one HSET and one
    ZADD for the chunk (a command per event cost a fifth of the rebuild, most of it redis-py
    putting each command together), in flight while the next chunk is read and folded (Redis
    works on another core meanwhile)."""

    def __init__(self, redis: Redis, events: str, seen: str, now_ms: int) -> None:
        self.redis, self.events, self.seen, self.now_ms = redis, events, seen, now_ms
        self._flight: asyncio.Task[None] | None = None

    async def add(self, written: dict[str, bytes]) -> None:
        """Write `written` (key -> the event's bytes; the caller no longer changes it), once
        the chunk before it is written."""
        await self.drain()
        if written:
            self._flight = asyncio.create_task(self._write(written))

    async def drain(self) -> None:
        """Wait for what is in flight (its failure raised here)."""
        flight, self._flight = self._flight, None
        if flight is not None:
            await flight

    def cancel(self) -> None:
        """Give up what is in flight (the rebuild failed: its keys are written again next time)."""
        if self._flight is not None:
            self._flight.cancel()

    async def _write(self, written: dict[str, bytes]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.events, mapping=written)  # type: ignore[arg-type]
            pipe.zadd(self.seen, dict.fromkeys(written, self.now_ms))
            await pipe.execute()


def same_figures(
    before: dict[str, Any], summary: dict[str, Any], document: Callable[[], dict[str, Any]]
) -> bool:
    """Whether the whole document `before` equals the one now: its figures but the tables
    (`summary`) first, then the `document` whole, put together only when those are the same (its
    tables took 7 s at 1,000,000 events, and a rebuild into a fresh projection never needs them)."""
    return {k: before.get(k) for k in summary} == summary and before == document()


async def rebuild(
    redis: Redis,
    streams: Streams,
    out: TextIO = sys.stderr,
    archive: Archive | None = None,
    snapshot_every_s: float = SNAPSHOT_EVERY_S,
) -> dict[str, Any]:
    projection = Projection(redis, streams, savings_policy(), snapshot_every_s=snapshot_every_s)
    projection.pace_snapshots = False  # nothing else runs in this process
    await projection.load()
    before = projection.figures

    store = RedisStateStore(redis, streams, "savings")
    events_tmp = store.events_key + ":rebuild"
    seen_tmp = streams.seen(GROUP) + ":rebuild"
    await redis.delete(events_tmp, seen_tmp)
    now_ms = int(time.time() * 1000)  # the idempotency window of the rebuilt events starts now
    keys = {t: streams.of_type(t) for t in TYPES}
    total = sum([await redis.xlen(k) for k in keys.values()])
    progress = Progress(total, "rebuild: events replayed", out)
    last: dict[str, str] = {}
    done = skipped = archived = 0
    index = projection.new_index()
    fold = projection.fold
    writes = _Writes(redis, events_tmp, seen_tmp, now_ms)
    reading: asyncio.Task[Any] | None = None
    # no collection while the state is read whole (shared.collector: each would scan again the
    # millions of objects read so far, all of which stay)
    with collector.paused():
        try:
            for stream in keys.values():
                start = "-"
                # the archive first (what was trimmed from Redis), then the stream from where it ends
                written: dict[str, bytes] = {}  # a chunk's events, written in two commands
                for entry_id, raw in archive.read(stream) if archive is not None else ():
                    start = "(" + entry_id
                    event = _parse(raw)
                    if event is None:
                        skipped += 1
                        continue
                    written[event.key] = raw
                    fold(index, event.key, event.payload())
                    archived += 1
                    if len(written) >= CHUNK:
                        await writes.add(written)
                        written = {}
                await writes.add(written)
                # the next chunk is read while this one is folded
                reading = asyncio.create_task(redis.xrange(stream, min=start, max="+", count=CHUNK))
                while chunk := await reading:
                    last[stream] = chunk[-1][0].decode()
                    reading = asyncio.create_task(
                        redis.xrange(stream, min="(" + last[stream], max="+", count=CHUNK)
                    )
                    written = {}
                    for _, fields in chunk:
                        event = _parse(fields.get(b"event"))
                        if event is None:
                            skipped += 1
                            continue
                        written[event.key] = fields[b"event"]
                        fold(index, event.key, event.payload())
                    await writes.add(written)
                    done += len(chunk)
                    progress.update(done)
            await writes.drain()
        finally:
            writes.cancel()
            if reading is not None:
                reading.cancel()
    elapsed = progress.finish()

    swap = redis.register_script(SWAP)
    position = await store.position()  # what is logged after it is folded from the log
    await swap(keys=[events_tmp, seen_tmp, store.events_key, streams.seen(GROUP), store.generation_key])

    bus = Bus(redis, streams)
    caught_up = 0
    for stream in keys.values():
        start = "(" + last[stream] if stream in last else "-"
        for _, fields in await redis.xrange(stream, min=start, max="+"):
            event = _parse(fields.get(b"event"))
            if event is not None and await bus.apply_now(
                GROUP, Effect(tuple(projection.store(event.key, fields[b"event"])), once_key=event.key)
            ):
                caught_up += 1

    with collector.paused():
        await projection.adopt(index, position)
    await projection.save_snapshot()  # for the new generation: processes that reload start from it
    after = projection.summary  # the figures but their tables
    unchanged = same_figures(before, after, lambda: projection.figures)
    return {
        "entries_read": done,
        "archived_read": archived,
        "events": after["events_applied"],
        "skipped": skipped,
        "caught_up": caught_up,
        "seconds": round(elapsed, 3),
        "unchanged": unchanged,
        "portfolio": after["portfolio"],
        "before": before["portfolio"],
    }
