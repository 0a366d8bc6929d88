"""The collector is paused while a state is read whole, and left as it was after."""

from __future__ import annotations

import gc

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
