"""The dashboard's live feed (`GET /savings/stream`, services/savings/live.py) on the in-memory
UpdateLog adapter, no Redis: the updates after the one asked for, then each new one as it is
appended; the newest first when nothing is asked for; `event: reset` when what was asked for
was trimmed away. (tests/integration/test_dashboard.py follows it in Chromium, on Redis.)"""

from __future__ import annotations

import asyncio
from typing import Any

from services.savings.live import SavingsStream
from shared.adapters.memory import MemoryStreams, memory_ports
from shared.streams import Streams

NAMES = Streams("mem")


def test_the_feed_sends_what_came_after_then_each_new_update_and_a_reset_when_it_was_trimmed() -> None:
    async def scenario() -> None:
        log = memory_ports(MemoryStreams(NAMES)).updates(NAMES.savings_updated, 5)
        ids = [await log.append([f'{{"n":{n}}}'.encode()], {}, []) for n in range(3)]
        feed = SavingsStream(log)
        sent: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["body"])

        async def until(n: int) -> None:
            for _ in range(200):
                if len(sent) >= n:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"{len(sent)} of {n} sent")

        pump = asyncio.create_task(feed._pump(send, ids[0]))
        await until(2)
        appended = await log.append([b'{"n":3}'], {}, [])
        await until(3)
        pump.cancel()
        assert sent == [
            f'id: {ids[1]}\nevent: savings.updated\ndata: {{"n":1}}\n\n'.encode(),
            f'id: {ids[2]}\nevent: savings.updated\ndata: {{"n":2}}\n\n'.encode(),
            f'id: {appended}\nevent: savings.updated\ndata: {{"n":3}}\n\n'.encode(),
        ]

        sent.clear()
        pump = asyncio.create_task(feed._pump(send, None))  # nothing asked for: the newest first
        await until(1)
        pump.cancel()
        assert sent == [f'id: {appended}\nevent: savings.updated\ndata: {{"n":3}}\n\n'.encode()]

        for n in range(10):  # five kept: what came after ids[0] is gone
            await log.append([f'{{"n":{4 + n}}}'.encode()], {}, [])
        sent.clear()
        await asyncio.wait_for(feed._pump(send, ids[0]), 5)  # returns: the client loads the figures again
        assert sent == [b"event: reset\ndata: {}\n\n"]

        assert feed.response("12-0", "34-0").last == "12-0", "Last-Event-ID first"  # type: ignore[attr-defined]
        assert feed.response("not an id", "34-0").last == "34-0"  # type: ignore[attr-defined]
        assert feed.response(None, "1-0\n").last is None  # type: ignore[attr-defined]

    asyncio.run(scenario())
