"""`commissioning savings rebuild` (services/savings/rebuild.py) on the in-memory adapters, no
Redis: the streams replayed into a new set that takes the old one's place with its once-keys,
the figures those of a projection that applied every event, what is appended while the streams
are read caught up once, and entries that are not events left out and counted.
(tests/integration/test_savings_service.py runs the command on Redis.)"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from services.savings.projection import Projection
from services.savings.rebuild import rebuild
from shared.adapters.memory import MemoryDelivery, MemoryEntries, MemoryStreams, memory_ports
from shared.ports import Ports
from shared.settings import savings_policy
from shared.streams import Streams
from tests.eventgen import history
from tests.support import event

NAMES = Streams("mem")
PARTNERS = ["a-cc", "b-dc", "c-pct", "d-police", "e-fire"]


def events(seed: int, contracts: int = 6) -> list[dict[str, Any]]:
    return [
        event(data, type=t, partner=pid, id=f"ev-{seed}-{n}")
        for n, (pid, t, data) in enumerate(history(seed, PARTNERS, contracts=contracts))
    ]


def accepted(world: MemoryStreams, evs: list[dict[str, Any]]) -> None:
    """The owners' decisions: each event on its canonical stream."""
    for ev in evs:
        world.add(NAMES.of_type(ev["type"]), {"event": json.dumps(ev).encode()})


async def figures_of(ports: Ports, from_snapshot: bool = False) -> dict[str, Any]:
    """What a savings process starting on this state shows: reading every event, or from the
    snapshot the rebuild saved (and the log after it)."""
    every = 60.0 if from_snapshot else 0.0
    projection = Projection(None, NAMES, savings_policy(), ports, snapshot_every_s=every)  # type: ignore[arg-type]
    await projection.load()
    return projection.figures


async def applied_every_event(evs: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of a set holding each event once, stored as the service stores them."""
    ports = memory_ports(MemoryStreams(NAMES))
    for ev in evs:
        await ports.state.apply(ports.state.store(f"{ev['source']} {ev['id']}", json.dumps(ev).encode()))  # type: ignore[attr-defined]
    return await figures_of(ports)


class Appending(MemoryEntries):
    """Entries that, once the rebuild has read a stream to its end the first time, see `late`
    appended to it (another process's decisions while the streams are read)."""

    def __init__(self, world: MemoryStreams, late: dict[str, Any]) -> None:
        super().__init__(world)
        self.late: dict[str, Any] | None = late

    async def events(self, stream: str, after: str, count: int) -> list[tuple[str, bytes | None]]:
        got = await super().events(stream, after, count)
        if not got and self.late is not None and stream == NAMES.of_type(self.late["type"]):
            accepted(self.world, [self.late])
            self.late = None
        return got


def test_a_rebuild_replays_the_streams_into_the_figures_of_every_event_applied_once() -> None:
    async def scenario() -> None:
        evs = events(1)
        world = MemoryStreams(NAMES)
        accepted(world, evs)
        world.add(NAMES.of_type("need.identified"), {"other": b"no event"})
        world.add(NAMES.of_type("tender.awarded"), {"event": b'{"not": "an event"}'})
        ports, delivery = memory_ports(world), MemoryDelivery(world)
        # a state that lost an event and holds one no stream has: the rebuild replaces it
        stray = events(9, contracts=1)[0]
        stray_key = f"{stray['source']} {stray['id']}"
        await ports.state.apply(ports.state.store(stray_key, json.dumps(stray).encode()))  # type: ignore[attr-defined]
        out = io.StringIO()

        result = await rebuild(None, NAMES, out, workers=1, ports=ports, delivery=delivery)

        assert result["entries_read"] == len(evs) + 2
        assert result["events"] == len(evs) and result["skipped"] == 2 and result["caught_up"] == 0
        assert "rebuild: events replayed" in out.getvalue(), "progress is shown"
        assert await ports.state.generation() == b"1", "running processes see a new generation"
        assert await ports.state.get([stray_key]) == [None]
        keys = {f"{ev['source']} {ev['id']}" for ev in evs}
        assert set(world.seen["savings"]) == keys, "each event's once-key settled with it"
        rebuilt = await figures_of(ports)
        assert rebuilt == await applied_every_event(evs)
        assert await figures_of(ports, from_snapshot=True) == rebuilt, "its snapshot holds the same"
        assert result["portfolio"] == rebuilt["portfolio"]

        # again: the same figures, and it says they did not change
        again = await rebuild(None, NAMES, io.StringIO(), workers=1, ports=ports, delivery=delivery)
        assert again["unchanged"] and again["events"] == len(evs)
        assert await figures_of(ports) == rebuilt

    asyncio.run(scenario())


def test_what_is_appended_while_the_streams_are_read_is_caught_up_once() -> None:
    async def scenario() -> None:
        evs = events(2)
        late = events(3, contracts=1)[0]  # a need of another history
        assert late["type"] == "need.identified"
        world = MemoryStreams(NAMES)
        accepted(world, evs)
        ports = memory_ports(world)
        ports = Ports(**{**vars(ports), "entries": Appending(world, late)})

        result = await rebuild(
            None, NAMES, io.StringIO(), workers=1, ports=ports, delivery=MemoryDelivery(world)
        )

        assert result["caught_up"] == 1 and result["events"] == len(evs) + 1
        assert await figures_of(ports) == await applied_every_event([*evs, late])
        assert f"{late['source']} {late['id']}" in world.seen["savings"]

    asyncio.run(scenario())
