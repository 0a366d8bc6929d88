"""Many partnerships on a real Redis Cluster: six `redis-server` processes on loopback (three
primaries, three replicas) made with `redis-cli --cluster create`, served by real
`commissioning serve` processes, one per partnership (COMMISSIONING_PARTNERSHIP), each
partnership's keys on one hash slot."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

from shared import viewers
from shared.settings import partnership_prefix
from shared.streams import Streams
from tests.cluster import LoopbackCluster
from tests.integration.test_savings_service import build
from tests.support import OWNERS, READ, VIEWER_TOKEN, Proc, accepted_count, figures_only, serve, service_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LoopbackCluster]:
    c = LoopbackCluster(tmp_path / "cluster").start()
    try:
        yield c
    finally:
        c.stop()


def partnerships(c: LoopbackCluster, prefix: str, n: int) -> list[str]:
    """`n` partnership names whose slots fall on every primary (round robin)."""
    primaries = sorted((p for p in c.nodes() if p.primary), key=lambda p: p.port)
    with c.node_client(primaries[0].port) as node:
        ranges = [(lo, hi, int(owner[1])) for lo, hi, owner, *_ in node.execute_command("CLUSTER SLOTS")]

    def port_of(name: str) -> int:
        slot = key_slot(f"{partnership_prefix(prefix, name)}:inbound".encode())
        return next(port for lo, hi, port in ranges if lo <= slot <= hi)

    chosen: list[str] = []
    candidates = (f"partnership-{i}" for i in range(1000))
    while len(chosen) < n:
        want = primaries[len(chosen) % len(primaries)].port
        chosen.append(next(name for name in candidates if port_of(name) == want))
    return chosen


def start(c: LoopbackCluster, r: RedisCluster, tmp: Path, prefix: str, partnership: str, partners: Path,
          **settings: str) -> Proc:
    keys = Streams(partnership_prefix(prefix, partnership))
    r.hset(viewers.key(keys), viewers.digest(VIEWER_TOKEN), "tests")
    env = service_env(c.url, prefix, partners, partnership=partnership, redis_mode="cluster", **settings)
    return serve(tmp, env, *OWNERS, "savings", name=partnership)


def figures(p: Proc) -> dict[str, Any]:
    return httpx.get(f"{p.url}/savings", headers=READ, timeout=5).json()


def exact(p: Proc, r: RedisCluster, keys: str, expected: dict[str, Any]) -> bool:
    try:
        got = figures(p)
    except (httpx.HTTPError, ValueError):
        return False
    return figures_only(got) == figures_only(expected) and got["events_applied"] == accepted_count(r, keys)


def test_five_partnerships_on_three_primaries_each_with_exact_figures(
    cluster: LoopbackCluster, prefix: str, partners_path: Path, tmp_path: Path
) -> None:
    r = cluster.client()
    names = partnerships(cluster, prefix, 5)
    owners = {cluster.owner_of(f"{partnership_prefix(prefix, n)}:inbound").port for n in names}
    assert len(owners) == 3, "the partnerships are spread over the three primaries"
    work = {n: build(range(10 * i, 10 * i + 6)) for i, n in enumerate(names)}
    procs = {n: start(cluster, r, tmp_path, prefix, n, partners_path, batch_size="50") for n in names}
    try:
        for p in procs.values():
            p.wait_ready(60)
        for n, (entries, _) in work.items():
            pipe = r.pipeline(transaction=False)
            for e in entries:
                pipe.xadd(f"{partnership_prefix(prefix, n)}:inbound", e)
            pipe.execute()
        for n, (entries, expected) in work.items():
            keys = partnership_prefix(prefix, n)
            wait_for(lambda: exact(procs[n], r, keys, expected), 120, 0.3, f"{n}'s figures")
            assert expected["events_applied"] > 100
        # each partnership's figures are its own: no two the same
        assert len({figures(p)["portfolio"]["annual_saving"] for p in procs.values()}) == len(names)
        for n in names:  # every key of a partnership on its one slot
            keys = [k.decode() for k in r.scan_iter(match=f"{partnership_prefix(prefix, n)}:*", count=1000)]
            assert len(keys) > 20
            assert {key_slot(k.encode()) for k in keys} == {key_slot(f"{partnership_prefix(prefix, n)}:x".encode())}
    finally:
        for p in procs.values():
            assert p.terminate() == 0, p.log()
        r.close()
