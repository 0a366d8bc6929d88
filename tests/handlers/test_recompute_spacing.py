"""How often a service recomputes what it derives (shared.state `EventSetState._recompute`),
on the in-memory adapters: no sooner than `spacing` times the last run's duration after it
started while batches come full (a backlog: the time goes to reading it), and `steady_spacing`
times while they come small (a steady rate: the wait is latency, and there is time to spare)."""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from shared.adapters.memory import MemoryStreams, memory_ports
from shared.bus import Entry
from shared.bus.consumer import Applied
from shared.state import EventSetState
from shared.streams import Streams

RUN_S = 0.02  # each recompute takes this long (on the loop, as a large one does)


class Timed(EventSetState[dict[str, Any]]):
    def __init__(self) -> None:
        super().__init__(memory_ports(MemoryStreams()), Streams("mem"), "timed", dict, lambda i, k, p: i)
        self.starts: list[float] = []

    async def changed(self, fresh: bool) -> None:
        self.starts.append(asyncio.get_running_loop().time())
        await asyncio.sleep(RUN_S)


async def _gaps(state: Timed, batch: int, seconds: float) -> float:
    """Batches of `batch` entries every 5 ms for `seconds`: the median time between the starts
    of two recomputes."""
    entries = [Applied(Entry("mem:s", f"{n}-0", {}), False) for n in range(batch)]
    state.starts.clear()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        await state.after_batch(entries)
        await asyncio.sleep(0.005)
    return statistics.median(b - a for a, b in zip(state.starts, state.starts[1:], strict=False))


def test_recomputes_are_spaced_less_at_a_steady_rate_than_under_a_backlog() -> None:
    async def scenario() -> tuple[float, float, float]:
        state = Timed()
        state.min_interval, state.spacing, state.steady_spacing = 0.0, 4.0, 1.0
        state.batch_size = 10
        steady = await _gaps(state, 1, 0.8)
        backlog = await _gaps(state, 10, 0.8)
        state.steady_spacing = None  # the default: `spacing` either way
        unset = await _gaps(state, 1, 0.8)
        return steady, backlog, unset

    steady, backlog, unset = asyncio.run(scenario())
    # a run of 20 ms: the next starts 20 ms after it started at a steady rate (1 x), 80 ms under
    # a backlog (4 x), and 80 ms at a steady rate too when no steady spacing is set
    assert steady < 0.045, (steady, backlog, unset)
    assert backlog > 0.065 and unset > 0.065, (steady, backlog, unset)
