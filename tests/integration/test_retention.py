"""Nothing grows without bound (issue 16): handled entries trimmed, never an unhandled one;
derived streams capped; idempotency ids kept for a window. On a real Redis, and with the
gateway SIGKILLed mid-batch."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

from shared.adapters.redis import RedisDelivery
from shared.bus import Retention
from shared.streams import Streams
from tests.support import event, need_data, serve, service_env, signed, wait_for

pytestmark = pytest.mark.integration


def test_entries_are_trimmed_only_once_every_group_handled_them(
    r: redis.Redis, prefix: str, redis_url: str
) -> None:
    stream = f"{prefix}:s"
    ids = [r.xadd(stream, {"n": n}).decode() for n in range(10)]
    r.xgroup_create(stream, "a", id="0")
    r.xgroup_create(stream, "b", id="0")
    for _, entries in r.xreadgroup("a", "c", {stream: ">"}):
        r.xack(stream, "a", *[i for i, _ in entries])
    [(_, got)] = r.xreadgroup("b", "c", {stream: ">"}, count=6)
    r.xack(stream, "b", got[0][0], got[1][0], got[3][0])  # ids[2] is still pending in b

    async def go(below: str) -> int:
        client = Redis.from_url(redis_url)
        try:
            delivery = RedisDelivery(client, Streams(prefix))
            assert await delivery.handled_below(stream) == below
            return await Retention(delivery).trim_handled([stream])
        finally:
            await client.aclose()

    assert asyncio.run(go(ids[2])) == 2
    assert [i.decode() for i, _ in r.xrange(stream)] == ids[2:], "the pending entry and all after it are kept"
    r.xack(stream, "b", got[2][0], got[4][0], got[5][0])
    ms, seq = ids[5].split("-")
    # b has handled ids[..5]: trimmed below ids[5] + 1, the undelivered ids[6..] stay
    assert asyncio.run(go(f"{ms}-{int(seq) + 1}")) == 4
    assert [i.decode() for i, _ in r.xrange(stream)] == ids[6:]


def test_a_group_whose_pending_entries_are_acked_while_it_is_looked_at_is_trimmed_to_what_it_read(
    r: redis.Redis, prefix: str, redis_url: str
) -> None:
    """A group can ack its pending entries between the look at the groups and the look at its
    pending entries (a busy consumer, every few milliseconds): that round then trims below what
    the group had read at the first look, where it failed before (an error logged each time)."""
    stream = f"{prefix}:s"
    ids = [r.xadd(stream, {"n": n}).decode() for n in range(6)]
    r.xgroup_create(stream, "a", id="0")
    [(_, got)] = r.xreadgroup("a", "c", {stream: ">"}, count=4)

    class AckingMeanwhile(Redis):
        async def xpending(self, name: str, groupname: str) -> dict:  # type: ignore[override, type-arg]
            await super().xack(name, groupname, *[i for i, _ in got])  # the consumer, meanwhile
            return await super().xpending(name, groupname)

    async def go() -> str | None:
        client = AckingMeanwhile.from_url(redis_url)
        try:
            return await RedisDelivery(client, Streams(prefix)).handled_below(stream)
        finally:
            await client.aclose()

    ms, seq = ids[3].split("-")
    assert asyncio.run(go()) == f"{ms}-{int(seq) + 1}"
    assert r.xpending(stream, "a")["pending"] == 0


def test_derived_streams_are_capped_and_ids_kept_for_their_window(
    r: redis.Redis, prefix: str, redis_url: str
) -> None:
    derived, once = f"{prefix}:savings.updated", Streams(prefix).seen("g")
    pipe = r.pipeline()
    for n in range(1_000):
        pipe.xadd(derived, {"event": b"{}"})
    now = int(time.time() * 1000)
    pipe.zadd(once, {f"old-{n}": now - 3_600_000 for n in range(50)})
    pipe.zadd(once, {f"new-{n}": now - n for n in range(1_500)})
    pipe.execute()

    async def go() -> dict[str, int]:
        client = Redis.from_url(redis_url)
        try:
            return await Retention(
                RedisDelivery(client, Streams(prefix)),
                capped={derived: 200},
                groups=["g"],
                window_s=60,
                max_ids=1_000,
            ).run_once()
        finally:
            await client.aclose()

    done = asyncio.run(go())
    assert 200 <= r.xlen(derived) < 300  # MAXLEN ~: whole nodes of 100 entries
    assert r.zcard(once) == 1_000 and r.zscore(once, "new-0") is not None and r.zscore(once, "old-0") is None
    assert done["ids"] == 550


def test_inbound_is_trimmed_behind_the_gateway_and_survives_a_sigkill_mid_batch(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    # many more than are forwarded before the kill: the gateway is killed with work left even when
    # this process is slow to see it get there (seen once in CI, on a loaded machine)
    inbound, n = f"{prefix}:inbound", 9_000
    pipe = r.pipeline()
    for i in range(n):
        pipe.xadd(inbound, signed(event(need_data(n=i), id=f"e{i}")))
    pipe.execute()
    env = service_env(redis_url, prefix, partners_path, trim_interval_s="0.05", batch_size="50")
    gateway = serve(tmp_path, env, "gateway", name="gw1")
    try:
        # a ninth verified and forwarded to the needs service, and handled entries trimmed while it runs
        wait_for(
            lambda: r.xlen(f"{prefix}:requests:needs") >= n // 9 and r.xlen(inbound) < n,
            60,
            what="a ninth forwarded and the handled ones trimmed",
        )
        gateway.kill()
        kept = {i.decode() for i, _ in r.xrange(inbound)}
        [group] = r.xinfo_groups(inbound)
        pending = {row["message_id"].decode() for row in r.xpending_range(inbound, "gateway", "-", "+", n)}
        last = group["last-delivered-id"].decode()
        undelivered = {i.decode() for i, _ in r.xrange(inbound, min=f"({last}", max="+")}
        assert pending <= kept and undelivered <= kept, "nothing unhandled was trimmed"
        assert len(pending) + len(undelivered) > 0, "killed mid-run, with work left"

        gateway = serve(tmp_path, env, "gateway", name="gw2")
        wait_for(lambda: r.xlen(f"{prefix}:requests:needs") >= n, 60, what="everything forwarded")
        wait_for(lambda: r.xlen(inbound) <= 1, 20, what="inbound trimmed behind the gateway")
        events = [json.loads(f[b"event"])["id"] for _, f in r.xrange(f"{prefix}:requests:needs")]
        assert sorted(events) == sorted(f"e{i}" for i in range(n)), "each exactly once"
        assert r.zcard(f"{prefix}:group:gateway:once") == n
    finally:
        gateway.stop()


def test_state_logs_keep_their_window_and_a_replica_behind_it_reads_its_state_whole(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    from tests.support import READ

    import httpx

    env = service_env(redis_url, prefix, partners_path, trim_interval_s="0.2", state_log_keep_s="10")
    first = serve(tmp_path, env, "needs", "savings", name="first")
    try:
        first.wait_ready()
        for i in range(20):
            r.xadd(f"{prefix}:inbound", signed(event(need_data(n=i), id=f"early-{i}")))
        log = f"{prefix}:state:savings:log"
        wait_for(lambda: r.hlen(f"{prefix}:state:savings:events") == 20, 30, what="the needs applied")
        assert r.xlen(log) == 20
        # a replica stopped (SIGSTOP: it keeps its memory and its position in the log)...
        second = serve(tmp_path, env, "savings", name="second").wait_ready()
        second.p.send_signal(19)
        for i in range(20, 30):
            r.xadd(f"{prefix}:inbound", signed(event(need_data(n=i), id=f"late-{i}")))
        wait_for(lambda: r.hlen(f"{prefix}:state:savings:events") == 30, 30, what="the rest applied")
        # ...for longer than the log keeps: everything it would follow is trimmed
        wait_for(lambda: r.xlen(log) == 0, 30, what="the state log trimmed to its window")
        assert r.hlen(f"{prefix}:state:savings:events") == 30, "the set keeps every event"
        second.p.send_signal(18)  # SIGCONT: it finds its position trimmed and reads the set whole
        wait_for(
            lambda: httpx.get(f"{second.url}/savings", headers=READ).json()["events_applied"] == 30,
            30,
            what="the replica behind the trim to have every event",
        )
        assert "state log trimmed past this process" in second.log()
        second.stop()
    finally:
        first.stop()


def test_an_owners_refusals_are_forgotten_after_the_window_its_acceptances_kept(
    r: redis.Redis, prefix: str, redis_url: str
) -> None:
    from shared.adapters.redis import RedisDecisionLog
    from shared.authority import Refused
    from shared.ports import Decision
    from shared.streams import Streams

    async def go() -> tuple[list[str], dict[str, int], dict[str, str]]:
        client = Redis.from_url(redis_url)
        try:
            decisions = RedisDecisionLog(client, Streams(prefix), "contracts")
            for n in range(5):
                await decisions.hold(f"a r{n}", b"{}", f"{n + 1}-0", "")
            t = "monitoring.return.submitted"
            stood = await decisions.record(
                [Decision(f"a r{n}", t, "a", refused=Refused("not_the_lead", "no")) for n in range(4)]
                + [Decision("a r4", t, "a")]
            )
            # two of the refusals were recorded two hours ago
            r.zadd(decisions.refused_key, {"a r0": time.time() * 1000 - 7_200_000}, xx=True)
            r.zadd(decisions.refused_key, {"a r1": time.time() * 1000 - 7_200_000}, xx=True)
            done = await Retention(
                RedisDelivery(client, Streams(prefix)), window_s=3600, decision_logs=[decisions]
            ).run_once()
            return stood, done, await decisions.verdicts()
        finally:
            await client.aclose()

    stood, done, verdicts = asyncio.run(go())
    assert stood == ["refused:not_the_lead"] * 4 + ["accepted"]
    assert done["refusals"] == 2
    assert verdicts == {"a r2": "refused:not_the_lead", "a r3": "refused:not_the_lead", "a r4": "accepted"}
    assert r.zcard(f"{prefix}:state:contracts:refused") == 2
