"""The savings service on a real Redis, in real processes: killed mid-stream, it resumes and
ends with exactly the figures the pure model gives for the same set of events."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from services.savings.model import Facts, evolve, project
from services.savings.updates import ROW_FIELDS, row_of
from shared.events import PAYLOADS, SavingsUpdatedData
from shared.policy import SavingsPolicy
from shared.redis_server import free_port
from tests.eventgen import history
from tests.portfolio import decommissioned, portfolio
from tests.support import (OWNERS, PARTNERS, READ, ROOT, Proc, accepted_count, event, figures_only, serve,
                           service_env, signed, wait_for)

pytestmark = pytest.mark.integration


def build(seeds: range) -> tuple[list[dict[str, bytes]], dict[str, Any]]:
    entries, facts = [], Facts()
    for seed in seeds:
        for n, (pid, etype, data) in enumerate(history(seed, list(PARTNERS))):
            eid = f"s{seed}-{n}"
            entries.append(signed(event(data, type=etype, partner=pid, id=eid), partner=pid))
            evolve(facts, f"/partners/{pid} {eid}", PAYLOADS[etype].model_validate(data))
    return entries, project(facts, SavingsPolicy())


def updates(r: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    return [json.loads(f[b"event"])["data"] for _, f in r.xrange(f"{prefix}:savings.updated")]


def dashboard_rows(r: redis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    """Every update applied in order, as the dashboard applies them: each contract's row."""
    rows: dict[str, dict[str, Any]] = {}
    for data in updates(r, prefix):
        SavingsUpdatedData.model_validate(data)
        rows.update({c["contract_id"]: c for c in data["contracts"]})
        for cid in data.get("contracts_removed", []):
            rows.pop(cid)
    return rows


def test_killed_mid_stream_the_savings_service_resumes_to_identical_figures(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    entries, expected = build(range(40))
    unique = expected["events_applied"]
    assert unique > 1000
    pipe = r.pipeline(transaction=False)
    for i, e in enumerate(entries):
        pipe.xadd(f"{prefix}:inbound", e)
        if i % 7 == 0:
            pipe.xadd(f"{prefix}:inbound", e)  # sent twice: counts once
    pipe.execute()

    env = service_env(redis_url, prefix, partners_path, batch_size="25", claim_idle_ms="300")
    applied = lambda: r.hlen(f"{prefix}:state:savings:events")  # noqa: E731
    proc = serve(tmp_path, env, *OWNERS, "savings")
    wait_for(lambda: applied() > unique // 3, 60, what="a third of the events applied")
    proc.kill()
    assert applied() < unique, "killed too late to prove anything"

    proc = serve(tmp_path, env, *OWNERS, "savings", name="restarted")
    try:
        proc.wait_ready()

        def settled() -> bool:
            got = httpx.get(f"{proc.url}/savings", timeout=5, headers=READ).json()
            return got["events_applied"] == accepted_count(r, prefix) >= unique and all(
                r.xpending(f"{prefix}:{t}", "savings")["pending"] == 0
                for t in ("need.identified", "tender.awarded", "monitoring.return.submitted")
            ) and figures_only(got) == figures_only(expected)

        wait_for(settled, 90, 0.2, "every event applied and nothing pending")
        assert "state loaded from a snapshot" in proc.log_path.read_text(), "restarted from it and the log after it"
        last = r.xrevrange(f"{prefix}:savings.updated", count=1)[0][1][b"event"]
        update = json.loads(last)
        assert update["type"] == "savings.updated" and update["source"] == "/services/savings"
        SavingsUpdatedData.model_validate(update["data"])  # the contract's shape
        assert update["data"]["portfolio"] == expected["portfolio"]
        assert update["data"]["partners"] == expected["partners"]
        # each update carries the contracts that changed: all of them, applied in order as a
        # dashboard does, give every contract's row (across the kill)
        assert dashboard_rows(r, prefix) == {c["contract_id"]: row_of(c) for c in expected["contracts"]}
        assert not list(r.scan_iter(match=f"{prefix}:rejected:*"))
        assert r.xlen(f"{prefix}:dead-letter") == 0
    finally:
        assert proc.terminate() == 0, proc.log()


def test_rebuild_replays_the_streams_into_the_same_figures(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    entries, expected = build(range(5))
    for e in entries:
        r.xadd(f"{prefix}:inbound", e)
    env = service_env(redis_url, prefix, partners_path)
    proc = serve(tmp_path, env, *OWNERS, "savings")
    try:
        proc.wait_ready()
        wait_for(lambda: figures_only(httpx.get(f"{proc.url}/savings", headers=READ).json()) == figures_only(expected), 30)

        def settled() -> int:
            # the contracts service's own `contract_end` decommissionings may still be coming
            # (they change no figure): count once every accepted event is applied and none came
            # for half a second
            n = accepted_count(r, prefix)
            time.sleep(0.5)
            applied = httpx.get(f"{proc.url}/savings", headers=READ).json()["events_applied"]
            return n if n == accepted_count(r, prefix) == applied else 0

        count = wait_for(settled, 30, what="every accepted event applied")
        # lose the projection's state: the rebuild brings it back from the streams alone
        r.delete(f"{prefix}:state:savings:events")
        done = subprocess.run([sys.executable, "-m", "services.cli", "savings", "rebuild"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"{count} events applied" in done.stdout
        assert "rebuild: events replayed" in done.stderr, "progress is shown"
        saved = r.hgetall(f"{prefix}:state:savings:snapshot")
        assert saved[b"generation"] == r.get(f"{prefix}:state:savings:generation"), "a snapshot of the rebuilt set"
        # again (in this process alone): it starts from the snapshot the first saved, at the same log
        # position, and still saves one for the set it swaps in (it did not: the log had not moved)
        again = subprocess.run([sys.executable, "-m", "services.cli", "savings", "rebuild", "--workers", "1"],
                               env=env, cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
        assert "figures unchanged" in again.stdout, "the same events: the same document, tables and all"
        saved = r.hgetall(f"{prefix}:state:savings:snapshot")
        assert saved[b"generation"] == r.get(f"{prefix}:state:savings:generation"), "a snapshot of the rebuilt set"
        wait_for(lambda: figures_only(httpx.get(f"{proc.url}/savings", headers=READ).json()) == figures_only(expected), 10,
                 what="the running service to pick up the rebuilt projection")
    finally:
        assert proc.terminate() == 0, proc.log()


def test_the_gateway_scaled_apart_from_the_savings_service(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    """`serve gateway` verifies; `serve savings` with COMMISSIONING_GATEWAY=false only projects:
    the figures are the pure model's, and only the gateway process read `P:inbound`."""
    entries, expected = build(range(8))
    env = service_env(redis_url, prefix, partners_path)
    savings = serve(tmp_path, {**env, "COMMISSIONING_GATEWAY": "false"}, *OWNERS, "savings", name="savings-only")
    gateway = serve(tmp_path, env, "gateway", name="gateway-only")
    try:
        savings.wait_ready()
        gateway.wait_ready()
        for e in entries:
            r.xadd(f"{prefix}:inbound", e)
        wait_for(lambda: figures_only(httpx.get(f"{savings.url}/savings", headers=READ).json()) == figures_only(expected), 60,
                 what="the savings process to show the model's figures")
        readers = {c["name"].decode() for c in r.xinfo_consumers(f"{prefix}:inbound", "gateway")}
        assert readers == {httpx.get(f"{gateway.url}/health/ready").json()["consumer"]}
        # the accepted needs are read by their consumers, never by the gateway
        assert {g["name"] for g in r.xinfo_groups(f"{prefix}:need.identified")} == {b"savings", b"procurement"}
        assert httpx.get(f"{gateway.url}/savings", headers=READ).status_code == 404  # the gateway serves no projection
    finally:
        assert savings.terminate() == 0, savings.log()
        assert gateway.terminate() == 0, gateway.log()


def test_an_update_carries_only_the_contracts_that_changed(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    """With 400 contracts, a decommissioning publishes one update carrying one contract, with
    `portfolio` and `partners` complete; `GET /savings` has every contract, and says which
    update its figures were published as."""
    entries = portfolio(400)
    env = service_env(redis_url, prefix, partners_path, snapshot_interval_s="0")  # snapshots off
    proc = serve(tmp_path, env, *OWNERS, "savings")
    try:
        proc.wait_ready()
        load = r.pipeline(transaction=False)
        for e in entries:
            load.xadd(f"{prefix}:inbound", e)
        load.execute()
        wait_for(lambda: httpx.get(f"{proc.url}/savings", headers=READ).json()["events_applied"] == len(entries),
                 60, what="every event applied")
        wait_for(lambda: len(dashboard_rows(r, prefix)) == 400, 10, what="every contract published")
        before = r.xlen(f"{prefix}:savings.updated")

        r.xadd(f"{prefix}:inbound", decommissioned(7))
        wait_for(lambda: r.xlen(f"{prefix}:savings.updated") > before, 10, what="an update")
        got = httpx.get(f"{proc.url}/savings", headers=READ)
        whole = got.json()
        newest = r.xrevrange(f"{prefix}:savings.updated", count=1)[0]
        update = json.loads(newest[1][b"event"])["data"]
        assert [c["contract_id"] for c in update["contracts"]] == ["c-00007"]
        row = update["contracts"][0]
        assert row["status"] == "decommissioned" and tuple(row) == ROW_FIELDS
        assert update["portfolio"] == whole["portfolio"] and update["partners"] == whole["partners"]
        assert whole["portfolio"]["active_contracts"] == 399 and len(whole["contracts"]) == 400
        assert got.headers["Savings-Update-Id"] == newest[0].decode()
        assert dashboard_rows(r, prefix) == {c["contract_id"]: row_of(c) for c in whole["contracts"]}
        assert r.xlen(f"{prefix}:savings.updated") == before + 1
        assert not r.exists(f"{prefix}:state:savings:snapshot"), "COMMISSIONING_SNAPSHOT_INTERVAL_S=0: none saved"
    finally:
        assert proc.terminate() == 0, proc.log()


def test_killed_between_its_apply_and_its_publish_it_publishes_on_restart(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    """Issue 16: a savings process that dies after the atomic apply of a batch and before it
    publishes leaves `P:savings.updated` behind; the restarted process publishes the difference
    at once, with no new event."""
    env = service_env(redis_url, prefix, partners_path)
    first = serve(tmp_path, env, *OWNERS, "savings", name="first")
    try:
        first.wait_ready()
        for e in portfolio(12):
            r.xadd(f"{prefix}:inbound", e)
        wait_for(lambda: (u := updates(r, prefix)) and u[-1]["events_applied"] == 36, 30,
                 what="the figures published")
    finally:
        first.kill()
    published = r.xlen(f"{prefix}:savings.updated")

    # the same process, except that it exits where it would publish (tests/procs)
    port = free_port()
    dying = Proc([sys.executable, "-m", "tests.procs.exit_before_publish", "serve", *OWNERS, "savings"],
                 {**env, "COMMISSIONING_HTTP_PORT": str(port)}, tmp_path / "dying.log", port).start()
    try:
        dying.wait_ready()  # started: its figures equal the last published, so it published nothing
        r.xadd(f"{prefix}:inbound", decommissioned(3))
        assert dying.p is not None and dying.p.wait(30) == 137, dying.log()
    finally:
        dying.stop()
    assert r.hexists(f"{prefix}:state:savings:events", "/partners/tamworth-bc d-3"), "applied"
    assert r.xlen(f"{prefix}:savings.updated") == published, "and not published"

    restarted = serve(tmp_path, env, *OWNERS, "savings", name="restarted")
    try:
        restarted.wait_ready()
        wait_for(lambda: r.xlen(f"{prefix}:savings.updated") == published + 1, 10,
                 what="the restart to publish")
        got = httpx.get(f"{restarted.url}/savings", headers=READ)
        whole, newest = got.json(), r.xrevrange(f"{prefix}:savings.updated", count=1)[0]
        update = json.loads(newest[1][b"event"])["data"]
        assert whole["events_applied"] == update["events_applied"] == 37
        assert update["portfolio"] == whole["portfolio"] and update["partners"] == whole["partners"]
        assert [c["contract_id"] for c in update["contracts"]] == ["c-00003"]
        assert dashboard_rows(r, prefix) == {c["contract_id"]: row_of(c) for c in whole["contracts"]}
        assert got.headers["Savings-Update-Id"] == newest[0].decode()
    finally:
        assert restarted.terminate() == 0, restarted.log()

    again = serve(tmp_path, env, *OWNERS, "savings", name="again")  # nothing differs now: nothing published
    try:
        again.wait_ready()
        got = httpx.get(f"{again.url}/savings", headers=READ)
        assert got.headers["Savings-Update-Id"] == newest[0].decode()
        assert r.xlen(f"{prefix}:savings.updated") == published + 1
    finally:
        assert again.terminate() == 0, again.log()


def test_the_update_stream_is_capped_and_the_rows_kept_with_each_update(r: redis.Redis, prefix: str,
                                                                         redis_url: str) -> None:
    """`P:savings.updated` keeps about `kept` entries (Redis trims whole radix-tree nodes of
    100 entries), and the rows each update carried are recorded with it."""
    from redis.asyncio import Redis as AsyncRedis

    from services.savings.updates import Update, UpdateLog
    from shared.adapters.redis import redis_ports
    from shared.streams import Streams

    async def run() -> str:
        client = AsyncRedis.from_url(redis_url)
        streams = Streams(prefix)
        log = UpdateLog(redis_ports(client, streams, "savings").updates(streams.savings_updated, 100))
        for n in range(450):
            row = {"contract_id": f"c-{n % 300}", "annual_saving": f"{n}.00", "status": "active"}
            update = Update({}, {row["contract_id"]: json.dumps(row).encode()}, [], {})
            last = await log.append([json.dumps({"n": n}).encode()], update)
        await client.aclose()
        return last

    last = asyncio.run(run())
    assert 100 <= r.xlen(f"{prefix}:savings.updated") <= 200
    assert last == r.xrevrange(f"{prefix}:savings.updated", count=1)[0][0].decode()
    rows = r.hgetall(f"{prefix}:state:savings:published")
    assert len(rows) == 300 and json.loads(rows[b"c-0"])["annual_saving"] == "300.00"
