"""The inbound gateway in a real `commissioning serve` process on a real Redis."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
import redis

from shared.partners import sign
from shared.redis_server import free_port
from tests.support import ROOT, event, need_data, serve, service_env, signed, wait_for

pytestmark = pytest.mark.integration


def fields(entry: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode(errors="replace") for k, v in entry.items()}


def test_inbound_entries_are_accepted_once_or_rejected_with_a_reason(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    good = signed(event(need_data()))
    forged = {"event": good["event"], "signature": sign("not-the-key", good["event"]).encode()}
    cases = {
        "bad_signature": ("staffordshire-cc", forged),
        "unknown_partner": ("unknown", signed(event(need_data(partner="nobody"), partner="nobody"), secret="k")),
        "acting_for_another": ("staffordshire-cc", signed(event(need_data(partner="tamworth-bc"), id="x-1"))),
        "malformed_json": ("unknown", signed(b'{"specversion": "1.0",')),
        "type_not_allowed": ("stoke-on-trent-cc", signed(event(need_data(partner="stoke-on-trent-cc"), type="savings.updated", partner="stoke-on-trent-cc"), partner="stoke-on-trent-cc")),
        "invalid_data": ("tamworth-bc", signed(event(need_data(partner="tamworth-bc", annual_budget=100), partner="tamworth-bc"), partner="tamworth-bc")),
        "too_large": ("staffordshire-cc", signed(event(need_data(outcomes=["y" * 1000] * 70), id="big"))),
    }
    inbound = f"{prefix}:inbound"
    ids = {code: r.xadd(inbound, f).decode() for code, (_, f) in cases.items()}
    for _ in range(3):  # the same event three times: accepted once
        r.xadd(inbound, good)

    proc = serve(tmp_path, service_env(redis_url, prefix, partners_path))
    try:
        proc.wait_ready()
        wait_for(lambda: r.xpending(inbound, "gateway")["pending"] == 0 and
                 r.xinfo_groups(inbound)[0]["lag"] == 0, 20, what="inbound drained")

        accepted = r.xrange(f"{prefix}:need.identified")
        assert len(accepted) == 1
        assert accepted[0][1][b"event"] == good["event"], "republished with the same bytes, source and id"

        for code, (partner, sent) in cases.items():
            rejected = [fields(f) for _, f in r.xrange(f"{prefix}:rejected:{partner}")]
            mine = [x for x in rejected if x["inbound_id"] == ids[code]]
            assert len(mine) == 1, (code, rejected)
            reason = json.loads(mine[0]["reason"])
            assert reason["code"] == code and reason["message"]
            if code in ("acting_for_another", "type_not_allowed", "invalid_data"):  # authenticated: kept whole
                assert mine[0]["event"].encode() == sent["event"]
            else:  # unauthenticated or too large: a digest, the size and at most the first 256 bytes
                assert mine[0]["size"] == str(len(sent["event"]))
                assert mine[0]["sha256"] == hashlib.sha256(sent["event"]).hexdigest()
                raw = {f[b"inbound_id"].decode(): f[b"event"] for _, f in r.xrange(f"{prefix}:rejected:{partner}")}
                assert raw[ids[code]] == (b"" if code == "too_large" else sent["event"][:256])
        assert not r.exists(f"{prefix}:rejected:nobody"), "no key named after an unregistered partner"

        # the same checks over HTTP
        url = f"{proc.url}/events"
        headers = {"Content-Type": "application/cloudevents+json"}
        body = json.dumps(event(need_data(n=2))).encode()
        ok = httpx.post(url, content=body, headers={**headers, "X-Signature": "sha256=" + sign("secret-staffordshire", body)})
        assert ok.status_code == 202 and ok.json()["id"] == "staffordshire-cc-staffordshire-cc-need-2"
        again = httpx.post(url, content=body, headers={**headers, "X-Signature": "sha256=" + sign("secret-staffordshire", body)})
        assert again.status_code == 202
        bad = httpx.post(url, content=body, headers={**headers, "X-Signature": "sha256=" + sign("wrong", body)})
        assert bad.status_code == 401 and bad.json()["code"] == "bad_signature"
        assert httpx.post(url, content=body, headers={"Content-Type": "text/plain"}).status_code == 415
        assert r.xlen(f"{prefix}:need.identified") == 2
    finally:
        assert proc.terminate() == 0, proc.log()


def test_commissioning_up_brings_up_its_own_redis_and_the_services(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "COMMISSIONING_PARTNERS")}
    port, http_port = free_port(), free_port()
    env.update({"COMMISSIONING_DATA_DIR": str(tmp_path / "data"), "COMMISSIONING_HTTP_PORT": str(http_port),
                "COMMISSIONING_CLAIM_IDLE_MS": "500", "PYTHONPATH": str(ROOT)})
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        p = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--redis-port", str(port)],
                             env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for(lambda: _ready(http_port), 30, what="commissioning up")
        text = log.read_text()
        assert f"redis://127.0.0.1:{port}/0" in text
        assert str(tmp_path / "data" / "redis") in text, "says where the data is"
        registry = tomllib.loads((tmp_path / "data" / "partners.toml").read_text())
        secret = next(p["secret"] for p in registry["partner"] if p["id"] == "staffordshire-cc")
        body = json.dumps(event(need_data())).encode()
        # the contract's shell recipe, exactly: openssl for the signature, redis-cli to send
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", secret, "-r"], input=body,
                             capture_output=True, check=True).stdout.split()[0].decode()
        subprocess.run(["redis-cli", "-p", str(port), "XADD", "commissioning:inbound", "*",
                        "event", body, "signature", sig], check=True, capture_output=True)
        subprocess.run(["redis-cli", "-p", str(port), "XADD", "commissioning:inbound", "*",
                        "event", body, "signature", "f" * 64], check=True, capture_output=True)
        r = redis.Redis(port=port)
        # the dashboard needs a credential: `up` prints its own viewer token, kept for restarts
        token = (tmp_path / "data" / "viewer-token").read_text()
        assert f"sign in with the viewer token {token}" in text
        reads = httpx.get(f"http://127.0.0.1:{http_port}/savings", headers={"Authorization": f"Bearer {token}"})
        assert reads.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{http_port}/savings").status_code == 401
        # bounded, never evicting the log (COMMISSIONING_REDIS_MAXMEMORY, 1gb by default)
        assert r.config_get("maxmemory") == {"maxmemory": str(2**30)}
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        wait_for(lambda: r.xlen("commissioning:need.identified") == 1, 20, what="the accepted need")
        wait_for(lambda: r.xlen("commissioning:rejected:staffordshire-cc") == 1, 20, what="the forged one")
        reason = json.loads(r.xrange("commissioning:rejected:staffordshire-cc")[0][1][b"reason"])
        assert reason["code"] == "bad_signature"
        r.close()
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(30) == 0, log.read_text()
    assert re.search(r"Redis stopped; data kept in", log.read_text())
    assert (tmp_path / "data" / "redis").is_dir()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
