"""The async Redis client every process uses.

redis-py's asyncio connections pack commands in pure Python even when hiredis is installed
(its synchronous ones use hiredis). Packing a batch's script arguments that way cost about a
tenth of a service's time in the benchmark, so connections here pack with hiredis; the
bytes on the wire are the same.

`cluster=True` gives redis-py's Redis Cluster client (also for a Valkey cluster): it finds the
nodes from the URL's one, routes each command by its key's slot and follows MOVED/ASK
redirects and failovers. Its nodes' connections pack with hiredis too.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import DataError


class _HiredisPacking:
    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):  # a command name with spaces ("CONFIG GET") is several arguments
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # hiredis packs bytes, str, int and float: copy the other buffers once
            pass
        try:
            return [
                hiredis.pack_command(
                    tuple(bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args)
                )
            ]
        except TypeError as e:
            raise DataError(str(e)) from e


_classes: dict[type, type] = {}


def _packing(base: type) -> type:
    if base not in _classes:
        _classes[base] = type(f"Hiredis{base.__name__}", (_HiredisPacking, base), {})
    return _classes[base]


def connect(url: str, *, cluster: bool = False, **kwargs: Any) -> Redis:
    """`Redis.from_url(url, **kwargs)` (or `RedisCluster.from_url` when `cluster`), whose
    connections (plain, TLS or socket) pack with hiredis."""
    if cluster:
        return _cluster(url, **kwargs)  # type: ignore[return-value] - the same commands, routed
    client = Redis.from_url(url, **kwargs)
    pool = client.connection_pool
    pool.connection_class = _packing(pool.connection_class)
    return client


def _cluster(url: str, **kwargs: Any) -> RedisCluster:
    client = RedisCluster.from_url(url, **kwargs)
    nodes = client.nodes_manager
    # nodes found later are made from these kwargs; the URL's node already exists
    nodes.connection_kwargs["connection_class"] = _packing(nodes.connection_kwargs["connection_class"])
    for node in nodes.startup_nodes.values():
        node.connection_class = _packing(node.connection_class)
    return client
