"""The Delivery port's contract (shared.ports), one suite run on both adapters: in memory
(`TestInMemory`) and on a real Redis (`TestRedis`): a consumer group's entries once read,
settled with their writes once per event, failures kept and left pending, idle entries taken
over, and what can never succeed moved to the dead-letter stream with its reason."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from shared.adapters.memory import MemoryDelivery, MemoryStreams
from shared.adapters.redis import RedisDelivery
from shared.ports import Delivery, GroupState, Pending, Settling
from shared.redis_client import connect
from shared.streams import Streams
from tests.contract.aio import run

GROUP = "g"
IDLE_MS = 50


class DeliveryContract:
    streams: Streams

    @pytest.fixture
    def delivery(self) -> Iterator[Delivery]:
        raise NotImplementedError

    # what the suite does beside the port: publish, read as the bus's reader does, look
    def add(self, stream: str, fields: dict[str, str]) -> str:
        raise NotImplementedError

    def read(
        self, delivery: Delivery, reader: str, count: int = 100, group: str = GROUP
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        raise NotImplementedError

    def entries(self, stream: str) -> list[dict[bytes, bytes]]:
        raise NotImplementedError

    @property
    def work(self) -> str:
        return f"{self.streams.prefix}:work"

    @property
    def out(self) -> str:
        return f"{self.streams.prefix}:out"

    def publish(self, n: int) -> tuple[str, ...]:
        return ("XADD", self.out, "*", "n", str(n))

    def test_a_group_reads_from_the_first_entry_and_is_kept_when_created_again(
        self, delivery: Delivery
    ) -> None:
        first = self.add(self.work, {"n": "0"})
        run(delivery.create_group(self.work, GROUP))
        run(delivery.create_group(self.work, GROUP))  # already there: kept
        second = self.add(self.work, {"n": "1"})
        assert [i for i, _ in self.read(delivery, "a")] == [first, second]
        assert self.read(delivery, "a") == [], "each entry is given to the group once"

    def test_settled_entries_are_applied_once_per_event_and_acknowledged(self, delivery: Delivery) -> None:
        run(delivery.create_group(self.work, GROUP))
        ids = [self.add(self.work, {"n": str(n)}) for n in range(3)]
        assert [i for i, _ in self.read(delivery, "a")] == ids
        batch = [
            Settling(i, [self.publish(n)], once) for n, (i, once) in enumerate(zip(ids, "kjk", strict=True))
        ]
        assert run(delivery.settle(GROUP, self.work, batch)) == [True, True, False]
        assert [e[b"n"] for e in self.entries(self.out)] == [b"0", b"1"], "the duplicate wrote nothing"
        assert run(delivery.pending(self.work, GROUP, "-", 10, 0)) == [], "every one acknowledged"

    def test_an_act_with_no_entry_behind_it_is_applied_once(self, delivery: Delivery) -> None:
        act = [Settling(None, [self.publish(7)], "/partners/a e-1")]
        assert run(delivery.settle(GROUP, None, act)) == [True]
        assert run(delivery.settle(GROUP, None, act)) == [False]
        assert [e[b"n"] for e in self.entries(self.out)] == [b"7"]
        assert run(delivery.settle(GROUP, None, [Settling(None, [self.publish(8)])] * 2)) == [True, True], (
            "no once-key: applied every time"
        )

    def test_a_failing_write_leaves_its_entry_pending_and_its_error_until_a_later_delivery_settles_it(
        self, delivery: Delivery
    ) -> None:
        run(delivery.create_group(self.work, GROUP))
        a, b = self.add(self.work, {"n": "0"}), self.add(self.work, {"n": "1"})
        self.read(delivery, "a")
        failing = ("XADD", self.out, "0-0", "n", "never")  # an id the stream refuses
        got = run(
            delivery.settle(
                GROUP,
                self.work,
                [Settling(a, [self.publish(0), failing], "ka"), Settling(b, [self.publish(1)], "kb")],
            )
        )
        assert isinstance(got[0], str) and got[0], "the write's error"
        assert got[1] is True
        assert [e[b"n"] for e in self.entries(self.out)] == [b"0", b"1"], (
            "the write before the failure stands"
        )
        assert run(delivery.pending(self.work, GROUP, "-", 10, 0)) == [Pending(a, 1)]
        error = json.dumps({"code": "handler_error", "message": got[0]})
        run(delivery.set_aside(GROUP, self.work, "a", {}, {a: error}))
        assert run(delivery.error(GROUP, self.work, a)) == error
        assert run(
            delivery.settle(GROUP, self.work, [Settling(a, [self.publish(2)], "ka", redelivered=True)])
        ) == [True], "the once-key was not taken by the failed try"
        assert run(delivery.error(GROUP, self.work, a)) is None, "settled: its error forgotten"
        assert run(delivery.pending(self.work, GROUP, "-", 10, 0)) == []

    def test_what_can_never_succeed_goes_to_the_dead_letter_stream_with_its_fields_and_reason(
        self, delivery: Delivery
    ) -> None:
        run(delivery.create_group(self.work, GROUP))
        a, b = self.add(self.work, {"event": "{}"}), self.add(self.work, {"event": "[]"})
        self.read(delivery, "a")
        reason = json.dumps({"code": "invalid_event", "message": "not an event"})
        run(delivery.set_aside(GROUP, self.work, "a", {a: (1, reason)}, {b: '{"code": "handler_error"}'}))
        [dead] = self.entries(self.streams.dead_letter)
        assert dead == {
            b"event": b"{}",
            b"stream": self.work.encode(),
            b"entry_id": a.encode(),
            b"group": GROUP.encode(),
            b"deliveries": b"1",
            b"error": reason.encode(),
        }
        assert run(delivery.pending(self.work, GROUP, "-", 10, 0)) == [Pending(b, 1)], (
            "the poison acknowledged"
        )
        assert run(delivery.error(GROUP, self.work, b)) == '{"code": "handler_error"}'

    def test_the_groups_on_a_stream_show_what_they_hold_and_what_they_have_not_read(
        self, delivery: Delivery
    ) -> None:
        assert run(delivery.groups_on(self.work)) == [], "no such stream"
        run(delivery.create_group(self.work, GROUP))
        ids = [self.add(self.work, {"event": str(n)}) for n in range(5)]
        assert run(delivery.groups_on(self.work)) == [GroupState(GROUP, 0, 5)]
        self.read(delivery, "a", count=2)
        assert run(delivery.groups_on(self.work)) == [GroupState(GROUP, 2, 3)], "two given, three to come"
        run(delivery.settle(GROUP, self.work, [Settling(ids[0], [])]))
        assert run(delivery.groups_on(self.work)) == [GroupState(GROUP, 1, 3)], "one acknowledged"
        run(delivery.create_group(self.work, "other"))
        assert sorted(g.name for g in run(delivery.groups_on(self.work))) == [GROUP, "other"]

    def test_dead_letters_are_listed_in_order_and_replayed_onto_their_stream_once(
        self, delivery: Delivery
    ) -> None:
        run(delivery.create_group(self.work, GROUP))
        ids = [self.add(self.work, {"event": f'{{"n":{n}}}', "other": "x"}) for n in range(3)]
        self.read(delivery, "a")
        poisoned = {i: (2, '{"code": "invalid_event"}') for i in ids}
        run(delivery.set_aside(GROUP, self.work, "a", poisoned, {}))
        letters = run(delivery.dead_letters("-", 10))
        assert [f[b"entry_id"].decode() for _, f in letters] == ids, "oldest first"
        assert [i for i, _ in run(delivery.dead_letters(letters[0][0], 1))] == [letters[1][0]], "after it"
        assert run(delivery.dead_letters(letters[-1][0], 10)) == []

        assert run(delivery.replay(letters[1][0])) == "replayed"
        assert self.entries(self.work)[-1] == {b"event": b'{"n":1}', b"other": b"x"}, (
            "its own fields, as a new entry of its stream"
        )
        assert [i for i, _ in run(delivery.dead_letters("-", 10))] == [letters[0][0], letters[2][0]]
        assert run(delivery.replay(letters[1][0])) == "not found", "replayed once"
        assert run(delivery.replay("9-9")) == "not found"
        assert len(self.entries(self.work)) == 4
        unknown = self.add(self.streams.dead_letter, {"event": "{}"})  # written by hand: no `stream`
        assert run(delivery.replay(unknown)) == "no original stream recorded"
        assert run(delivery.dead_letters(letters[-1][0], 10))[-1][0] == unknown, "kept"

    def test_idle_entries_are_listed_in_order_and_taken_over_each_delivered_once_more(
        self, delivery: Delivery
    ) -> None:
        run(delivery.create_group(self.work, GROUP))
        ids = [self.add(self.work, {"n": str(n)}) for n in range(5)]
        self.read(delivery, "a")
        assert run(delivery.pending(self.work, GROUP, "-", 2, 0)) == [Pending(i, 1) for i in ids[:2]]
        assert run(delivery.pending(self.work, GROUP, ids[1], 10, 0)) == [Pending(i, 1) for i in ids[2:]]
        assert run(delivery.pending(self.work, GROUP, "-", 10, 60_000)) == [], "none idle a minute"
        time.sleep(IDLE_MS * 1.5 / 1000)
        taken = run(delivery.claim(self.work, GROUP, "b", IDLE_MS, ids[:3]))
        assert [(i, f[b"n"]) for i, f in taken] == [(i, str(n).encode()) for n, i in enumerate(ids[:3])]
        assert run(delivery.claim(self.work, GROUP, "c", IDLE_MS, ids[:3])) == [], "no longer idle"
        assert run(delivery.pending(self.work, GROUP, "-", 10, 0)) == [
            *(Pending(i, 2) for i in ids[:3]),
            *(Pending(i, 1) for i in ids[3:]),
        ]
        held = {r.name: r.pending for r in run(delivery.readers(self.work, GROUP))}
        assert held.get("a") == 2 and held.get("b") == 3

    def test_an_idle_entry_is_dead_lettered_once_and_only_while_idle(self, delivery: Delivery) -> None:
        run(delivery.create_group(self.work, GROUP))
        a = self.add(self.work, {"event": "{}"})
        self.read(delivery, "a")
        assert not run(delivery.dead_letter(GROUP, self.work, a, "b", 60_000, 5, "{}")), "not idle a minute"
        time.sleep(IDLE_MS * 1.5 / 1000)
        assert run(delivery.dead_letter(GROUP, self.work, a, "b", IDLE_MS, 5, '{"code": "failed"}'))
        assert not run(delivery.dead_letter(GROUP, self.work, a, "c", IDLE_MS, 5, "{}")), "moved already"
        [dead] = self.entries(self.streams.dead_letter)
        assert dead[b"entry_id"] == a.encode() and dead[b"deliveries"] == b"5"
        assert run(delivery.pending(self.work, GROUP, "-", 10, 0)) == []

    def test_a_removed_reader_is_gone_with_what_it_held(self, delivery: Delivery) -> None:
        run(delivery.create_group(self.work, GROUP))
        self.add(self.work, {"n": "0"})
        kept = self.add(self.work, {"n": "1"})
        self.read(delivery, "a", 1)
        self.read(delivery, "b", 1)
        assert {(r.name, r.pending) for r in run(delivery.readers(self.work, GROUP))} == {("a", 1), ("b", 1)}
        run(delivery.remove_reader(self.work, GROUP, "a"))
        assert [(r.name, r.pending) for r in run(delivery.readers(self.work, GROUP))] == [("b", 1)]
        assert run(delivery.pending(self.work, GROUP, "-", 10, 0)) == [Pending(kept, 1)]

    def test_entries_are_trimmed_below_what_every_group_handled_never_past_it(
        self, delivery: Delivery
    ) -> None:
        ids = [self.add(self.work, {"n": str(n)}) for n in range(6)]
        assert run(delivery.handled_below(self.work)) is None, "a stream with no group is left alone"
        for group in ("g", "h"):
            run(delivery.create_group(self.work, group))
        run(
            delivery.settle("g", self.work, [Settling(i, []) for i, _ in self.read(delivery, "a", group="g")])
        )
        got = [i for i, _ in self.read(delivery, "a", 4, group="h")]
        run(delivery.settle("h", self.work, [Settling(i, []) for i in got[:2]]))
        assert run(delivery.handled_below(self.work)) == ids[2], "h's oldest pending entry"
        assert run(delivery.trim_below(self.work, ids[2])) == 2
        run(delivery.settle("h", self.work, [Settling(i, []) for i in got[2:]]))
        ms, seq = ids[3].split("-")
        assert run(delivery.handled_below(self.work)) == f"{ms}-{int(seq) + 1}", "after h's last delivered"
        assert run(delivery.trim_below(self.work, f"{ms}-{int(seq) + 1}")) == 2
        assert [e[b"n"] for e in self.entries(self.work)] == [b"4", b"5"], "what h was not given stays"

    def test_a_stream_is_capped_to_about_its_newest_entries(self, delivery: Delivery) -> None:
        for n in range(1_000):
            self.add(self.out, {"n": str(n)})
        removed = run(delivery.cap(self.out, 200))
        kept = self.entries(self.out)
        assert 200 <= len(kept) < 300 and removed == 1_000 - len(kept)
        assert kept[-1][b"n"] == b"999", "the newest kept"

    def test_once_keys_are_forgotten_after_their_window_and_beyond_the_newest_kept(
        self, delivery: Delivery
    ) -> None:
        def settle(keys: list[str]) -> list[bool | str]:
            out = []
            for key in keys:  # a millisecond apart: each its own time
                out += run(delivery.settle(GROUP, None, [Settling(None, [], key)]))
                time.sleep(0.002)
            return out

        old = [f"old-{n}" for n in range(3)]
        assert settle(old) == [True] * 3
        assert run(delivery.forget_settled(GROUP, int(time.time() * 1000) + 1_000, 100)) == 3
        assert settle(old) == [True] * 3, "forgotten: applied again"
        assert run(delivery.forget_settled(GROUP, 0, 2)) == 1, "all but the newest two"
        assert settle(old) == [True, False, False]


class TestInMemory(DeliveryContract):
    streams = Streams("mem")

    @pytest.fixture
    def delivery(self) -> Iterator[Delivery]:
        self.world = MemoryStreams(self.streams)
        self.memory = MemoryDelivery(self.world)
        yield self.memory

    def add(self, stream: str, fields: dict[str, str]) -> str:
        return self.world.add(stream, dict(fields))

    def read(
        self, delivery: Delivery, reader: str, count: int = 100, group: str = GROUP
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        return run(self.memory.read(self.work, group, reader, count))  # type: ignore[no-any-return]

    def entries(self, stream: str) -> list[dict[bytes, bytes]]:
        return [
            {
                (k if isinstance(k, bytes) else k.encode()): (v if isinstance(v, bytes) else v.encode())
                for k, v in fields.items()
            }
            for fields in self.world.of(stream)
        ]


class TestRedis(DeliveryContract):
    @pytest.fixture
    def delivery(self, redis_url: str, prefix: str) -> Iterator[Delivery]:
        self.streams = Streams(prefix)
        self.client = connect(redis_url)
        yield RedisDelivery(self.client, self.streams)
        run(self.client.aclose())

    def add(self, stream: str, fields: dict[str, str]) -> str:
        return str(run(self.client.xadd(stream, fields)).decode())

    def read(
        self, delivery: Delivery, reader: str, count: int = 100, group: str = GROUP
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        got = run(self.client.xreadgroup(group, reader, {self.work: ">"}, count=count))
        return [(i.decode(), dict(f)) for _, entries in got for i, f in entries]

    def entries(self, stream: str) -> list[dict[bytes, bytes]]:
        return [dict(f) for _, f in run(self.client.xrange(stream))]
