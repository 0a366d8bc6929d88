"""The UpdateLog port's contract (shared.ports), one suite run on both adapters: in memory
(`TestInMemory`) and on a real Redis (`TestRedis`): a stream of updates and each item's version
as the updates last showed it, appended and recorded together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest

from shared.adapters.memory import MemoryStreams, memory_ports
from shared.adapters.redis import redis_ports
from shared.ports import UpdateLog
from shared.redis_client import connect
from shared.streams import Streams

#: one loop for the module (the Redis adapter's connections belong to it)
LOOP = asyncio.new_event_loop()


def run(coro: Awaitable[Any]) -> Any:
    return LOOP.run_until_complete(coro)


class UpdateLogContract:
    streams: Streams
    kept = 100

    @pytest.fixture
    def log(self) -> Iterator[UpdateLog]:
        raise NotImplementedError

    def test_nothing_shown_before_the_first_update(self, log: UpdateLog) -> None:
        assert run(log.shown()) == ({}, None)

    def test_an_update_is_read_back_as_its_last_entry_with_the_versions_it_showed(
        self, log: UpdateLog
    ) -> None:
        first = run(log.append([b'{"n":1}'], {"c-1": b"one", "c-2": b"two"}, []))
        last = run(log.append([b'{"n":2}', b'{"n":3}'], {"c-2": b"two again"}, ["c-1"]))
        assert first != last
        assert run(log.shown()) == ({"c-2": b"two again"}, (last, b'{"n":3}')), (
            "the newest entry, each version as last shown, the removed gone"
        )

    def test_an_update_appends_at_least_one_entry(self, log: UpdateLog) -> None:
        with pytest.raises(ValueError, match="at least one"):
            run(log.append([], {"c-1": b"one"}, []))
        assert run(log.shown()) == ({}, None), "nothing recorded"

    def test_the_stream_keeps_about_its_newest_entries_and_every_version(self, log: UpdateLog) -> None:
        for n in range(4 * self.kept + 50):
            last = run(log.append([f'{{"n":{n}}}'.encode()], {f"c-{n % 300}": str(n).encode()}, []))
        shown, newest = run(log.shown())
        assert newest == (last, f'{{"n":{4 * self.kept + 49}}}'.encode())
        assert len(shown) == 300 and shown["c-0"] == b"300"
        assert self.kept <= self.entries() <= 2 * self.kept

    def entries(self) -> int:
        raise NotImplementedError


class TestInMemory(UpdateLogContract):
    streams = Streams("mem")

    @pytest.fixture
    def log(self) -> Iterator[UpdateLog]:
        self.world = MemoryStreams(self.streams)
        yield memory_ports(self.world).updates(self.streams.savings_updated, self.kept)

    def entries(self) -> int:
        return len(self.world.entries[self.streams.savings_updated])


class TestRedis(UpdateLogContract):
    @pytest.fixture
    def log(self, redis_url: str, prefix: str) -> Iterator[UpdateLog]:
        self.streams = Streams(prefix)
        self.client = connect(redis_url)
        yield redis_ports(self.client, self.streams, "savings").updates(
            self.streams.savings_updated, self.kept
        )
        run(self.client.aclose())

    def entries(self) -> int:
        return int(run(self.client.xlen(self.streams.savings_updated)))
