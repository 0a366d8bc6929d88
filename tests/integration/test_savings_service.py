"""The savings service on a real Redis, in real processes: killed mid-stream, it resumes and
ends with exactly the figures the pure model gives for the same set of events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from services.savings.model import Facts, evolve, project
from shared.events import PAYLOADS, SavingsUpdatedData
from shared.policy import SavingsPolicy
from tests.eventgen import history
from tests.support import OWNERS, PARTNERS, READ, accepted_count, event, figures_only, serve, service_env, signed, wait_for

pytestmark = pytest.mark.integration


def build(seeds: range) -> tuple[list[dict[str, bytes]], dict[str, Any]]:
    entries, facts = [], Facts()
    for seed in seeds:
        for n, (pid, etype, data) in enumerate(history(seed, list(PARTNERS))):
            eid = f"s{seed}-{n}"
            entries.append(signed(event(data, type=etype, partner=pid, id=eid), partner=pid))
            evolve(facts, f"/partners/{pid} {eid}", PAYLOADS[etype].model_validate(data))
    return entries, project(facts, SavingsPolicy())


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
        last = r.xrevrange(f"{prefix}:savings.updated", count=1)[0][1][b"event"]
        update = json.loads(last)
        assert update["type"] == "savings.updated" and update["source"] == "/services/savings"
        SavingsUpdatedData.model_validate(update["data"])  # the contract's shape
        assert update["data"]["portfolio"] == expected["portfolio"]
        assert update["data"]["partners"] == expected["partners"]
        assert [c["contract_id"] for c in update["data"]["contracts"]] == [c["contract_id"] for c in expected["contracts"]]
        assert not list(r.scan_iter(match=f"{prefix}:rejected:*"))
        assert r.xlen(f"{prefix}:dead-letter") == 0
    finally:
        assert proc.terminate() == 0, proc.log()


def test_rebuild_replays_the_streams_into_the_same_figures(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from tests.support import ROOT

    entries, expected = build(range(5))
    for e in entries:
        r.xadd(f"{prefix}:inbound", e)
    env = service_env(redis_url, prefix, partners_path)
    proc = serve(tmp_path, env, *OWNERS, "savings")
    try:
        proc.wait_ready()
        wait_for(lambda: figures_only(httpx.get(f"{proc.url}/savings", headers=READ).json()) == figures_only(expected), 30)
        count = accepted_count(r, prefix)
        # lose the projection's state: the rebuild brings it back from the streams alone
        r.delete(f"{prefix}:state:savings:events")
        done = subprocess.run([sys.executable, "-m", "services.cli", "savings", "rebuild"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"{count} events applied" in done.stdout
        assert "rebuild: events replayed" in done.stderr, "progress is shown"
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
