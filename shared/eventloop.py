"""The event loop every process runs on: uvloop (libuv's loop, in C) where it is installed.

Each service spends much of its time in the loop's own machinery: a round trip to Redis per
batch and per decision, socket writes, timers, task switches. Measured with
`commissioning serve` (2 cores, alternating runs, 3 December): CPU per event 0.516-0.539 ms on
asyncio's loop against 0.473-0.511 ms on uvloop (2,000 contracts), and latency at 1,000
events/s p50 121-145 ms / p99 278-368 ms against 84-102 / 191-201. Where uvloop is not
available (it does not build on Windows) asyncio's own loop runs the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

try:
    import uvloop
except ImportError:  # pragma: no cover - not on this platform
    uvloop = None  # type: ignore[assignment]


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop when it is installed."""
    if uvloop is None:  # pragma: no cover
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
