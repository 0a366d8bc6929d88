"""One event loop for the contract suites: a Redis adapter's connections belong to the loop
they were made on, so every suite drives its adapter's coroutines on this one (`run`), whatever
other modules did to the thread's current loop (`asyncio.run` leaves none)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

LOOP = asyncio.new_event_loop()


def run(coro: Awaitable[T]) -> T:
    return LOOP.run_until_complete(coro)


__all__ = ["run"]
