"""The bus's guarantees, proven with real processes on a real Redis: nothing lost, nothing
counted twice, poison entries dead-lettered while the rest flow, clean stop on SIGTERM."""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.support import Proc, service_env, wait_for

pytestmark = pytest.mark.integration


def work_event(i: int, **data: object) -> bytes:
    return json.dumps(
        {"specversion": "1.0", "id": f"w-{i}", "source": "/test/producer", "type": "work.done",
         "datacontenttype": "application/json", "data": {"n": i, **data}}
    ).encode()


def counter(tmp: Path, env: dict[str, str], n: int) -> Proc:
    return Proc([sys.executable, "-m", "tests.procs.counter"], env, tmp / f"counter-{n}.log").start()


def counts(r: redis.Redis, prefix: str) -> dict[bytes, int]:
    return {k: int(v) for k, v in r.hgetall(f"{prefix}:counts").items()}


def pending(r: redis.Redis, stream: str, group: str) -> int:
    return int(r.xpending(stream, group)["pending"])


def test_sigkill_mid_batch_loses_nothing_and_counts_nothing_twice(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    n = 3000
    env = service_env(redis_url, prefix, partners_path, batch_size="50", claim_idle_ms="300")
    env["COUNTER_DELAY_MS"] = "1"  # ~50 ms a batch: a kill lands inside one
    stream = f"{prefix}:work"
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(stream, {"event": work_event(i)})
        if i % 10 == 0:  # the same event sent again: must count once
            pipe.xadd(stream, {"event": work_event(i)})
    pipe.execute()

    rng = random.Random(7)
    mid_batch = []
    for k in range(3):
        proc = counter(tmp_path, env, k)
        target = (k + 1) * n // 4 + rng.randrange(100)
        wait_for(lambda: len(counts(r, prefix)) >= target, 60, what=f"{target} events counted")
        # counts move when a batch is applied: wait into the next one (about 50 ms long)
        time.sleep(rng.uniform(0.01, 0.04))
        proc.kill()  # SIGKILL: no chance to finish or ack anything
        mid_batch.append(pending(r, stream, "counter") > 0)
    # a kill that landed between two batches proves nothing; at least one landed inside one
    assert any(mid_batch) or len(counts(r, prefix)) == n, mid_batch

    proc = counter(tmp_path, env, 9)
    try:
        wait_for(lambda: len(counts(r, prefix)) == n and pending(r, stream, "counter") == 0, 60,
                 what="every event counted and nothing pending")
    finally:
        proc.terminate()
    c = counts(r, prefix)
    assert len(c) == n
    assert set(c.values()) == {1}, "an event was applied twice"
    assert r.xlen(f"{prefix}:dead-letter") == 0


def test_poison_entry_is_dead_lettered_after_n_deliveries_while_the_rest_flow(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    env = service_env(redis_url, prefix, partners_path, batch_size="10", claim_idle_ms="200", max_deliveries="3")
    stream = f"{prefix}:work"
    for i in range(40):
        r.xadd(stream, {"event": work_event(i, poison=(i == 5))})
    r.xadd(stream, {"event": b"this is not a CloudEvent"})  # can never succeed: dead-lettered at once
    proc = counter(tmp_path, env, 0)
    try:
        wait_for(lambda: len(counts(r, prefix)) == 39, 30, what="the 39 good events")
        wait_for(lambda: r.xlen(f"{prefix}:dead-letter") == 2, 30, what="two dead letters")
        wait_for(lambda: pending(r, stream, "counter") == 0, 10, what="nothing pending")
    finally:
        assert proc.terminate() == 0
    dead = [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange(f"{prefix}:dead-letter")]
    by_code = {json.loads(d["error"])["code"]: d for d in dead}
    assert set(by_code) == {"handler_error", "invalid_event"}
    poison = by_code["handler_error"]
    assert poison["deliveries"] == "3"
    assert "poisoned on purpose" in json.loads(poison["error"])["message"]
    assert json.loads(poison["event"])["id"] == "w-5"
    assert poison["stream"] == stream and poison["group"] == "counter"
    assert by_code["invalid_event"]["event"] == "this is not a CloudEvent"
    assert set(counts(r, prefix).values()) == {1}
    assert r.hlen(f"{prefix}:group:counter:errors") == 0


def test_entries_published_before_the_group_existed_are_consumed(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    env = service_env(redis_url, prefix, partners_path)
    for i in range(5):
        r.xadd(f"{prefix}:work", {"event": work_event(i)})
    proc = counter(tmp_path, env, 0)
    try:
        wait_for(lambda: len(counts(r, prefix)) == 5, 20, what="the five early events")
        r.xadd(f"{prefix}:work", {"event": work_event(99)})  # and new ones after that
        wait_for(lambda: len(counts(r, prefix)) == 6, 20, what="a new event")
    finally:
        proc.terminate()


def test_sigterm_stops_cleanly_and_nothing_is_lost(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    n = 2000
    env = service_env(redis_url, prefix, partners_path, batch_size="100", claim_idle_ms="300")
    env["COUNTER_DELAY_MS"] = "1"
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(f"{prefix}:work", {"event": work_event(i)})
    pipe.execute()
    proc = counter(tmp_path, env, 0)
    wait_for(lambda: len(counts(r, prefix)) > 300, 30, what="work under way")
    assert proc.terminate(timeout=20) == 0, proc.log()
    done = len(counts(r, prefix))
    assert done < n, "stopped too late to show anything"
    proc = counter(tmp_path, env, 1)
    try:
        wait_for(lambda: len(counts(r, prefix)) == n and pending(r, f"{prefix}:work", "counter") == 0, 60,
                 what="the rest after restart")
    finally:
        proc.terminate()
    assert set(counts(r, prefix).values()) == {1}


def test_departed_consumers_with_nothing_pending_are_forgotten(
    r: redis.Redis, prefix: str, redis_url: str
) -> None:
    import asyncio

    from redis.asyncio import Redis

    from shared.bus import Bus, Effect, Subscription
    from shared.streams import Streams

    stream = f"{prefix}:work"
    r.xgroup_create(stream, "g", id="0", mkstream=True)
    r.xadd(stream, {"event": work_event(1)})
    r.xadd(stream, {"event": work_event(2)})
    r.xreadgroup("g", "dead-with-pending", {stream: ">"}, count=1)
    r.xreadgroup("g", "dead-and-done", {stream: ">"}, count=1)
    entry_id = r.xpending_range(stream, "g", "-", "+", 10, consumername="dead-and-done")[0]["message_id"]
    r.xack(stream, "g", entry_id)

    async def run() -> list[str]:
        client = Redis.from_url(redis_url)
        bus = Bus(client, Streams(prefix))

        async def noop(entry: object) -> Effect:
            return Effect()

        gone = await bus.forget_departed(Subscription("g", stream, noop), idle_ms=0)
        await client.aclose()
        return gone

    assert asyncio.run(run()) == ["dead-and-done"]
    names = {c["name"].decode() for c in r.xinfo_consumers(stream, "g")}
    assert names == {"dead-with-pending"}


def test_a_full_dead_letter_stream_is_listed_and_replayed_once_fixed(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    import subprocess

    from tests.support import ROOT

    env = service_env(redis_url, prefix, partners_path, batch_size="20", claim_idle_ms="200", max_deliveries="2")
    stream = f"{prefix}:work"
    for i in range(60):
        r.xadd(stream, {"event": work_event(i, poison=(i % 3 == 0))})
    proc = counter(tmp_path, env, 0)
    try:
        wait_for(lambda: r.xlen(f"{prefix}:dead-letter") == 20, 60, what="twenty dead letters")
        assert len(counts(r, prefix)) == 40

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "services.cli", "dead-letter", *args], env=env, cwd=ROOT,
                                  capture_output=True, text=True, timeout=60)

        listed = json.loads(cli("list", "--json").stdout)
        assert len(listed) == 20 and {x["code"] for x in listed} == {"handler_error"}
        assert all(x["deliveries"] == 2 and "poisoned on purpose" in x["error"] for x in listed)
        assert "work.done /test/producer w-0" in cli("list").stdout

        r.set(f"{prefix}:fixed", "1")  # the cause is fixed
        one = cli("retry", listed[0]["dead_letter_id"])
        assert one.returncode == 0 and "replayed" in one.stdout
        rest = cli("retry")
        assert rest.returncode == 0 and rest.stdout.count("replayed") == 19
        wait_for(lambda: len(counts(r, prefix)) == 60, 30, what="the replayed entries counted")
        assert r.xlen(f"{prefix}:dead-letter") == 0
        assert set(counts(r, prefix).values()) == {1}
        assert "no dead letters" in cli("list").stdout
    finally:
        proc.terminate()


def test_a_command_failing_in_a_batch_leaves_only_its_entry_pending(r: redis.Redis, prefix: str, redis_url: str) -> None:
    """One script call applies the batch entry by entry: an entry whose effect fails in Redis
    (here WRONGTYPE) is not acked and keeps its error; the entries around it are applied."""
    import asyncio

    from redis.asyncio import Redis

    from shared.bus import Bus, Effect, Entry, Subscription
    from shared.streams import Streams

    stream, target = f"{prefix}:work", f"{prefix}:counts"
    r.set(f"{prefix}:not-a-hash", "x")

    async def handle(entry: Entry) -> Effect:
        n = int(entry.fields[b"n"])
        key = f"{prefix}:not-a-hash" if n == 2 else target
        return Effect((("HINCRBY", key, f"e{n}", 1),), once_key=f"e{n}")

    async def run() -> list[str]:
        client = Redis.from_url(redis_url)
        bus = Bus(client, Streams(prefix))
        sub = Subscription("counter", stream, handle)
        bus.add(sub)
        await bus.ensure_groups()
        for n in range(5):
            await client.xadd(stream, {"n": n})
        rows = await client.xreadgroup("counter", bus.consumer, {stream: ">"}, count=10)
        entries = [Entry(stream, i.decode(), d) for i, d in rows[0][1]]
        applied = await bus.process(sub, entries)
        await client.aclose()
        return [a.entry.fields[b"n"].decode() for a in applied]

    assert asyncio.run(run()) == ["0", "1", "3", "4"]
    assert {k.decode() for k in r.hkeys(target)} == {"e0", "e1", "e3", "e4"}
    assert pending(r, stream, "counter") == 1
    [(field, error)] = r.hgetall(f"{prefix}:group:counter:errors").items()
    assert "WRONGTYPE" in json.loads(error)["message"]
    assert r.zscore(f"{prefix}:group:counter:once", "e2") is None
