"""`COMMISSIONING_LINGER_MS` (shared.bus `Bus.linger_ms`): after a batch smaller than the
batch size, a subscriber waits that long before its next read, so a steady trickle of entries
is read in batches of several rather than one read, one script call and one recompute per
entry. An entry that arrives while the subscriber is idle is still read at once."""

from __future__ import annotations

import asyncio
import time

import pytest
from faststream.redis import RedisBroker, RedisRouter
from redis.asyncio import Redis

from shared.bus import Applied, Bus, Effect, Entry, Subscription
from shared.streams import Streams

pytestmark = pytest.mark.integration


async def _trickle(redis_url: str, prefix: str, linger_ms: float) -> tuple[list[int], float]:
    """12 entries, one every 25 ms, through a real FastStream subscriber: the size of each batch
    it handed over, and how long the first entry (sent to an idle subscriber) took to be applied."""
    client = Redis.from_url(redis_url)
    stream = f"{prefix}:trickle-{linger_ms}"
    sizes: list[int] = []
    first_applied = asyncio.Event()

    async def handle(entry: Entry) -> Effect:
        return Effect((("HINCRBY", f"{stream}:counts", entry.id, 1),), once_key=entry.id)

    async def after_batch(applied: list[Applied]) -> None:
        sizes.append(len(applied))
        first_applied.set()

    bus = Bus(client, Streams(prefix), batch_size=500, block_ms=100, linger_ms=linger_ms)
    bus.add(Subscription("trickle", stream, handle, after_batch))
    await bus.ensure_groups()
    broker = RedisBroker(redis_url, logger=None)
    router = RedisRouter()
    bus.register(router)
    broker.include_router(router)
    await broker.start()
    try:
        await asyncio.sleep(0.3)  # the subscriber is blocked in its read: idle
        sent = time.perf_counter()
        await client.xadd(stream, {"n": 0})
        await asyncio.wait_for(first_applied.wait(), 5)
        idle_latency = time.perf_counter() - sent
        for n in range(1, 12):
            await asyncio.sleep(0.025)
            await client.xadd(stream, {"n": n})
        for _ in range(100):
            if sum(sizes) == 12:
                break
            await asyncio.sleep(0.05)
    finally:
        await broker.stop()
        await client.aclose()
    assert sum(sizes) == 12, sizes
    return sizes, idle_latency


def test_a_trickle_is_read_in_batches_when_the_subscriber_lingers(redis_url: str, prefix: str) -> None:
    eager, eager_first = asyncio.run(_trickle(redis_url, prefix, 0))
    lingering, lingering_first = asyncio.run(_trickle(redis_url, prefix, 400))
    # without lingering each entry is read on its own (25 ms apart, each handled in far less)
    assert len(eager) >= 10, eager
    # lingering 400 ms after each small batch: the 11 entries after the first come in at most
    # two reads (275 ms of sending)
    assert len(lingering) <= 3 and max(lingering) >= 6, lingering
    # and an entry sent to an idle subscriber is not held back by the linger
    assert lingering_first < 0.2 and eager_first < 0.2, (lingering_first, eager_first)
