"""Partnerships shared by leases (services/leases.py) on the in-memory `LeaseBoard`, no Redis:
two processes given one pool of four partnerships, each a real HTTP server on a port of its own.
The first takes all four; when the second arrives each ends with its fair share of two; when
one stops, it releases its leases and the other takes their partnerships back.
(tests/integration/test_cluster.py runs the same on a Redis Cluster, with a SIGKILLed process.)"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from services.leases import Leases
from shared.adapters.memory import MemoryLeaseBoard
from shared.settings import Settings

POOL = ("p-a", "p-b", "p-c", "p-d")


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A partnership's server, reduced to an ASGI app that answers nothing (lifespan aside)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


def _server(partnership: str) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(_app, host="127.0.0.1", port=0, log_level="warning"))


def test_a_pool_is_shared_fairly_and_taken_back_when_a_process_leaves() -> None:
    async def scenario() -> None:
        board = MemoryLeaseBoard()
        settings = Settings(partnerships=",".join(POOL), lease_s=3)
        first = Leases(board, settings, "first", _server)
        second = Leases(board, settings, "second", _server)

        await first.round()
        assert sorted(first.serving) == list(POOL), "alone: the whole pool"
        assert {p: board.leases[p][0] for p in POOL} == dict.fromkeys(POOL, "first")

        await second.round()  # two processes now: a fair share is two, none is free yet
        assert second.serving == {}
        await first.round()  # above its share: hands two back
        await second.round()
        assert len(first.serving) == 2 and len(second.serving) == 2
        assert set(first.serving).isdisjoint(second.serving)
        for p in POOL:
            assert board.leases[p][0] == ("first" if p in first.serving else "second")

        second.stopping = True  # it stops: its partnerships stopped, its leases released
        await second.run()
        assert second.serving == {} and "second" not in board.processes
        await first.round()
        assert sorted(first.serving) == list(POOL), "the whole pool again"

        first.stopping = True
        await first.run()
        assert board.leases == {} and board.processes == {}

    asyncio.run(scenario())
