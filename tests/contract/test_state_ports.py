"""The StateStore, Versions and Backlog ports' contract (shared.ports), one suite run on both
adapters: in memory and on a real Redis."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.adapters.memory import MemoryBacklog, MemoryStateStore, MemoryStreams, MemoryVersions
from shared.adapters.redis import RedisBacklog, RedisStateStore, RedisVersions
from shared.ports import Followed, LogTrimmed, OnItsWay, Snapshot, StateStore, Versions, Way
from shared.redis_client import connect
from shared.streams import Streams
from tests.contract.aio import run


def _after(position: str) -> str:
    """A position after `position` and before any entry logged later (ids are `<ms>-<seq>`)."""
    ms, _, _seq = position.partition("-")
    return f"{int(ms) + 1}-0"


async def stored(store: StateStore) -> dict[str, bytes]:
    return {k: v async for k, v in store.scan()}


async def looked_apart(store: StateStore, position: str, count: int) -> Followed:
    """What `follow` (without an owner's question) sees, looked at with the other methods."""
    generation = await store.generation()
    try:
        last, keys, size = await store.since(position, count)
    except LogTrimmed:
        return Followed(generation, position, [], len(await stored(store)), True)
    return Followed(generation, last, keys, size, False)


class StateStoreContract:
    @pytest.fixture
    def store(self) -> Iterator[tuple[StateStore, Any]]:
        raise NotImplementedError

    def test_stored_events_are_scanned_got_and_followed_in_order(self, store: tuple[StateStore, Any]) -> None:
        events, apply = store
        assert run(events.position()) == "0-0" and run(stored(events)) == {}
        run(apply(events.store("a e1", b"1") + events.store("a e2", b"2")))
        start = run(events.position())
        run(apply(events.store("b e1", b"3")))
        assert run(stored(events)) == {"a e1": b"1", "a e2": b"2", "b e1": b"3"}
        assert run(events.get(["a e2", "nope"])) == [b"2", None]
        position, keys, size = run(events.since("0-0", 2))
        assert keys == ["a e1", "a e2"] and position == start and size == 3
        position, keys, _ = run(events.since(position, 10))
        assert keys == ["b e1"]
        assert run(events.since(position, 10)) == (position, [], 3), "nothing new: the position stays"
        for at, count in (("0-0", 2), ("0-0", 10), (start, 10), (position, 10)):
            assert run(events.follow(at, count)) == run(looked_apart(events, at, count)), (at, count)
        assert run(events.follow(start, 10)).keys == ["b e1"]

    def test_the_log_is_trimmed_and_a_reader_behind_the_trim_is_told(
        self, store: tuple[StateStore, Any]
    ) -> None:
        events, apply = store
        # a new log trimmed (retention runs from the start): nothing was below, nobody is behind
        run(events.trim(_after(f"{int(time.time() * 1000)}-0")))
        assert run(events.position()) == "0-0"
        assert run(events.follow("0-0", 10)).trimmed is False
        run(apply(events.store("a e1", b"1")))
        behind = run(events.position())
        time.sleep(0.002)  # on Redis an entry's id is its millisecond: the log is trimmed by those
        run(apply(events.store("a e2", b"2")))
        time.sleep(0.002)
        run(apply(events.store("a e3", b"3")))
        last = run(events.position())
        assert run(events.trim(last)) == 2, "entries before the position given are dropped"
        with pytest.raises(LogTrimmed):
            run(events.since(behind, 10))  # a e2 was after it, and is gone
        assert run(events.follow(behind, 10)) == Followed(run(events.generation()), behind, [], 3, True), (
            "follow says so rather than raising"
        )
        assert run(events.follow(last, 10)) == Followed(run(events.generation()), last, [], 3, False)
        assert run(events.since(last, 10)) == (last, [], 3), "a reader at the trim point misses nothing"
        assert run(stored(events)) == {"a e1": b"1", "a e2": b"2", "a e3": b"3"}, "the set keeps every event"
        run(events.trim(_after(last)))
        assert run(events.position()) == _after(last), "an empty log's position is where it was trimmed to"
        assert run(events.since(run(events.position()), 10))[1] == []
        run(apply(events.store("a e4", b"4")))
        assert run(events.since(run(events.position()), 10))[1] == []

    def test_storing_an_event_again_keeps_one(self, store: tuple[StateStore, Any]) -> None:
        events, apply = store
        run(apply(events.store("a e1", b"1")))
        run(apply(events.store("a e1", b"1")))
        assert run(stored(events)) == {"a e1": b"1"}
        assert run(events.since("0-0", 10))[2] == 1, "the set counts it once (its log twice)"

    def test_the_newest_snapshot_of_a_generation_stands(self, store: tuple[StateStore, Any]) -> None:
        events, _ = store
        assert run(events.snapshot()) is None
        assert run(events.save_snapshot(Snapshot(b"at 5", "5-1", b"1")))
        assert run(events.snapshot()) == Snapshot(b"at 5", "5-1", b"1")
        assert not run(events.save_snapshot(Snapshot(b"at 5-0", "5-0", b"1"))), "older, same generation"
        assert not run(events.save_snapshot(Snapshot(b"at 4", "4-9", b"1")))
        assert run(events.snapshot()) == Snapshot(b"at 5", "5-1", b"1")
        assert run(events.save_snapshot(Snapshot(b"at 12", "12-0", b"1"))), "numbers, not text: 12 after 5"
        assert run(events.save_snapshot(Snapshot(b"rebuilt", "3-0", b"2"))), "a new generation replaces it"
        assert run(events.snapshot()) == Snapshot(b"rebuilt", "3-0", b"2")
        assert run(events.save_snapshot(Snapshot(b"\x00" * 100_000, "0-0", None)))
        assert run(events.snapshot()) == Snapshot(b"\x00" * 100_000, "0-0", None), "bytes kept as they are"


class VersionsContract:
    stream = "s"

    @pytest.fixture
    def versions(self) -> Iterator[tuple[Versions, Any]]:
        raise NotImplementedError

    def test_a_version_is_published_once_and_only_over_the_one_seen(
        self, versions: tuple[Versions, Any]
    ) -> None:
        v, entries = versions
        first = {"revision": 0, "payload": {"x": 1}}
        assert run(v.publish("e", None, first, self.stream, {"event": "r0"}))
        assert not run(v.publish("e", None, first, self.stream, {"event": "r0"})), (
            "a replica that saw nothing"
        )
        assert run(v.all()) == {"e": first}
        second = {"revision": 1, "payload": {"x": 2}}
        assert run(v.publish("e", first, second, self.stream, {"event": "r1"}))
        assert not run(
            v.publish("e", first, {"revision": 1, "payload": {"x": 3}}, self.stream, {"event": "r1b"})
        )
        assert run(v.all()) == {"e": second}
        assert run(entries()) == ["r0", "r1"]


class TestInMemory(StateStoreContract, VersionsContract):
    @pytest.fixture
    def store(self) -> Iterator[tuple[StateStore, Any]]:
        memory = MemoryStateStore(MemoryStreams())
        yield memory, memory.apply

    @pytest.fixture
    def versions(self) -> Iterator[tuple[Versions, Any]]:
        world = MemoryStreams()

        async def entries() -> list[Any]:
            return [e["event"] for e in world.of(self.stream)]

        yield MemoryVersions(world), entries

    def test_backlog_reports_what_was_set(self) -> None:
        backlog = MemoryBacklog()
        assert run(backlog.earliest_unhandled("s", "g")) is None and not run(backlog.behind(["s"]))
        backlog.unacked[("s", "g")] = [("12-0", ""), ("3-1", "2-0")]
        assert run(backlog.earliest_unhandled("s", "g")) == ("3-1", "2-0") and run(backlog.behind(["s", "t"]))
        assert run(backlog.unread("r", "g", 2)) == [] and not run(backlog.behind(["r"]))
        assert run(backlog.on_its_way(Way("s", "g", "r", "g", 2))) == OnItsWay(("3-1", "2-0"), [], None)
        backlog.unread_by[("r", "g")] = [("5-0", "9-0"), ("6-0", "")]
        assert run(backlog.unread("r", "g", 2)) == [("5-0", "9-0"), ("6-0", "")] and run(
            backlog.behind(["r"])
        )
        assert run(backlog.unread("r", "g", 1)) is None, "more than the limit"

    def test_the_unhandled_request_is_the_one_that_arrived_first(self) -> None:
        backlog = MemoryBacklog()
        backlog.unacked[("r", "o")] = [("3-0", "9-0"), ("4-0", "5-0"), ("6-0", "")]
        assert run(backlog.earliest_unhandled("r", "o")) == ("4-0", "5-0")
        assert run(backlog.on_its_way(Way("s", "gw", "r", "o", 3))).unhandled == ("4-0", "5-0")
        assert run(backlog.on_its_way(Way("s", "gw", "r", "o", 2))).unhandled == ("0-0", ""), "over the limit"

    def test_an_owners_follow_sees_what_is_on_its_way_with_the_log(self) -> None:
        backlog = MemoryBacklog()
        store = MemoryStateStore(MemoryStreams(), backlog=backlog)
        run(store.apply(store.store("a e1", b"1")))
        backlog.unacked[("s", "gw")] = [("3-1", "")]
        backlog.unread_by[("r", "o")] = [("5-0", "4-0")]
        way = Way("s", "gw", "r", "o", 2)
        followed = run(store.follow("0-0", 10, way))
        assert (
            followed.way
            == run(backlog.on_its_way(Way("s", "gw", "r", "o", 2)))
            == OnItsWay(("3-1", ""), [("5-0", "4-0")], None)
        )
        assert followed.keys == ["a e1"] and followed.size == 1
        with pytest.raises(ValueError, match="backlog"):
            run(MemoryStateStore(MemoryStreams()).follow("0-0", 10, way))


class TestRedis(StateStoreContract, VersionsContract):
    @pytest.fixture
    def store(self, redis_url: str, prefix: str) -> Iterator[tuple[StateStore, Any]]:
        client = connect(redis_url)
        redis_store = RedisStateStore(client, Streams(prefix), "svc")
        yield redis_store, redis_store.apply
        run(client.aclose())

    @pytest.fixture
    def versions(self, redis_url: str, prefix: str) -> Iterator[tuple[Versions, Any]]:
        client = connect(redis_url)
        stream = f"{prefix}:{self.stream}"
        self.stream = stream

        async def entries() -> list[Any]:
            return [f[b"event"].decode() for _, f in await client.xrange(stream)]

        yield RedisVersions(client, f"{prefix}:versions"), entries
        run(client.aclose())

    def test_backlog_is_read_from_the_consumer_groups(self, redis_url: str, prefix: str) -> None:
        client = connect(redis_url)
        backlog, stream = RedisBacklog(client), f"{prefix}:requests"

        async def scenario() -> None:
            assert await backlog.earliest_unhandled(stream, "g") is None, "no group yet"
            assert await backlog.unread(stream, "g", 10) == [], "no stream yet"
            first = (await client.xadd(stream, {"event": "1", "inbound_id": "7-0"})).decode()
            second = (await client.xadd(stream, {"event": "2"})).decode()
            assert await backlog.unread(stream, "g", 10) == [(first, "7-0"), (second, "")], (
                "no group: all unread"
            )
            await client.xgroup_create(stream, "g", id="0")
            assert await backlog.behind([stream]), "unread entries"
            assert await backlog.earliest_unhandled(stream, "g") is None, "nothing read yet"
            assert await backlog.unread(stream, "g", 1) is None, "more unread than the limit"
            await client.xreadgroup("g", "c", {stream: ">"}, count=1)
            assert await backlog.earliest_unhandled(stream, "g") == (first, "7-0")
            assert await backlog.unread(stream, "g", 1) == [(second, "")], "what the group has not read"
            await client.xreadgroup("g", "c", {stream: ">"})
            await client.xack(stream, "g", first)
            assert await backlog.behind([stream])
            pending = await client.xpending(stream, "g")
            await client.xack(stream, "g", pending["min"])
            assert not await backlog.behind([stream])
            await client.aclose()

        run(scenario())

    def test_the_unhandled_request_is_the_one_that_arrived_first(self, redis_url: str, prefix: str) -> None:
        """Gateways forward in parallel: a request forwarded later may have arrived earlier.
        What holds an owner's later requests is the earliest arrival read and not stored, not
        the least entry id."""
        client = connect(redis_url)
        backlog, inbound, requests = RedisBacklog(client), f"{prefix}:inbound", f"{prefix}:requests"
        store = RedisStateStore(client, Streams(prefix), "o", backlog)

        async def scenario() -> None:
            late = (await client.xadd(requests, {"event": "1", "inbound_id": "9-0"})).decode()
            early = (await client.xadd(requests, {"event": "2", "inbound_id": "5-0"})).decode()
            http = (await client.xadd(requests, {"event": "3"})).decode()  # over HTTP: arrives as its id
            await client.xgroup_create(requests, "o", id="0")
            await client.xreadgroup("o", "c", {requests: ">"})
            assert await backlog.earliest_unhandled(requests, "o") == (early, "5-0")
            way = Way(inbound, "gw", requests, "o", 3)
            assert (await backlog.on_its_way(way)).unhandled == (early, "5-0")
            assert (await store.follow("0-0", 10, way)).way.unhandled == (early, "5-0")  # type: ignore[union-attr]
            over = Way(inbound, "gw", requests, "o", 2)
            assert (await backlog.on_its_way(over)).unhandled == ("0-0", ""), "more than it looks at"
            await client.xack(requests, "o", early)
            assert (await backlog.on_its_way(way)).unhandled == (late, "9-0")
            assert await backlog.earliest_unhandled(requests, "o") == (late, "9-0")
            # mostly acknowledged between the first and the last unacknowledged: read one by one
            more = [(await client.xadd(requests, {"event": "m", "inbound_id": f"{8 - n}-0"})).decode()
                    for n in range(4)]
            await client.xreadgroup("o", "c", {requests: ">"})
            await client.xack(requests, "o", http, *more[:3])
            assert (await backlog.on_its_way(way)).unhandled == (more[3], "5-0")
            assert await backlog.earliest_unhandled(requests, "o") == (more[3], "5-0")
            await client.aclose()

        run(scenario())

    def test_a_group_made_again_is_looked_at_afresh(self, redis_url: str, prefix: str) -> None:
        client = connect(redis_url)
        backlog, inbound, requests = RedisBacklog(client), f"{prefix}:inbound", f"{prefix}:requests"

        async def scenario() -> None:
            ids = [(await client.xadd(requests, {"event": str(n)})).decode() for n in range(3)]
            await client.xgroup_create(requests, "o", id="0")
            await client.xreadgroup("o", "c", {requests: ">"}, count=1)
            way = await backlog.on_its_way(Way(inbound, "gw", requests, "o", 3))
            assert way.unread == [(ids[1], ""), (ids[2], "")], "seen, and kept for the next look"
            await client.xgroup_destroy(requests, "o")
            await client.xgroup_create(requests, "o", id="0")  # nothing read by the new group
            way = await backlog.on_its_way(Way(inbound, "gw", requests, "o", 3))
            assert way.unread == [(i, "") for i in ids] == await backlog.unread(requests, "o", 3)
            await client.aclose()

        run(scenario())

    def test_what_is_on_its_way_is_the_three_looks_in_one(self, redis_url: str, prefix: str) -> None:
        client = connect(redis_url)
        backlog, inbound, requests = RedisBacklog(client), f"{prefix}:inbound", f"{prefix}:requests"
        store = RedisStateStore(client, Streams(prefix), "o", backlog)
        stored_at = "0-0"

        async def on_its_way() -> OnItsWay:
            """Backlog.on_its_way, checked against the owner's follow: the same look, and the
            log as `since` gives it."""
            way = await backlog.on_its_way(Way(inbound, "gw", requests, "o", 2))
            followed = await store.follow(stored_at, 10, Way(inbound, "gw", requests, "o", 2))
            assert followed.way == way
            assert dataclasses.replace(followed, way=None) == await looked_apart(store, stored_at, 10)
            return way

        async def looks() -> OnItsWay:
            return OnItsWay(
                await backlog.earliest_unhandled(inbound, "gw"),
                await backlog.unread(requests, "o", 2),
                await backlog.earliest_unhandled(requests, "o"),
            )

        async def scenario() -> None:
            way = await on_its_way()
            assert way == OnItsWay(None, [], None), "no streams yet: nothing on its way"
            first = (await client.xadd(inbound, {"event": "1"})).decode()
            await client.xgroup_create(inbound, "gw", id="0")
            await client.xreadgroup("gw", "c", {inbound: ">"})
            r1 = (await client.xadd(requests, {"event": "1", "inbound_id": first})).decode()
            way = await on_its_way()
            assert way == OnItsWay((first, ""), [(r1, first)], None), "no group on the requests: all unread"
            await client.xgroup_create(requests, "o", id="0")
            await store.apply(store.store("a e1", b"1") + store.store("a e2", b"2"))
            await client.set(store.generation_key, "7")
            r2 = (await client.xadd(requests, {"event": "2", "inbound_id": "9-0"})).decode()
            r3 = (await client.xadd(requests, {"event": "3"})).decode()
            assert (await on_its_way()).unread is None, "over the limit"
            await client.xreadgroup("o", "c", {requests: ">"}, count=1)
            way = await on_its_way()
            assert way == OnItsWay((first, ""), [(r2, "9-0"), (r3, "")], (r1, first)) == await looks()
            await client.xack(inbound, "gw", first)
            await client.xreadgroup("o", "c", {requests: ">"})
            await client.xack(requests, "o", r3)
            way = await on_its_way()
            # r2 was forwarded after r1, but its inbound entry is older: it arrived first
            assert way == OnItsWay(None, [], (r2, "9-0")) == await looks()
            await client.aclose()

        run(scenario())
