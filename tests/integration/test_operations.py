"""Operations on real processes: health and metrics endpoints, and scale-out in one group."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import redis

from shared.tscip import reference_payloads
from tests.integration.test_savings_service import build
from tests.support import OWNERS, READ, ROOT, accepted_count, figures_only, send_as, serve, service_env, wait_for, write_tscip_partners

pytestmark = pytest.mark.integration


def metric(text: str, name: str, labels: str = "") -> float | None:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_health_and_metrics_on_every_service(
    r: redis.Redis, prefix: str, redis_url: str, tmp_path: Path
) -> None:
    partners = write_tscip_partners(tmp_path / "tscip.toml")
    env = service_env(redis_url, prefix, partners)
    procs = {name: serve(tmp_path, env, name) for name in ("needs", "procurement", "contracts", "savings")}
    try:
        for p in procs.values():
            p.wait_ready()
            assert httpx.get(f"{p.url}/health/live").json() == {"status": "live"}
            assert httpx.get(f"{p.url}/health/ready").json()["status"] == "ready"
        for n, (pid, etype, data) in enumerate(reference_payloads("fifteen")):
            send_as(r, prefix, pid, etype, data, f"ref-{n}")
        r.xadd(f"{prefix}:inbound", {"event": b'{"source": "/partners/nobody"', "signature": b"x"})
        savings = procs["savings"]
        wait_for(lambda: httpx.get(f"{savings.url}/savings", headers=READ).json()["portfolio"]["annual_saving"] == "317648.00", 30)
        text = httpx.get(f"{savings.url}/metrics").text
        assert metric(text, "commissioning_savings_pounds", '{figure="annual_saving"}') == 317648.0
        assert metric(text, "commissioning_savings_roi") == 0.58
        assert metric(text, "commissioning_dead_letters") == 0.0
        assert metric(text, "commissioning_rejections", '{partner="unknown"}') == 1.0
        assert metric(text, "commissioning_pending_entries", f'{{group="savings",stream="{prefix}:tender.awarded"}}') == 0.0
        assert metric(text, "commissioning_consumer_lag", f'{{group="savings",stream="{prefix}:tender.awarded"}}') == 0.0
        assert metric(text, "commissioning_redis_up") == 1.0
        assert "faststream_received_messages_total" in text, "FastStream's Redis Prometheus middleware"
        dashboard = (ROOT / "deploy" / "grafana" / "dashboard.json").read_text()
        for name in set(re.findall(r"\b(commissioning_[a-z_]+|faststream_[a-z_]+)", dashboard)):
            assert re.search(rf"^{name}[{{ ]", text, re.M), f"the Grafana board charts {name}, which no process exports"
        for p in procs.values():
            assert "commissioning_pending_entries" in httpx.get(f"{p.url}/metrics").text
    finally:
        for p in procs.values():
            assert p.terminate() == 0, p.log()


def test_three_processes_share_the_work_with_identical_figures_and_one_killed(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    entries, expected = build(range(40))
    env = service_env(redis_url, prefix, partners_path, batch_size="10", claim_idle_ms="300")
    procs = [serve(tmp_path, env, *OWNERS, "savings", name=f"replica{i}") for i in range(3)]
    try:
        for p in procs:
            p.wait_ready()
        # sent once all three read: a replica that started late would find the work done
        pipe = r.pipeline(transaction=False)
        for e in entries:
            pipe.xadd(f"{prefix}:inbound", e)
        pipe.execute()
        applied = lambda: r.hlen(f"{prefix}:state:savings:events")  # noqa: E731
        wait_for(lambda: applied() > expected["events_applied"] // 4, 60, what="work under way")
        processed_by_victim = metric(httpx.get(f"{procs[0].url}/metrics").text, "commissioning_entries_processed")
        procs[0].kill()
        want = figures_only(expected)
        wait_for(lambda: all(figures_only(httpx.get(f"{p.url}/savings", headers=READ).json()) == want
                             and httpx.get(f"{p.url}/savings", headers=READ).json()["events_applied"] == accepted_count(r, prefix)
                             for p in procs[1:]), 90, 0.2, "both survivors at the full set")
        shares = [processed_by_victim] + [metric(httpx.get(f"{p.url}/metrics").text, "commissioning_entries_processed") for p in procs[1:]]
        assert all(s and s > 0 for s in shares), f"work not shared: {shares}"
        # the contracts service's own `contract_end` decommissionings may still be coming (they
        # change no figure): every accepted event ends up applied, once
        wait_for(lambda: applied() == accepted_count(r, prefix), 10, what="no event applied twice or lost")
        refused = {k: r.xrange(k) for k in r.scan_iter(match=f"{prefix}:rejected:*")}
        assert not refused, f"every act of the history is allowed; refused: {refused}"
        assert r.xlen(f"{prefix}:need.identified") == sum(1 for e in entries if b'"need.identified"' in e["event"])
    finally:
        for p in procs:
            p.stop()
