"""A flood at each entry point (issue 16): 180 MB of hostile input, unsigned 60 KB bodies from
unknown partners on `P:inbound` and at `POST /events`, while a partner sends valid events.
Redis must grow by less than 24 MB, and every valid event must count."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import redis

from tests.support import READ, event, need_data, serve, service_env, signed, wait_for

pytestmark = pytest.mark.integration
BODY = 60_000
BOUND = 24 * 1024 * 1024


def hostile(n: int) -> bytes:
    ev = event(need_data("nobody", n), partner="nobody", id=f"flood-{n}")
    raw = json.dumps(ev).encode()
    return raw[:-1] + b', "pad": "' + b"x" * (BODY - len(raw) - 11) + b'"}'


def test_a_180_mb_flood_grows_redis_by_less_than_24_mb_and_valid_events_count(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    env = service_env(redis_url, prefix, partners_path, trim_interval_s="0.2")
    proc = serve(tmp_path, env, "savings")
    try:
        proc.wait_ready()
        before = r.info("memory")["used_memory"]
        inbound, sent, valid = f"{prefix}:inbound", 0, 0
        with httpx.Client(base_url=proc.url, timeout=30) as http:
            for chunk in range(30):  # 30 rounds of 50 on the stream, 50 over HTTP, 5 valid
                pipe = r.pipeline(transaction=False)
                for k in range(50):
                    body = hostile(chunk * 50 + k)
                    pipe.xadd(inbound, {"event": body, "signature": b"0" * 64})
                    sent += len(body)
                for k in range(5):
                    pipe.xadd(inbound, signed(event(need_data(n=valid + k), id=f"ok-{valid + k}")))
                pipe.execute()
                valid += 5
                for k in range(50):
                    body = hostile(10_000 + chunk * 50 + k)
                    answer = http.post(
                        "/events",
                        content=body,
                        headers={
                            "Content-Type": "application/cloudevents+json",
                            "X-Signature": "sha256=" + "0" * 64,
                        },
                    )
                    assert answer.status_code == 401, answer.text
                    sent += len(body)
        assert sent >= 180_000_000 and len(hostile(0)) == BODY
        wait_for(
            lambda: httpx.get(f"{proc.url}/savings", headers=READ).json()["events_applied"] == valid,
            120,
            what="every valid event counted",
        )
        wait_for(lambda: r.xlen(inbound) <= 1, 30, what="inbound trimmed")
        growth = r.info("memory")["used_memory"] - before
        unknown = r.memory_usage(f"{prefix}:rejected:unknown") or 0
        per_rejection = unknown / max(r.xlen(f"{prefix}:rejected:unknown"), 1)
        print(
            f"\nflood {sent / 1e6:.0f} MB: Redis grew {growth / 1e6:.1f} MB; "
            f"P:rejected:unknown {unknown / 1e6:.2f} MB, {per_rejection:.0f} bytes a rejection"
        )
        assert growth < BOUND, f"Redis grew {growth / 1e6:.1f} MB"
        assert per_rejection < 1_000
    finally:
        assert proc.terminate() == 0, proc.log()
