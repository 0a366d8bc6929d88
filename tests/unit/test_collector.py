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
