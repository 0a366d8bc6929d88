"""Limits on a real `commissioning serve` process and a real Redis (issue 16): sizes, hostile
JSON, rate limits and capped rejection streams, over HTTP and on `P:inbound`."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest
import redis

from shared.partners import sign
from tests.support import PARTNERS, event, need_data, serve, service_env, signed, wait_for

pytestmark = pytest.mark.integration
CE = {"Content-Type": "application/cloudevents+json"}


def post(url: str, body: bytes, partner: str = "staffordshire-cc") -> httpx.Response:
    return httpx.post(
        f"{url}/events",
        content=body,
        timeout=10,
        headers={**CE, "X-Signature": "sha256=" + sign(PARTNERS[partner], body)},
    )


def raw_http(port: int, head: bytes, body: bytes) -> bytes:
    """Send a request's head and part of its body, then read the answer without sending more."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


def drained(r: redis.Redis, prefix: str) -> bool:
    groups = r.xinfo_groups(f"{prefix}:inbound")
    return bool(groups) and groups[0]["pending"] == 0 and groups[0]["lag"] == 0


def test_sizes_and_hostile_json_are_refused_with_a_reason_never_a_5xx(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    proc = serve(tmp_path, service_env(redis_url, prefix, partners_path), "needs")
    try:
        proc.wait_ready()
        port = proc.http_port
        assert port
        # 413 from the Content-Length alone: 10 MB announced, 10 bytes sent, the answer comes
        head = (
            b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\n"
            b"Content-Length: 10000000\r\n\r\n"
        )
        assert raw_http(port, head, b"{" * 10).startswith(b"HTTP/1.1 413")
        # chunked, with no length: cut off once more than 64 KiB arrived, the rest never sent
        head = (
            b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"8000\r\n" + b" " * 0x8000 + b"\r\n"
        assert raw_http(port, head, chunk * 3).startswith(b"HTTP/1.1 413")

        deep = b"[" * 30_000 + b"]" * 30_000
        big = json.dumps(event(need_data())).encode()[:-1] + b', "n": ' + b"9" * 5000 + b"}"
        dup = json.dumps(event(need_data())).encode()[:-2] + b', "annual_budget": "1000.00"}}'
        for body, code in (
            (deep, "malformed_json"),
            (big, "malformed_json"),
            (dup, "malformed_json"),
            (b"\xff\xfe", "malformed_json"),
        ):
            answer = post(proc.url, body)
            assert answer.status_code == 422 and answer.json()["code"] == code, answer.text
        upper = json.dumps(event(need_data(n=3))).encode()
        answer = httpx.post(
            f"{proc.url}/events",
            content=upper,
            headers={**CE, "X-Signature": "sha256=" + sign(PARTNERS["staffordshire-cc"], upper).upper()},
        )
        assert answer.status_code == 401 and answer.json()["code"] == "bad_signature"

        # the same on the stream: rejected with a reason, never retried nor dead-lettered
        inbound = f"{prefix}:inbound"
        ids = [
            r.xadd(inbound, {"event": deep, "signature": "x"}).decode(),
            r.xadd(inbound, signed(big)).decode(),
            r.xadd(
                inbound, signed(json.dumps(event(need_data(outcomes=["y" * 1000] * 70))).encode())
            ).decode(),
        ]
        wait_for(lambda: drained(r, prefix), 20, what="inbound drained")
        reasons = {
            f[b"inbound_id"].decode(): json.loads(f[b"reason"])["code"]
            for key in (f"{prefix}:rejected:unknown", f"{prefix}:rejected:staffordshire-cc")
            for _, f in r.xrange(key)
        }
        assert [reasons[i] for i in ids] == ["malformed_json", "malformed_json", "too_large"]
        assert r.xlen(f"{prefix}:dead-letter") == 0
        assert "Traceback" not in proc.log() and "entry failed" not in proc.log()
    finally:
        assert proc.terminate() == 0, proc.log()


def test_rate_limits_answer_429_with_retry_after_and_rate_limited_on_the_stream(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    env = service_env(
        redis_url,
        prefix,
        partners_path,
        rate_per_partner="0.01",
        burst_per_partner="3",
        rate_per_address="0.01",
        burst_per_address="6",
    )
    proc = serve(tmp_path, env, "needs")
    try:
        proc.wait_ready()
        answers = [post(proc.url, json.dumps(event(need_data(n=n), id=f"h{n}")).encode()) for n in range(4)]
        assert [a.status_code for a in answers] == [202, 202, 202, 429]
        assert answers[3].json()["code"] == "rate_limited" and int(answers[3].headers["retry-after"]) >= 1
        # another partner has its own bucket, but this address is nearly spent (6 requests)
        other = [
            post(
                proc.url,
                json.dumps(event(need_data("tamworth-bc", n), partner="tamworth-bc", id=f"t{n}")).encode(),
                "tamworth-bc",
            )
            for n in range(3)
        ]
        assert [a.status_code for a in other] == [202, 202, 429]
        assert other[2].json()["code"] == "rate_limited" and "address" in other[2].json()["message"]

        pipe = r.pipeline()
        for n in range(5):
            pipe.xadd(
                f"{prefix}:inbound",
                signed(
                    event(need_data("stoke-on-trent-cc", n), partner="stoke-on-trent-cc", id=f"s{n}"),
                    partner="stoke-on-trent-cc",
                ),
            )
        pipe.execute()
        wait_for(lambda: drained(r, prefix), 20, what="inbound drained")
        codes = [
            json.loads(f[b"reason"])["code"] for _, f in r.xrange(f"{prefix}:rejected:stoke-on-trent-cc")
        ]
        assert codes == ["rate_limited", "rate_limited"]
        assert sum(1 for _, f in r.xrange(f"{prefix}:need.identified") if b"stoke" in f[b"event"]) == 3
        metrics = httpx.get(f"{proc.url}/metrics").text
        assert (
            'commissioning_rejections_recorded{code="rate_limited",partner="stoke-on-trent-cc"} 2.0'
            in metrics
        )
    finally:
        assert proc.terminate() == 0, proc.log()


def test_rejection_streams_are_capped_and_counted(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    env = service_env(redis_url, prefix, partners_path, rejected_unknown_maxlen="100", rejected_maxlen="50")
    pipe = r.pipeline()
    for n in range(1_000):
        pipe.xadd(
            f"{prefix}:inbound",
            signed(event(need_data("nobody", n), partner="nobody", id=f"u{n}"), secret="k"),
        )
        pipe.xadd(
            f"{prefix}:inbound",
            {"event": json.dumps(event(need_data(n=n), id=f"f{n}")).encode(), "signature": b"0" * 64},
        )
    pipe.execute()
    proc = serve(tmp_path, env, "needs")
    try:
        proc.wait_ready(60)
        wait_for(lambda: drained(r, prefix), 60, what="inbound drained")
        # MAXLEN ~ trims whole nodes of the stream (100 entries each by default): a little over the cap
        assert 100 <= r.xlen(f"{prefix}:rejected:unknown") < 300
        assert 50 <= r.xlen(f"{prefix}:rejected:staffordshire-cc") < 250
        metrics = httpx.get(f"{proc.url}/metrics").text
        assert 'commissioning_rejections_recorded{code="unknown_partner",partner="unknown"} 1000.0' in metrics
        assert (
            'commissioning_rejections_recorded{code="bad_signature",partner="staffordshire-cc"} 1000.0'
            in metrics
        )
    finally:
        assert proc.terminate() == 0, proc.log()
