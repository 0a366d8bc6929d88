"""The async Redis client every process uses.

redis-py's asyncio connections pack commands in pure Python even when hiredis is installed
(its synchronous ones use hiredis). Packing a batch's script arguments that way cost about a
tenth of a service's time in the benchmark, so connections here pack with hiredis; the
bytes on the wire are the same.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import DataError


class _HiredisPacking:
    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):  # a command name with spaces ("CONFIG GET") is several arguments
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(tuple(bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args))]
        except TypeError as e:
            raise DataError(str(e)) from e


_classes: dict[type, type] = {}


def connect(url: str, **kwargs: Any) -> Redis:
    """`Redis.from_url(url, **kwargs)`, whose connections (plain, TLS or socket) pack with hiredis."""
    client = Redis.from_url(url, **kwargs)
    pool = client.connection_pool
    base = pool.connection_class
    if base not in _classes:
        _classes[base] = type(f"Hiredis{base.__name__}", (_HiredisPacking, base), {})
    pool.connection_class = _classes[base]
    return client
