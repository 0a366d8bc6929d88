"""The Entries, ArchiveMarks and Rebuilt ports' contract (shared.ports), one suite run on both
adapters: in memory (`TestInMemory`) and on a real Redis (`TestRedis`). Entries: the project's
streams read in order outside any group (a rebuild, the archive, the workspace, the dashboard's
newest events). ArchiveMarks: where each stream's archive stands and who is archiving it.
Rebuilt: a service's set of applied events written again beside the live one, then put in
place with its group's once-keys in one step."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from shared.adapters.memory import MemoryDelivery, MemoryStreams, memory_ports
from shared.adapters.redis import RedisDelivery, redis_ports
from shared.ports import Delivery, Ports, Settling
from shared.redis_client import connect
from shared.streams import Streams
from tests.contract.aio import run

GROUP = "savings"


class EntriesContract:
    streams: Streams
    ports: Ports
    delivery: Delivery

    @pytest.fixture
    def adapters(self) -> Iterator[None]:
        raise NotImplementedError

    def add(self, stream: str, fields: dict[str, bytes]) -> str:
        raise NotImplementedError

    def once(self, key: str) -> bool:
        """Whether an act with this once-key is applied now (False: the group settled it before)."""
        [fresh] = run(self.delivery.settle(GROUP, None, [Settling(None, [], once_key=key)]))
        return bool(fresh)

    # -- Entries ---------------------------------------------------------------------------

    def test_a_stream_is_read_in_order_a_chunk_at_a_time_each_entry_with_its_event(
        self, adapters: None
    ) -> None:
        stream = self.streams.of_type("need.identified")
        rows = [{"event": f'{{"n":{n}}}'.encode()} for n in range(25)]
        rows[7] = {"other": b"x", "event": b'{"n":7}'}  # the event not first
        rows[8] = {"other": b"y"}  # no event at all
        ids = [self.add(stream, row) for row in rows]
        entries = self.ports.entries
        read, after = [], "-"
        while chunk := run(entries.events(stream, after, 10)):
            assert len(chunk) <= 10
            read += chunk
            after = chunk[-1][0]
        assert [entry_id for entry_id, _ in read] == ids
        assert [event for _, event in read] == [row.get("event") for row in rows]
        assert [i for i, _ in run(entries.events(stream, ids[21], 10))] == ids[22:], "after it, not it"
        assert run(entries.events(stream, ids[-1], 10)) == []
        assert run(entries.events(self.streams.of_type("tender.awarded"), "-", 10)) == [], "no stream"

    def test_events_stop_below_an_id_when_asked(self, adapters: None) -> None:
        stream = self.streams.of_type("need.identified")
        ids = [self.add(stream, {"event": str(n).encode()}) for n in range(10)]
        below = run(self.ports.entries.events(stream, "-", 100, below=ids[6]))
        assert [i for i, _ in below] == ids[:6], "below it, not it"
        assert [i for i, _ in run(self.ports.entries.events(stream, ids[2], 2, below=ids[6]))] == ids[3:5]
        assert run(self.ports.entries.events(stream, ids[5], 100, below=ids[6])) == []

    def test_a_streams_length_is_the_entries_it_holds(self, adapters: None) -> None:
        stream = self.streams.of_type("tender.awarded")
        assert run(self.ports.entries.length(stream)) == 0
        for n in range(3):
            self.add(stream, {"event": str(n).encode()})
        assert run(self.ports.entries.length(stream)) == 3

    def test_the_newest_come_first_with_all_their_fields_before_an_id(self, adapters: None) -> None:
        stream = self.streams.rejected("a-cc")
        rows = [
            {"event": str(n).encode(), "reason": b"{}", "inbound_id": f"{n}-1".encode()} for n in range(8)
        ]
        ids = [self.add(stream, row) for row in rows]
        rows = [{k.encode(): v for k, v in row.items()} for row in rows]  # as read: bytes
        newest = run(self.ports.entries.newest(stream, "+", 3))
        assert newest == [(ids[n], rows[n]) for n in (7, 6, 5)]
        before = run(self.ports.entries.newest(stream, ids[5], 3))
        assert before == [(ids[n], rows[n]) for n in (4, 3, 2)], "before it, not it"
        assert [i for i, _ in run(self.ports.entries.newest(stream, ids[1], 10))] == [ids[0]]
        assert run(self.ports.entries.newest(self.streams.rejected("b-dc"), "+", 3)) == []

    # -- ArchiveMarks ----------------------------------------------------------------------

    def test_one_process_holds_a_stream_to_archive_until_it_lets_go(self, adapters: None) -> None:
        marks, stream = self.ports.archive, self.streams.of_type("need.identified")
        assert run(marks.hold(stream, "one", 60_000))
        assert not run(marks.hold(stream, "two", 60_000)), "held by another"
        assert run(marks.hold(self.streams.of_type("tender.awarded"), "two", 60_000)), "each stream its own"
        run(marks.release(stream))
        assert run(marks.hold(stream, "two", 60_000))

    def test_a_hold_lapses_after_its_time(self, adapters: None) -> None:
        marks, stream = self.ports.archive, self.streams.of_type("need.identified")
        assert run(marks.hold(stream, "died", 50))
        time.sleep(0.12)
        assert run(marks.hold(stream, "next", 60_000)), "a process that died does not keep it"

    def test_the_mark_is_the_last_id_archived(self, adapters: None) -> None:
        marks, stream = self.ports.archive, self.streams.of_type("need.identified")
        assert run(marks.archived(stream)) == "0-0"
        run(marks.mark(stream, "12-3"))
        assert run(marks.archived(stream)) == "12-3"
        assert run(marks.archived(self.streams.of_type("tender.awarded"))) == "0-0"

    # -- Rebuilt ---------------------------------------------------------------------------

    def test_the_new_set_takes_the_live_ones_place_with_its_once_keys_and_a_new_generation(
        self, adapters: None
    ) -> None:
        state = self.ports.state
        run(state.apply(state.store("old", b"o")))  # type: ignore[attr-defined]
        assert self.once("old")
        before = run(state.generation())
        rebuilt = self.ports.rebuilt(GROUP)
        run(rebuilt.clear())
        run(rebuilt.add({"a": b"1", "b": b"2"}, 1_000))
        run(rebuilt.add({"c": b"3"}, 1_000))
        assert run(state.get(["old", "a"])) == [b"o", None], "nothing in place before it is put there"
        generation = run(rebuilt.put_in_place())
        assert generation == int(before or 0) + 1
        assert run(state.generation()) == str(generation).encode()
        assert run(state.get(["old", "a", "b", "c"])) == [None, b"1", b"2", b"3"]
        assert not self.once("a") and not self.once("c"), "the rebuilt events' once-keys are settled"
        assert self.once("old"), "the old once-keys are gone with the old set"

    def test_the_once_keys_written_again_are_kept_for_the_window_from_when_they_were_written(
        self, adapters: None
    ) -> None:
        rebuilt = self.ports.rebuilt(GROUP)
        run(rebuilt.add({"early": b"1"}, 1_000))
        run(rebuilt.add({"late": b"2"}, 5_000))
        run(rebuilt.put_in_place())
        assert run(self.delivery.forget_settled(GROUP, 2_000, 100)) == 1
        assert self.once("early") and not self.once("late")

    def test_nothing_rebuilt_leaves_the_set_and_the_once_keys_empty(self, adapters: None) -> None:
        state = self.ports.state
        run(state.apply(state.store("old", b"o")))  # type: ignore[attr-defined]
        assert self.once("old")
        rebuilt = self.ports.rebuilt(GROUP)
        first = run(rebuilt.put_in_place())
        assert run(state.get(["old"])) == [None]
        assert self.once("old")
        assert run(rebuilt.put_in_place()) == first + 1, "the generation moves on each time"

    def test_a_rebuild_clears_what_an_earlier_one_left_aside(self, adapters: None) -> None:
        run(self.ports.rebuilt(GROUP).add({"left": b"x"}, 1_000))  # a rebuild that failed here
        again = self.ports.rebuilt(GROUP)
        run(again.clear())
        run(again.add({"new": b"y"}, 1_000))
        run(again.put_in_place())
        assert run(self.ports.state.get(["left", "new"])) == [None, b"y"]
        assert self.once("left")


class TestInMemory(EntriesContract):
    streams = Streams("mem")

    @pytest.fixture
    def adapters(self) -> Iterator[None]:
        self.world = MemoryStreams(self.streams)
        self.ports, self.delivery = memory_ports(self.world), MemoryDelivery(self.world)
        yield

    def add(self, stream: str, fields: dict[str, bytes]) -> str:
        return self.world.add(stream, dict(fields))  # type: ignore[arg-type]


class TestRedis(EntriesContract):
    @pytest.fixture
    def adapters(self, redis_url: str, prefix: str) -> Iterator[None]:
        self.streams = Streams(prefix)
        self.client = connect(redis_url)
        self.ports = redis_ports(self.client, self.streams, "savings")
        self.delivery = RedisDelivery(self.client, self.streams)
        yield
        run(self.client.aclose())

    def add(self, stream: str, fields: dict[str, bytes]) -> str:
        return run(self.client.xadd(stream, fields)).decode()  # type: ignore[arg-type]
