"""The LeaseBoard port's contract (shared.ports), one suite run on both adapters: in memory
(`TestInMemory`) and on a real Redis (`TestRedis`): a lease on each partnership held by one
process for a time, renewed and released only by its holder, and the processes seen lately.
(tests/integration/test_cluster.py shares partnerships by leases between killed processes.)"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from shared.adapters.memory import MemoryLeaseBoard
from shared.adapters.redis import RedisLeaseBoard
from shared.ports import LeaseBoard
from shared.redis_client import connect
from tests.contract.aio import run


class LeaseBoardContract:
    @pytest.fixture
    def board(self) -> Iterator[LeaseBoard]:
        raise NotImplementedError

    def test_a_lease_is_held_by_one_process_until_it_lets_go(self, board: LeaseBoard) -> None:
        assert run(board.take("tscip", "one", 60_000))
        assert not run(board.take("tscip", "two", 60_000)), "held by another"
        assert run(board.take("wmids", "two", 60_000)), "each partnership its own"
        assert not run(board.release("tscip", "two")), "only its holder lets it go"
        assert not run(board.take("tscip", "two", 60_000))
        assert run(board.release("tscip", "one"))
        assert run(board.take("tscip", "two", 60_000))

    def test_a_lease_lapses_unless_its_holder_renews_it(self, board: LeaseBoard) -> None:
        assert run(board.take("tscip", "one", 150))
        assert run(board.take("wmids", "one", 150))
        assert run(board.renew("tscip", "one", 60_000))
        assert not run(board.renew("tscip", "two", 60_000)), "only its holder renews it"
        time.sleep(0.3)
        assert not run(board.take("tscip", "two", 60_000)), "renewed: still held"
        assert run(board.take("wmids", "two", 60_000)), "not renewed: lapsed, taken over"
        assert not run(board.renew("wmids", "one", 60_000)), "lost: its old holder cannot renew it"
        assert not run(board.release("wmids", "one"))

    def test_the_processes_seen_within_the_window_are_counted(self, board: LeaseBoard) -> None:
        assert run(board.seen("one", 1_000, 5_000)) == 1
        assert run(board.seen("two", 2_000, 5_000)) == 2
        assert run(board.seen("one", 3_000, 5_000)) == 2, "seen again: counted once"
        assert run(board.seen("two", 8_500, 5_000)) == 1, "one not seen since 3,000: gone"
        run(board.gone("two"))
        assert run(board.seen("three", 8_600, 5_000)) == 1


class TestInMemory(LeaseBoardContract):
    @pytest.fixture
    def board(self) -> Iterator[LeaseBoard]:
        yield MemoryLeaseBoard()


class TestRedis(LeaseBoardContract):
    @pytest.fixture
    def board(self, redis_url: str, prefix: str) -> Iterator[LeaseBoard]:
        client = connect(redis_url)
        yield RedisLeaseBoard(client, prefix)
        run(client.aclose())
