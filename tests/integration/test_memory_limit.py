"""`commissioning up`'s private Redis is bounded and never evicts; readiness warns before it is
full (issue 16)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from shared.redis_server import RedisServer
from tests.support import serve, service_env

pytestmark = pytest.mark.integration


def test_a_filling_redis_is_reported_then_refuses_writes_rather_than_evicting(
    partners_path: Path, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis", maxmemory="48mb").start()
    r = redis.Redis.from_url(server.url)
    proc = serve(tmp_path, service_env(server.url, "m", partners_path), "needs")
    try:
        proc.wait_ready()
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        ready = httpx.get(f"{proc.url}/health/ready").json()
        assert ready["status"] == "ready" and "warning" not in ready
        limit = 48 * 2**20
        n = 0
        # filled by what stays: used_memory also counts the AOF buffer, which holds several of these
        # writes while a slow disk's fsync postpones its flush (5 MB, a tenth of the limit, in CI)
        while settled(r) < 0.85 * limit:
            r.set(f"filler:{n}", b"x" * 2**20)
            n += 1
        ready = httpx.get(f"{proc.url}/health/ready")
        assert ready.status_code == 200 and "raise maxmemory" in ready.json().get("warning", ""), ready.text
        before = r.info("memory")["used_memory"]
        metrics = {
            s.name: s.value
            for f in text_string_to_metric_families(httpx.get(f"{proc.url}/metrics").text)
            for s in f.samples
        }
        after = r.info("memory")["used_memory"]
        assert metrics["commissioning_redis_memory_max_bytes"] == limit
        # as Redis itself says around the scrape (memory moves between two looks: the AOF buffer
        # flushed, client buffers freed, streams trimmed)
        used = metrics["commissioning_redis_memory_used_bytes"]
        low, high = min(before, after) - 0.02 * limit, max(before, after) + 0.02 * limit
        assert low <= used <= high, (before, used, after)
        assert used >= 0.84 * limit
        # filled on in smaller steps: readiness fails (from 92.5% here) before any write is refused.
        # Asked of the service at each step, not judged from the test's own reading: used_memory
        # moves by a few hundred KB between two looks (buffers freed, streams trimmed)
        while (ready := httpx.get(f"{proc.url}/health/ready")).status_code == 200:
            r.set(f"filler:{n}", b"x" * 2**16)  # refused here (maxmemory): not ready came too late
            n += 1
        assert ready.status_code == 503 and "writes will be refused" in ready.json()["reason"], ready.text
        assert settled(r) >= 0.88 * limit
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            for k in range(20):
                r.set(f"filler:{n + k}", b"x" * 2**20)
        assert r.exists("filler:0"), "nothing evicted"
    finally:
        proc.stop()
        r.close()
        server.stop()


def settled(r: redis.Redis) -> int:
    """Redis's used memory less its AOF buffer (what a flush frees)."""
    info = r.info("memory")
    return int(info["used_memory"]) - int(info.get("mem_aof_buffer", 0))
