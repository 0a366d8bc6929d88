"""The UpdateLog port's contract (shared.ports), one suite run on both adapters: in memory
(`TestInMemory`) and on a real Redis (`TestRedis`): a stream of updates and each item's version
as the updates last showed it, appended and recorded together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.adapters.memory import MemoryStreams, memory_ports
from shared.adapters.redis import redis_ports
from shared.ports import UpdateLog
from shared.redis_client import connect
from shared.streams import Streams
from tests.contract.aio import run


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

    def test_the_newest_entry_and_those_after_one(self, log: UpdateLog) -> None:
        assert run(log.newest()) is None
        ids = [run(log.append([f'{{"n":{n}}}'.encode()], {}, [])) for n in range(3)]
        assert run(log.newest()) == (ids[2], b'{"n":2}')
        assert run(log.after(ids[0], 0, 10)) == [(ids[1], b'{"n":1}'), (ids[2], b'{"n":2}')]
        assert run(log.after(ids[0], 0, 1)) == [(ids[1], b'{"n":1}')]
        assert run(log.after("0-0", 0, 10))[0] == (ids[0], b'{"n":0}')
        assert run(log.after(ids[2], 0, 10)) == []

    def test_a_reader_waiting_after_the_newest_gets_the_next_as_it_is_appended(self, log: UpdateLog) -> None:
        last = run(log.append([b'{"n":0}'], {}, []))

        async def later() -> str:
            await asyncio.sleep(0.1)
            return await log.append([b'{"n":1}'], {}, [])

        started = time.monotonic()
        async def both() -> list[Any]:
            return list(await asyncio.gather(log.after(last, 5_000, 10), later()))

        got, appended = run(both())
        assert got == [(appended, b'{"n":1}')] and time.monotonic() - started < 2
        started = time.monotonic()
        assert run(log.after(appended, 150, 10)) == [], "nothing came"
        assert time.monotonic() - started >= 0.1, "it waited"

    def test_entries_trimmed_away_after_an_id_are_told(self, log: UpdateLog) -> None:
        first = run(log.append([b'{"n":0}'], {}, []))
        assert not run(log.lost_after(first)) and not run(log.lost_after("0-0"))
        for n in range(4 * self.kept):
            last = run(log.append([f'{{"n":{n}}}'.encode()], {}, []))
        assert run(log.lost_after(first)), "what came after it was trimmed"
        assert not run(log.lost_after(last)) and not run(log.lost_after("0-0"))

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
