"""The cyclic garbage collector's settings for the product's processes.

Python's default thresholds (700, 10, 10) collect the young generation every 700 allocations
and the older ones often enough that, with a large partnership's state in memory, collection
took a third of a savings process's time in the benchmark (README, Performance). Handling
events makes few reference cycles: collecting less often costs a little memory, not
correctness.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

THRESHOLDS = (50_000, 50, 100)


def tune() -> None:
    gc.set_threshold(*THRESHOLDS)


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No collection while a state is read whole (millions of objects that all stay: each full
    collection would scan them all again, for nothing); as it was after, with what was read
    moved out of the collector's sight (`gc.freeze`): else the first allocation after it set
    off a collection over all of it (21% of a restore from the snapshot at 200,000
    events). Reference counting still frees it when the state is replaced: it makes next to
    no reference cycles (a savings projection restored at 200,000 events, 3.4 million objects,
    left 75 to the collector when dropped, 29 of them an empty projection's own)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.enable()


def freeze() -> None:
    """What was loaded so far lives as long as the process: never scan it again."""
    gc.freeze()
