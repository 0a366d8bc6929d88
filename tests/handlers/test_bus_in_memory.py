"""The bus (shared.bus.Bus) on the in-memory Delivery adapter, no Redis: a batch's effects
applied once per event with their acks, poison dead-lettered at once, a failure left pending
with its error, reclaimed by the sweeper once idle and retried, and dead-lettered with that
error after `max_deliveries`. (tests/integration/test_reliability.py does the same on Redis,
with killed processes.)"""

from __future__ import annotations

import asyncio
import json
import time

from shared.adapters.memory import MemoryDelivery, MemoryStreams
from shared.bus import Bus, Effect, Entry, Poison, Subscription
from shared.streams import Streams

NAMES = Streams("mem")
IDLE_MS = 40


def test_the_bus_applies_once_dead_letters_poison_and_retries_failures_until_they_dead_letter() -> None:
    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        delivery = MemoryDelivery(world)
        bus = Bus(None, NAMES, delivery=delivery, claim_idle_ms=IDLE_MS, max_deliveries=3)
        work, out = "mem:work", "mem:out"
        tries: dict[str, int] = {}

        async def handle(entry: Entry) -> Effect:
            name = entry.fields[b"name"].decode()
            tries[name] = tries.get(name, 0) + 1
            if name == "poison":
                raise Poison("invalid_event", "can never be handled")
            if name == "broken" or (name == "flaky" and tries[name] < 3):
                raise RuntimeError(f"{name} failed")
            once = entry.fields[b"once"].decode()
            return Effect((Effect.publish(out, f"{name}:{entry.deliveries}".encode()),), once_key=once)

        sub = Subscription("g", work, handle)
        bus.add(sub)
        await bus.ensure_groups()
        for name, once in [("a", "k1"), ("again", "k1"), ("poison", "k2"), ("flaky", "k3"), ("broken", "k4")]:
            world.add(work, {"name": name, "once": once})
        read = await delivery.read(work, "g", bus.consumer, 100)
        applied = await bus.process(sub, [Entry(work, i, f) for i, f in read])

        assert [(a.entry.fields[b"name"], a.fresh) for a in applied] == [(b"a", True), (b"again", False)]
        assert world.of(out) == [{"event": b"a:1"}], "the same event (k1) applied once"
        [dead] = world.of(NAMES.dead_letter)
        assert dead[b"name"] == b"poison" and json.loads(dead[b"error"])["code"] == "invalid_event"
        waiting = {p.entry_id: p.deliveries for p in await delivery.pending(work, "g", "-", 10, 0)}
        assert waiting == {read[3][0]: 1, read[4][0]: 1}, "the failures stay pending"
        kept = await delivery.error("g", work, read[4][0])
        assert kept is not None and "broken failed" in json.loads(kept)["message"]

        for _ in range(3):  # each sweep once they are idle: flaky succeeds at its third delivery
            time.sleep(IDLE_MS * 1.5 / 1000)
            await bus.sweep(sub)
        assert world.of(out)[-1] == {"event": b"flaky:3"}
        assert tries == {"a": 1, "again": 1, "poison": 1, "flaky": 3, "broken": 3}
        *_, moved = world.of(NAMES.dead_letter)
        assert moved[b"name"] == b"broken" and moved[b"deliveries"] == b"3"
        reason = json.loads(moved[b"error"])
        assert (
            reason["code"] == "handler_error"
            and reason["deliveries"] == 3
            and "broken failed" in reason["message"]
        )
        assert await delivery.pending(work, "g", "-", 10, 0) == [], "nothing left behind"
        assert await delivery.error("g", work, read[4][0]) is None

    asyncio.run(scenario())
