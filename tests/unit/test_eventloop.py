"""The processes' event loop (shared.eventloop): uvloop, and the same results as asyncio's."""

from __future__ import annotations

import asyncio

import uvloop

from shared import eventloop


def test_processes_run_on_uvloop_and_get_their_result() -> None:
    async def main() -> tuple[type, int]:
        await asyncio.sleep(0.01)
        done = await asyncio.gather(asyncio.to_thread(sum, [1, 2]), asyncio.sleep(0, result=4))
        return type(asyncio.get_running_loop()), sum(done)

    loop_type, result = eventloop.run(main())
    assert issubclass(loop_type, uvloop.Loop)
    assert result == 7
