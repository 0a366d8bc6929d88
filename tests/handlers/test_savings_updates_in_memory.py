"""The savings projection publishes `savings.updated` through the UpdateLog port, here on the
in-memory adapter (no Redis): each update carries the portfolio and only the contracts that
changed, and a process that stopped after applying a batch and before publishing it publishes
the difference when it starts again."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from services.savings.projection import Projection
from services.savings.updates import UPDATES_KEPT
from shared.adapters.memory import MemoryStreams, memory_ports
from shared.policy import SavingsPolicy
from tests.handlers.test_savings_snapshot_in_memory import NAMES, consume, events

POLICY = SavingsPolicy()


def published(world: MemoryStreams) -> list[dict[str, Any]]:
    return [json.loads(fields["event"])["data"] for fields in world.of(NAMES.savings_updated)]


def test_updates_are_published_through_the_port_and_a_restart_publishes_what_was_missed() -> None:
    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        ports = memory_ports(world)
        first = Projection(None, NAMES, POLICY, ports, snapshot_every_s=0)  # type: ignore[arg-type]
        await first.start()
        evs = events(31)
        await consume(first, evs[:30])
        updates = published(world)
        assert updates, "published through the port"
        last = updates[-1]
        assert last["events_applied"] == 30 and last["portfolio"] == first.figures["portfolio"]
        contracts = {row["contract_id"] for update in updates for row in update["contracts"]}
        assert contracts == {row["contract_id"] for row in first.figures["contracts"]}
        assert ports.updates(NAMES.savings_updated, UPDATES_KEPT) is first.updates.port
        await first.stop()

        # the next events applied by a process that stops before it publishes them
        quiet = Projection(None, NAMES, POLICY, ports, snapshot_every_s=0)  # type: ignore[arg-type]
        await quiet.load()  # no `last`: it publishes nothing
        await consume(quiet, evs[30:], first=30)
        assert published(world)[-1]["events_applied"] == 30, "not published"

        again = Projection(None, NAMES, POLICY, ports, snapshot_every_s=0)  # type: ignore[arg-type]
        await again.start()  # what dashboards last received, then the state: the difference
        newest = published(world)[-1]
        assert newest["events_applied"] == len(evs) and newest["portfolio"] == again.figures["portfolio"]
        assert 0 < len(newest["contracts"]) < len(again.figures["contracts"]), (
            "only the contracts the missed events changed: the rows last shown were read back"
        )
        assert again.published_id == world.entries[NAMES.savings_updated][-1][0]
        await again.stop()

    asyncio.run(scenario())
