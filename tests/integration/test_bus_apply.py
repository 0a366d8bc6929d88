"""apply.lua, through `Bus.process` on a real Redis: a batch's effects and acks in one script.
Every entry applied is acked (together, at the end of the script); an entry that failed keeps
its error until a later delivery applies it, which clears the error."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from shared.bus import Bus, Effect, Entry, Subscription
from shared.streams import Streams

pytestmark = pytest.mark.integration


async def _read(client: Redis, stream: str, group: str) -> list[Entry]:
    [(_, rows)] = await client.xreadgroup(group, "c", {stream: ">"}, count=5000)
    return [Entry(stream, i.decode(), dict(d)) for i, d in rows]


def test_a_batch_of_every_size_is_applied_and_acked_whole(redis_url: str, prefix: str) -> None:
    async def run() -> None:
        client = Redis.from_url(redis_url)
        stream, group = f"{prefix}:work", "g"

        async def handle(entry: Entry) -> Effect:
            return Effect((("HINCRBY", f"{prefix}:counts", entry.id, 1),), once_key=entry.id)

        bus = Bus(client, Streams(prefix))
        sub = Subscription(group, stream, handle)
        await client.xgroup_create(stream, group, id="0", mkstream=True)
        try:
            for size in (1, 999, 1000, 1001, 2500):  # the acks go a thousand at a time
                for n in range(size):
                    await client.xadd(stream, {"n": n})
                entries = await _read(client, stream, group)
                applied = await bus.process(sub, entries)
                assert [a.entry.id for a in applied] == [e.id for e in entries]
                assert all(a.fresh for a in applied)
                assert (await client.xpending(stream, group))["pending"] == 0, size
            assert await client.hlen(f"{prefix}:counts") == 1 + 999 + 1000 + 1001 + 2500
            assert set(await client.hvals(f"{prefix}:counts")) == {b"1"}
        finally:
            await client.aclose()

    asyncio.run(run())


def test_an_entry_that_failed_keeps_its_error_until_a_later_delivery_applies_it(
    redis_url: str, prefix: str
) -> None:
    async def run() -> None:
        client = Redis.from_url(redis_url)
        stream, group = f"{prefix}:work", "g"
        errors = Streams(prefix).errors(group)
        failing = {"on": True}

        async def handle(entry: Entry) -> Effect:
            if entry.fields[b"n"] == b"1" and failing["on"]:
                raise RuntimeError("not yet")
            # the second entry's effect fails inside the script (HINCRBY on a string)
            key = f"{prefix}:text" if entry.fields[b"n"] == b"2" and failing["on"] else f"{prefix}:counts"
            return Effect((("HINCRBY", key, entry.id, 1),), once_key=entry.id)

        bus = Bus(client, Streams(prefix))
        sub = Subscription(group, stream, handle)
        await client.xgroup_create(stream, group, id="0", mkstream=True)
        await client.set(f"{prefix}:text", "a string")
        try:
            for n in range(4):
                await client.xadd(stream, {"n": n})
            entries = await _read(client, stream, group)
            applied = await bus.process(sub, entries)
            assert [a.entry.id for a in applied] == [entries[0].id, entries[3].id]
            recorded = await client.hgetall(errors)
            assert set(recorded) == {f"{stream}/{entries[i].id}".encode() for i in (1, 2)}
            assert (await client.xpending(stream, group))["pending"] == 2

            failing["on"] = False  # delivered again (as the sweep does): applied, errors cleared
            again = [Entry(stream, e.id, e.fields, deliveries=2) for e in entries[1:3]]
            applied = await bus.process(sub, again)
            assert [a.entry.id for a in applied] == [entries[1].id, entries[2].id]
            assert await client.hlen(errors) == 0
            assert (await client.xpending(stream, group))["pending"] == 0
            assert await client.hlen(f"{prefix}:counts") == 4
        finally:
            await client.aclose()

    asyncio.run(run())
