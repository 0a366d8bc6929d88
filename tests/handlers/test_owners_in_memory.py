"""Handler tests: a service's state and its decisions run on the in-memory adapters
(shared.adapters.memory), no Redis: the tier between the pure model tests and whole processes.
The same classes run on the Redis adapters in tests/integration/."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from services.needs.model import NeedsPolicy
from services.needs.state import NeedsState
from shared.adapters.memory import MemoryStreams, memory_ports
from shared.bus import Entry
from shared.bus.consumer import Applied, parse_trusted
from shared.policy import SavingsPolicy
from shared.streams import Streams
from tests.support import event, need_data

NAMES = Streams("mem")


async def send(
    state: Any, world: MemoryStreams, n: int, ev: dict[str, Any], stream: str | None = None
) -> None:
    """What the bus does with one entry (a request to the needs service unless `stream` says
    otherwise): parse, handle, apply the writes, after the batch."""
    fields = {b"event": json.dumps(ev).encode(), b"inbound_id": f"{n}-0".encode()}
    entry = Entry(stream or NAMES.requests("needs"), f"{n}-0", fields)
    await world.apply(await state.handle(parse_trusted(entry), entry))
    await state.after_batch([Applied(entry, True)])


async def settled(state: Any) -> None:
    for _ in range(200):
        await asyncio.sleep(0.01)
        if not state.pending and (state._pending is None or state._pending.done()):
            return
    raise AssertionError(f"requests still pending: {sorted(state.pending)}")


def test_the_needs_owner_decides_and_publishes_with_no_redis() -> None:
    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        state = NeedsState(memory_ports(world), NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=0)
        await state.start()
        a = need_data(partner="staffordshire-cc", need_id="a-advocacy", service_category="advocacy")
        b = need_data(partner="tamworth-bc", need_id="b-advocacy", service_category="advocacy")
        await send(state, world, 1, event(a, partner="staffordshire-cc", id="n1"))
        await send(state, world, 2, event(b, partner="tamworth-bc", id="n2"))
        # withdrawing a need it never identified: refused, with the reason, to that partner
        ghost = {"need_id": "nothing", "partner_id": "lichfield-dc", "revision": 1}
        await send(state, world, 3, event(ghost, type="need.withdrawn", partner="lichfield-dc", id="w1"))
        await settled(state)
        await state.stop()

        accepted = [json.loads(e["event"])["id"] for e in world.of(NAMES.of_type("need.identified"))]
        assert accepted == ["n1", "n2"]
        [refused] = world.of(NAMES.rejected("lichfield-dc"))
        assert json.loads(refused["reason"])["code"] == "unknown_need" and refused["inbound_id"] == "3-0"
        assert world.of(NAMES.of_type("need.withdrawn")) == [], "a refused act is published nowhere else"
        [opportunity] = [json.loads(e["event"]) for e in world.of(NAMES.of_type("opportunity.identified"))]
        assert {n["partner_id"] for n in opportunity["data"]["needs"]} == {"staffordshire-cc", "tamworth-bc"}
        assert set(state.opportunities) == {opportunity["data"]["opportunity_id"]}

    asyncio.run(scenario())


def test_requests_are_decided_while_the_opportunities_are_being_published() -> None:
    """Publishing what an owner derives (the needs service's opportunities: tens of
    milliseconds a category at thousands of needs, paced while needs keep coming) does not
    hold up its decisions: a request that comes meanwhile is decided at once."""

    class SlowToPublish(NeedsState):
        publishing = asyncio.Event()
        go_on = asyncio.Event()

        async def publish(self) -> None:
            self.publishing.set()
            await self.go_on.wait()
            await super().publish()

    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        state = SlowToPublish(memory_ports(world), NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=0)
        state.go_on.set()
        await state.start()
        state.go_on.clear()
        a = need_data(partner="staffordshire-cc", need_id="a-advocacy", service_category="advocacy")
        await send(state, world, 1, event(a, partner="staffordshire-cc", id="n1"))
        await asyncio.wait_for(state.publishing.wait(), 5)  # its opportunities are being published
        b = need_data(partner="tamworth-bc", need_id="b-advocacy", service_category="advocacy")
        await send(state, world, 2, event(b, partner="tamworth-bc", id="n2"))
        for _ in range(200):
            accepted = [json.loads(e["event"])["id"] for e in world.of(NAMES.of_type("need.identified"))]
            if accepted == ["n1", "n2"]:
                break
            await asyncio.sleep(0.01)
        assert accepted == ["n1", "n2"], "n2 waited for the publication to finish"
        state.go_on.set()
        await settled(state)
        await state.stop()

    asyncio.run(scenario())


def test_a_request_stored_and_not_decided_before_a_crash_is_decided_at_restart_with_nothing_else_coming() -> None:
    """A process killed between storing a request and deciding it: the process that starts
    next on the same state decides it, though no batch will ever bring it again (its entry
    was acknowledged with the store)."""

    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        ports = memory_ports(world)
        crashed = NeedsState(ports, NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=0)
        fields = {b"event": json.dumps(event(need_data(), id="n1")).encode(), b"inbound_id": b"1-0"}
        entry = Entry(NAMES.requests("needs"), "1-0", fields)
        await world.apply(await crashed.handle(parse_trusted(entry), entry))  # then SIGKILL
        restarted = NeedsState(ports, NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=0)
        await restarted.start()
        await settled(restarted)
        await restarted.stop()
        assert [json.loads(e["event"])["id"] for e in world.of(NAMES.of_type("need.identified"))] == ["n1"]

    asyncio.run(scenario())


def test_nothing_is_decided_behind_a_request_still_in_flight() -> None:
    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        ports = memory_ports(world)
        state = NeedsState(ports, NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=0)
        # entry 1-0 on P:inbound is read by a gateway and not yet forwarded: what came after waits
        ports.backlog.unacked[(NAMES.inbound, "gateway")] = [("1-0", "")]  # type: ignore[attr-defined]
        await state.start()
        await send(state, world, 2, event(need_data(), id="n2"))
        await asyncio.sleep(0.3)
        assert world.of(NAMES.of_type("need.identified")) == [] and set(state.pending) == {
            "/partners/staffordshire-cc n2"
        }
        ports.backlog.unacked.clear()  # type: ignore[attr-defined]
        await settled(state)
        await state.stop()
        assert [json.loads(e["event"])["id"] for e in world.of(NAMES.of_type("need.identified"))] == ["n2"]

    asyncio.run(scenario())


def test_nothing_is_decided_behind_a_request_forwarded_and_not_yet_read() -> None:
    # a gateway forwarded inbound entry 1-0 late (it reclaimed it from a crashed gateway): it
    # lies on the request stream unread, after n2, which arrived later but was read first
    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        ports = memory_ports(world)
        state = NeedsState(ports, NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=0)
        late = [("9-0", "1-0")]
        ports.backlog.unread_by[(NAMES.requests("needs"), "needs")] = late  # type: ignore[attr-defined]
        await state.start()
        await send(state, world, 2, event(need_data(), id="n2"))
        await asyncio.sleep(0.3)
        assert world.of(NAMES.of_type("need.identified")) == [] and set(state.pending) == {
            "/partners/staffordshire-cc n2"
        }
        ports.backlog.unread_by.clear()  # type: ignore[attr-defined]
        await settled(state)
        await state.stop()
        assert [json.loads(e["event"])["id"] for e in world.of(NAMES.of_type("need.identified"))] == ["n2"]

    asyncio.run(scenario())


def test_after_an_outage_a_decision_redis_lost_is_made_again() -> None:
    # a failover can lose the last writes: Redis comes back older than the owner's memory. The
    # owner reads its state again once Redis is back, and decides what Redis no longer has.
    from redis.exceptions import ConnectionError as RedisConnectionError

    from shared.outage import OUTAGE

    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        ports = memory_ports(world)
        state = NeedsState(ports, NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=0)
        await state.start()
        await send(state, world, 1, event(need_data(), id="n1"))
        await settled(state)
        accepted = NAMES.of_type("need.identified")
        assert len(world.of(accepted)) == 1
        # Redis as a promoted replica has it: the request stored, its decision and publication lost
        log = ports.decisions
        del log.decisions["/partners/staffordshire-cc n1"]  # type: ignore[attr-defined]
        world.entries[accepted].clear()
        await state._refresh()
        assert world.of(accepted) == [], "no outage seen: nothing read again"
        OUTAGE.failed(RedisConnectionError("the primary went away"), "test")
        OUTAGE.ok()
        state._schedule()
        await settled(state)
        await asyncio.sleep(0.1)
        await state.stop()
        assert [json.loads(e["event"])["id"] for e in world.of(accepted)] == ["n1"]
        assert log.decisions == {"/partners/staffordshire-cc n1": "accepted"}  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_a_pass_whose_decisions_could_not_be_recorded_is_judged_again_from_scratch() -> None:
    # the owner folds each acceptance before recording the pass; when recording fails, the pass
    # is forgotten, so the return is not then refused as a duplicate of its own period
    from services.contracts.model import ContractsPolicy
    from services.contracts.state import ContractsState
    from tests.unit.test_contracts_model import award, ret

    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        ports = memory_ports(world)
        state = ContractsState(ports, NAMES, ContractsPolicy(), wait_s=0)
        record = ports.decisions.record
        failures = [RuntimeError("redis said no")]

        async def flaky(decisions: Any) -> list[str]:
            if failures:
                raise failures.pop()
            return await record(decisions)

        ports.decisions.record = flaky  # type: ignore[method-assign]
        await state.start()
        t, data = award()
        await send(state, world, 1, event(data, type=t, partner="a", id="award"), NAMES.accepted(t))
        t, data = ret("2013-01-01", "2013-03-31", "1300")
        await send(state, world, 2, event(data, type=t, partner="a", id="r1"), NAMES.requests("contracts"))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not failures and not state.pending:
                break
        await settled(state)
        await state.stop()
        assert not failures, "the failing pass ran"
        assert [json.loads(e["event"])["id"] for e in world.of(NAMES.accepted(t))] == ["r1"]
        assert world.of(NAMES.rejected("a")) == [], "not refused as a duplicate of itself"

    asyncio.run(scenario())


def test_requests_are_decided_at_once_while_derived_views_wait_for_their_cadence() -> None:
    # deciding is what every other service waits for; publishing what an owner derives
    # (opportunities here) may wait for the recompute's cadence. With the cadence an hour, a
    # request arriving after the first recompute is still decided, and nothing is derived.
    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        state = NeedsState(memory_ports(world), NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=0)
        derived = 0
        derive = state.changed

        async def counted(fresh: bool) -> None:
            nonlocal derived
            derived += 1
            await derive(fresh)

        state.changed = counted  # type: ignore[method-assign]
        await state.start()
        a = need_data(partner="staffordshire-cc", need_id="a-advocacy", service_category="advocacy")
        await send(state, world, 1, event(a, partner="staffordshire-cc", id="n1"))
        await settled(state)
        state.min_interval = 3600.0
        after_first = derived
        b = need_data(partner="tamworth-bc", need_id="b-advocacy", service_category="advocacy")
        await send(state, world, 2, event(b, partner="tamworth-bc", id="n2"))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(world.of(NAMES.of_type("need.identified"))) == 2:
                break
        accepted = [json.loads(e["event"])["id"] for e in world.of(NAMES.of_type("need.identified"))]
        assert accepted == ["n1", "n2"], "the second request waited for the recompute"
        assert derived == after_first, "the opportunity was derived again before its cadence"
        # two partners' needs in one category make an opportunity: not derived yet
        assert world.of(NAMES.of_type("opportunity.identified")) == []
        state._pending.cancel()  # the recompute due in an hour

    asyncio.run(scenario())


def test_a_process_behind_the_state_logs_retention_reads_its_state_whole() -> None:
    from dataclasses import dataclass, field

    from shared.state import EventSetState

    @dataclass
    class Seen:
        applied: set[str] = field(default_factory=set)

    def fold(index: Seen, key: str, payload: Any) -> Seen:
        index.applied.add(key)
        return index

    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        ports = memory_ports(world)
        state = EventSetState(ports, NAMES, "t", Seen, fold)
        await state.load()
        raw = [json.dumps(event(need_data(n=i), id=f"n{i}")).encode() for i in range(4)]
        await world.apply(ports.state.store("/partners/staffordshire-cc n0", raw[0]))
        assert await state._refresh() and state.index.applied == {"/partners/staffordshire-cc n0"}
        # another replica stores three more; the log keeps only the last one
        for i in (1, 2, 3):
            await world.apply(ports.state.store(f"/partners/staffordshire-cc n{i}", raw[i]))
        assert await ports.state.trim("4-0") == 3
        assert await state._refresh(), "behind the trim: read whole, nothing missed"
        assert state.index.applied == {f"/partners/staffordshire-cc n{i}" for i in range(4)}

    asyncio.run(scenario())


def test_a_request_told_to_wait_is_judged_again_only_once_something_is_folded() -> None:
    from shared.authority import Wait

    judged: list[str] = []

    class Counting(NeedsState):
        async def decide(self) -> int:
            def rule(payload: Any, key: str) -> Any:
                judged.append(key)
                return () if key.endswith("ok") else Wait("unknown_need", "not yet")

            return await self.decide_pending(lambda: rule)

    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        state = Counting(memory_ports(world), NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=60)
        await state.start()
        await send(state, world, 1, event(need_data(n=1), id="n1"))
        for _ in range(5):  # passes with nothing new folded: the wait stands as it was
            state.urgent()
            await asyncio.sleep(0.05)
        assert judged == ["/partners/staffordshire-cc n1"]
        await send(state, world, 2, event(need_data(n=2), id="n2-ok"))  # accepted: folded
        for _ in range(20):
            await asyncio.sleep(0.05)
            if "/partners/staffordshire-cc n2-ok" not in state.pending and judged.count(judged[0]) > 1:
                break
        assert judged.count("/partners/staffordshire-cc n1") == 2, judged
        await state.stop()

    asyncio.run(scenario())


def test_a_request_waiting_on_something_is_judged_again_only_once_that_is_folded() -> None:
    from shared.authority import Wait

    judged: list[str] = []
    awaited = need_data(n=9)

    class Counting(NeedsState):
        async def decide(self) -> int:
            def rule(payload: Any, key: str) -> Any:
                judged.append(key)
                if key.endswith("ok"):
                    return ()
                on = frozenset([f"need:staffordshire-cc/{awaited['need_id']}"])
                return Wait("unknown_need", "not yet", on)

            return await self.decide_pending(lambda: rule)

    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        state = Counting(memory_ports(world), NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=60)
        state.touches = lambda p: [f"need:{p.partner_id}/{p.need_id}"]
        await state.start()
        await send(state, world, 1, event(need_data(n=1), id="n1"))
        await send(state, world, 2, event(need_data(n=2), id="n2-ok"))  # folded: not what n1 waits on
        for _ in range(20):
            await asyncio.sleep(0.05)
            if "/partners/staffordshire-cc n2-ok" not in state.pending:
                break
        state.urgent()
        await asyncio.sleep(0.1)
        assert judged.count("/partners/staffordshire-cc n1") == 1, judged
        await send(state, world, 3, event(awaited, id="n9-ok"))  # what it waits on
        for _ in range(20):
            await asyncio.sleep(0.05)
            if judged.count("/partners/staffordshire-cc n1") > 1:
                break
        assert judged.count("/partners/staffordshire-cc n1") == 2, judged
        assert state._listening == {
            f"need:staffordshire-cc/{awaited['need_id']}": {"/partners/staffordshire-cc n1"}
        }
        await state.stop()

    asyncio.run(scenario())


def test_a_request_the_log_showed_and_that_was_decided_before_its_batch_folded_is_not_held_again() -> None:
    """The owner keeps no set of every decided key: a request stored by this process can be met
    by the log (and decided) before its own batch is folded; that batch then neither holds it
    again nor makes the owner read its state again."""

    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        ports = memory_ports(world)
        state = NeedsState(ports, NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=0)
        state.min_interval = 3600.0  # nothing derived meanwhile: only what the test drives
        await state.load()
        reloads: list[bool] = []
        load = state._load

        async def counted(from_snapshot: bool = True) -> None:
            reloads.append(from_snapshot)
            await load(from_snapshot)

        state._load = counted  # type: ignore[method-assign]
        ev = event(need_data(), id="n1")
        fields = {b"event": json.dumps(ev).encode(), b"inbound_id": b"1-0"}
        entry = Entry(NAMES.requests("needs"), "1-0", fields)
        await world.apply(await state.handle(parse_trusted(entry), entry))  # stored, batch not folded
        async with state._lock:
            assert await state._refresh(), "the log shows the stored request"
            assert await state.decide() == 1
        assert not state.pending and state._settled == {"/partners/staffordshire-cc n1"}
        await state.after_batch([Applied(entry, True)])  # its batch, folded now
        assert not state.pending and not state._settled, "decided already: not held again"
        await asyncio.sleep(0.1)
        assert reloads == [] and len(world.of(NAMES.of_type("need.identified"))) == 1
        assert list(state.index.needs) == [("staffordshire-cc", "staffordshire-cc-need-1")]
        if state._pending is not None:
            state._pending.cancel()

    asyncio.run(scenario())


def test_a_request_another_replica_decided_is_judged_before_the_later_ones_on_its_object() -> None:
    """Replica B stores and accepts a need; replica A, which has not seen it yet, is then sent the
    withdrawal of that need. A meets the need in the state log with its arrival gone (decided
    already): it is judged first, so the withdrawal is judged with the need folded. Taken as
    arriving when A met it, the need came after the withdrawal, which was refused
    `unknown_need` (on Redis: a return sent after its contract's decommissioning was accepted)."""

    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        ports = memory_ports(world)
        a = NeedsState(ports, NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=0)
        b = NeedsState(ports, NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=0)
        await a.start()
        await b.start()
        need = need_data(partner="staffordshire-cc", need_id="advice")
        await send(b, world, 1, event(need, partner="staffordshire-cc", id="n1"))
        await settled(b)
        assert [json.loads(e["event"])["id"] for e in world.of(NAMES.of_type("need.identified"))] == ["n1"]
        gone = {"need_id": "advice", "partner_id": "staffordshire-cc", "revision": 1}
        await send(a, world, 2, event(gone, type="need.withdrawn", partner="staffordshire-cc", id="w1"))
        await settled(a)
        await a.stop()
        await b.stop()
        assert world.of(NAMES.rejected("staffordshire-cc")) == []
        assert [json.loads(e["event"])["id"] for e in world.of(NAMES.of_type("need.withdrawn"))] == ["w1"]

    asyncio.run(scenario())


def test_an_owners_horizon_is_the_earliest_arrival_still_unread_look_after_look() -> None:
    """`OwnerState._on_its_way` keeps each unread request's arrival between looks (working it
    out again for every entry at every pass cost 5% of `serve` at 8,000 contracts); the horizon
    is still the earliest arrival of what is unread at this look, never of what was read since."""
    from shared.ports import OnItsWay

    state = NeedsState(memory_ports(MemoryStreams(NAMES)), NAMES, NeedsPolicy(), SavingsPolicy(), wait_s=0)
    # (request entry, inbound entry): a request's arrival is its inbound entry, else its own
    looks = [
        [("10-0", "7-0"), ("11-0", ""), ("12-0", "3-0")],
        [("11-0", ""), ("12-0", "3-0"), ("13-0", "2-0")],  # 10-0 read; 13-0 arrived earlier still
        [("11-0", ""), ("14-0", "")],  # 12-0 and 13-0 read: their arrivals no longer count
        [],
    ]
    horizons = []
    for unread in looks:
        state._on_its_way(OnItsWay(None, unread, None))
        horizons.append(state._horizon)
    assert horizons == [(3, 0), (2, 0), (11, 0), None]
    assert state._unread_arrivals == {}, "nothing kept of what was read"
    state._on_its_way(OnItsWay(("20-0", ""), [("21-0", "30-0")], ("19-0", "25-0")))
    assert state._horizon == (20, 0), "what a gateway holds and what the owner holds count too"
