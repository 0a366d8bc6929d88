"""The DecisionLog port's contract (shared.ports), one suite run on both adapters: in memory
(`TestInMemory`) and on a real Redis (`TestRedis`, shared/bus/decide.lua)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from shared.adapters.memory import MemoryDecisionLog, MemoryStreams
from shared.adapters.redis import RedisDecisionLog
from shared.authority import Refused
from shared.ports import Decision, DecisionLog
from shared.redis_client import connect
from shared.streams import Streams
from tests.contract.aio import run

Entries = Callable[[str], Awaitable[list[dict[str, str]]]]


def accept(key: str, *claims: str) -> Decision:
    return Decision(key, "monitoring.return.submitted", "a", claims=claims)


def refuse(key: str, code: str = "duplicate_period") -> Decision:
    return Decision(key, "monitoring.return.submitted", "a", refused=Refused(code, "no"))


class DecisionLogContract:
    streams: Streams

    @pytest.fixture
    def log(self) -> Iterator[tuple[DecisionLog, Entries]]:
        raise NotImplementedError

    def test_an_accepted_request_is_published_once_on_its_type(
        self, log: tuple[DecisionLog, Entries]
    ) -> None:
        decisions, entries = log
        run(decisions.hold("a r1", b'{"r":1}', "1-0", "5-0"))
        assert run(decisions.record([accept("a r1")])) == ["accepted"]
        assert run(decisions.record([accept("a r1")])) == ["accepted"], "the same decision again stands"
        assert run(entries(self.streams.of_type("monitoring.return.submitted"))) == [{"event": '{"r":1}'}]
        assert run(decisions.verdicts()) == {"a r1": "accepted"}

    def test_a_refused_request_goes_to_its_partner_with_the_reason_and_is_forgotten(
        self, log: tuple[DecisionLog, Entries]
    ) -> None:
        decisions, entries = log
        run(decisions.hold("a r1", b'{"r":1}', "1-0", "5-0"))
        assert run(decisions.record([refuse("a r1")])) == ["refused:duplicate_period"]
        [entry] = run(entries(self.streams.rejected("a")))
        assert entry["event"] == '{"r":1}' and entry["inbound_id"] == "5-0"
        assert json.loads(entry["reason"])["code"] == "duplicate_period"
        assert run(entries(self.streams.of_type("monitoring.return.submitted"))) == [], (
            "a refusal changes no figure"
        )
        assert run(decisions.record([accept("a r1")])) == ["refused:duplicate_period"], "decided once"

    def test_refusals_are_forgotten_after_the_window_and_acceptances_kept(
        self, log: tuple[DecisionLog, Entries]
    ) -> None:
        decisions, entries = log
        for k in ("a r1", "a r2"):
            run(decisions.hold(k, k.encode(), "1-0", ""))
        assert run(decisions.record([refuse("a r1"), accept("a r2")])) == [
            "refused:duplicate_period",
            "accepted",
        ]
        before = int(time.time() * 1000) - 60_000
        assert run(decisions.forget_refused(before)) == 0, "refused within the window: kept"
        assert run(decisions.forget_refused(int(time.time() * 1000) + 1)) == 1
        assert run(decisions.verdicts()) == {"a r2": "accepted"}, "the acceptance stays"
        assert run(decisions.forget_refused(int(time.time() * 1000) + 1)) == 0, "nothing left to forget"
        # the same request sent again, after the window: decided afresh
        run(decisions.hold("a r1", b"a r1", "2-0", ""))
        assert run(decisions.record([accept("a r1")])) == ["accepted"]
        assert [e["event"] for e in run(entries(self.streams.of_type("monitoring.return.submitted")))] == [
            "a r2",
            "a r1",
        ]

    def test_two_requests_cannot_hold_one_slot(self, log: tuple[DecisionLog, Entries]) -> None:
        decisions, entries = log
        for k in ("a r1", "a r2", "a r3"):
            run(decisions.hold(k, k.encode(), "1-0", ""))
        # a batch stops at the first decision that does not stand as asked: the third stays held
        assert run(
            decisions.record([accept("a r1", "period-1"), accept("a r2", "period-1"), accept("a r3")])
        ) == ["accepted", "conflict:period-1"]
        assert run(entries(self.streams.of_type("monitoring.return.submitted"))) == [{"event": "a r1"}]
        assert run(decisions.record([refuse("a r2"), accept("a r3")])) == [
            "refused:duplicate_period",
            "accepted",
        ]

    def test_a_decision_on_a_request_no_longer_held_is_missing(
        self, log: tuple[DecisionLog, Entries]
    ) -> None:
        decisions, entries = log
        run(decisions.hold("a r2", b"2", "2-0", ""))
        assert run(decisions.record([accept("a r1"), accept("a r2")])) == ["missing"]
        assert run(entries(self.streams.of_type("monitoring.return.submitted"))) == []

    def test_another_verdict_standing_stops_the_batch(self, log: tuple[DecisionLog, Entries]) -> None:
        decisions, _ = log
        for k in ("a r1", "a r2"):
            run(decisions.hold(k, k.encode(), "1-0", ""))
        assert run(decisions.record([refuse("a r1")])) == ["refused:duplicate_period"]
        # a replica that judged it acceptable learns the refusal stands, and decides r2 again
        assert run(decisions.record([accept("a r1"), accept("a r2")])) == ["refused:duplicate_period"]
        assert run(decisions.verdicts()) == {"a r1": "refused:duplicate_period"}


class TestInMemory(DecisionLogContract):
    streams = Streams("mem")

    @pytest.fixture
    def log(self) -> Iterator[tuple[DecisionLog, Entries]]:
        memory = MemoryDecisionLog(MemoryStreams(self.streams))

        async def entries(stream: str) -> list[dict[str, str]]:
            return [
                {k: v.decode() if isinstance(v, bytes) else v for k, v in e.items()}
                for e in memory.streams.of(stream)
            ]

        yield memory, entries


class TestRedis(DecisionLogContract):
    @pytest.fixture
    def log(self, redis_url: str, prefix: str) -> Iterator[tuple[DecisionLog, Entries]]:
        self.streams = Streams(prefix)
        client = connect(redis_url)
        adapter = RedisDecisionLog(client, self.streams, "contracts")

        async def entries(stream: str) -> list[dict[str, str]]:
            return [
                {k.decode(): v.decode() for k, v in fields.items()}
                for _, fields in await client.xrange(stream)
            ]

        yield adapter, entries
        run(client.aclose())
