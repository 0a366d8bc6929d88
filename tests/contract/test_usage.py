"""The Usage port's contract (shared.ports), one suite run on both adapters: in memory
(`TestInMemory`) and on a real Redis (`TestRedis`): the store's bytes in use, which grow with
what it holds, and its limit. (tests/integration/test_memory_limit.py: the readiness check and
the metrics near Redis's limit.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from shared.adapters.memory import MemoryStreams, MemoryUsage
from shared.adapters.redis import RedisUsage
from shared.ports import Usage
from shared.redis_client import connect
from shared.streams import Streams
from tests.contract.aio import run

BIG = b"x" * 1_000_000


class UsageContract:
    limit: int

    @pytest.fixture
    def usage(self) -> Iterator[Usage]:
        raise NotImplementedError

    def add(self, fields: dict[str, bytes]) -> None:
        raise NotImplementedError

    def test_the_bytes_in_use_grow_with_what_the_store_holds(self, usage: Usage) -> None:
        used, limit = run(usage.memory())
        self.add({"event": BIG})
        grown, same = run(usage.memory())
        assert grown - used >= len(BIG)
        assert limit == same == self.limit


class TestInMemory(UsageContract):
    limit = 64 * 2**20

    @pytest.fixture
    def usage(self) -> Iterator[Usage]:
        self.world = MemoryStreams(Streams("mem"))
        yield MemoryUsage(self.world, self.limit)

    def add(self, fields: dict[str, bytes]) -> None:
        self.world.add("mem:inbound", dict(fields))  # type: ignore[arg-type]


class TestRedis(UsageContract):
    @pytest.fixture
    def usage(self, redis_url: str, r: redis.Redis, prefix: str) -> Iterator[Usage]:
        self.r, self.stream = r, f"{prefix}:inbound"
        self.limit = int(r.config_get("maxmemory")["maxmemory"])
        client = connect(redis_url)
        yield RedisUsage(client, self.stream)
        run(client.aclose())

    def add(self, fields: dict[str, bytes]) -> None:
        self.r.xadd(self.stream, fields)  # type: ignore[arg-type]
