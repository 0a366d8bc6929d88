"""During a Redis outage a process says so once, with its retry state, and once when Redis is
back: no traceback per retry (issue 16)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from shared.redis_server import RedisServer
from shared.partners import sign
from tests.support import PARTNERS, event, need_data, serve, service_env, wait_for

pytestmark = pytest.mark.integration


def test_an_outage_is_one_warning_line_not_tracebacks(partners_path: Path, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    proc = serve(tmp_path, service_env(server.url, "o", partners_path, trim_interval_s="0.1"))
    try:
        proc.wait_ready()
        server.kill()  # at once (a SIGTERM'd Redis answers some commands while it shuts down)

        def lines() -> list[dict]:
            return [json.loads(x) for x in proc.log_path.read_text().splitlines() if x.startswith("{")]

        # the sweepers (every 0.25 s here), retention (0.1 s) and refreshes all fail meanwhile
        wait_for(
            lambda: any(x["event"] == "redis unreachable; retrying, work left pending" for x in lines()), 20
        )
        time.sleep(2)  # the outage lasts a while: dozens of failed rounds
        body = json.dumps(event(need_data())).encode()
        answer = httpx.post(
            f"{proc.url}/events",
            content=body,
            timeout=30,
            headers={
                "Content-Type": "application/cloudevents+json",
                "X-Signature": "sha256=" + sign(PARTNERS["staffordshire-cc"], body),
            },
        )
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5", "not the sender's fault"
        big = httpx.post(f"{proc.url}/events", content=b" " * 70_000, timeout=30,
                         headers={"Content-Type": "application/cloudevents+json"})
        assert big.status_code == 413, "the sender's fault, Redis or not"
        server.start()
        wait_for(lambda: any(x["event"] == "redis reachable again" for x in lines()), 20, what="back")
        proc.wait_ready()
        events = [x["event"] for x in lines()]
        assert events.count("redis unreachable; retrying, work left pending") == 1
        back = next(x for x in lines() if x["event"] == "redis reachable again")
        assert back["failed_attempts"] > 5, "it retried many times, quietly"
        assert "Traceback" not in proc.log_path.read_text()
        assert not [e for e in events if "failed" in e], events
    finally:
        proc.stop()
        server.stop()
