"""`RedisEntries.events` (shared/adapters/redis.py), as a rebuild reads every event: a stream's
entries in order, a chunk at a time, each as its id and its event, the same as redis-py's XRANGE
gives them; through Redis's reply as sent (a client of its own on the same connections) and, as
on Redis Cluster, through a client it does not know. (tests/contract/test_entries.py holds the
port's contract on both adapters.)"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from shared.adapters.redis import RedisEntries, event_of
from shared.redis_client import connect

pytestmark = pytest.mark.integration


class _Other:
    """A client that is not redis-py's `Redis` (as the cluster client is not): XRANGE only."""

    def __init__(self, redis: Redis) -> None:
        self.xrange = redis.xrange


@pytest.mark.parametrize("through", ["redis", "other"])
def test_every_entry_read_in_order_with_its_event(redis_url: str, prefix: str, through: str) -> None:
    async def run() -> None:
        client = connect(redis_url)
        stream = f"{prefix}:need.identified"
        rows = [{"event": f'{{"n":{n}}}'.encode()} for n in range(2500)]
        rows[7] = {"other": b"x", "event": b'{"n":7}'}  # the event not first
        rows[8] = {"other": b"y"}  # no event at all
        ids = [(await client.xadd(stream, row)) for row in rows]  # type: ignore[arg-type]
        reader = RedisEntries(client if through == "redis" else _Other(client))  # type: ignore[arg-type]
        try:
            read, after = [], "-"
            while chunk := await reader.events(stream, after, 1000):
                assert len(chunk) <= 1000
                read += chunk
                after = chunk[-1][0]
            expected = await client.xrange(stream)
            assert [entry_id for entry_id, _ in read] == [i.decode() for i in ids]
            assert [event for _, event in read] == [f.get(b"event") for _, f in expected]
            assert [event for _, event in read] == [row.get("event") for row in rows]
            # from an id: what follows it, not the entry itself
            later = await reader.events(stream, ids[2497].decode(), 1000)
            assert [entry_id for entry_id, _ in later] == [i.decode() for i in ids[2498:]]
            assert await reader.events(stream, ids[-1].decode(), 1000) == []
        finally:
            await client.delete(stream)
            await client.aclose()

    asyncio.run(run())


def test_no_event_in_no_fields() -> None:
    assert event_of([]) is None
    assert event_of([b"event", b"{}"]) == b"{}"
    assert event_of([b"a", b"1", b"event", b"{}", b"event", b"[]"]) == b"{}"
    assert event_of([b"a", b"event"]) is None  # a value named "event" is not the field
