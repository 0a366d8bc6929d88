"""The collector is paused while a state is read whole, and left as it was after."""

from __future__ import annotations

import gc
import weakref

import pytest

from shared import collector


def test_paused_while_a_state_is_read_and_as_it_was_after_even_on_an_error() -> None:
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("the load failed")
    assert gc.isenabled(), "enabled again after a failed load"
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled(), "a collector that was off stays off"
    finally:
        gc.enable()


def test_what_was_read_while_paused_is_not_scanned_by_the_next_collections() -> None:
    """A state read whole stays: the young generation it filled is not collected over (the
    first allocation after the pause set off a collection of all of it)."""
    frozen = gc.get_freeze_count()
    try:
        with collector.paused():
            state = [[n] for n in range(50_000)]  # lists: always tracked by the collector
        assert gc.get_freeze_count() >= frozen + 50_000
        assert gc.get_count()[0] < 1_000, "the young generation holds none of it"
        assert len(state) == 50_000
    finally:
        gc.unfreeze()


def test_what_survives_a_collection_is_frozen_and_a_young_cycle_is_still_collected() -> None:
    """`collector.tune`: what survives a collection is frozen, never scanned again (a service's
    state grows by tens of thousands of objects a second under load, and a collection of the
    older generations scanned all of them: 672 ms at 1,000 events/s after a minute); a
    reference cycle dropped before the next collection is still collected."""
    threshold, callbacks = gc.get_threshold(), list(gc.callbacks)
    try:
        collector.tune()
        collector.tune()
        assert gc.callbacks.count(collector._settled) == 1, "one callback, however often tuned"
        assert gc.get_threshold() == collector.THRESHOLDS

        class Node:
            me: object = None

        dropped = Node()
        dropped.me = dropped  # a cycle: only the collector frees it
        gone = weakref.ref(dropped)
        del dropped
        kept = [[n] for n in range(1_000)]
        frozen = gc.get_freeze_count()
        gc.collect(0)
        assert gone() is None, "the cycle dropped before the collection was collected"
        assert gc.get_freeze_count() >= frozen + 1_000, "what survived it is frozen"
        assert len(kept) == 1_000
    finally:
        gc.callbacks[:] = callbacks
        gc.set_threshold(*threshold)
        gc.unfreeze()
