"""The generated ACL on a real Redis: every forbidden command is refused, and the four services,
each under its own user, still run the whole flow."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
import redis

from shared import viewers
from shared.redis_server import RedisServer
from shared.tscip import reference_payloads
from tests.support import READ, VIEWER_TOKEN, ROOT, send_as, serve, service_env, wait_for, write_tscip_partners

pytestmark = pytest.mark.integration
P = "commissioning"


@pytest.fixture
def acl(tmp_path: Path):  # type: ignore[no-untyped-def]
    partners = write_tscip_partners(tmp_path / "partners.toml")
    env = {"COMMISSIONING_PARTNERS": str(partners), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "services.cli", "acl", "--output", str(tmp_path / "users.acl"),
                           "--passwords", str(tmp_path / "pw.toml")], env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    passwords = tomllib.loads((tmp_path / "pw.toml").read_text())
    assert (tmp_path / "pw.toml").stat().st_mode & 0o077 == 0, "passwords readable by their owner only"
    assert not any(p in (tmp_path / "users.acl").read_text() for p in passwords.values()), "only hashes in the ACL"
    server = RedisServer(tmp_path / "redis", extra_args=["--aclfile", str(tmp_path / "users.acl")],
                         username="operator", password=passwords["operator"]).start()
    yield server, passwords, partners
    server.stop()


def as_user(server: RedisServer, passwords: dict[str, str], user: str) -> redis.Redis:
    return redis.Redis(port=server.port, username=user, password=passwords[user])


def refused(client: redis.Redis, *command: str | bytes) -> bool:
    try:
        client.execute_command(*command)
    except redis.exceptions.NoPermissionError:
        return True
    except redis.exceptions.ResponseError as e:
        return "NOPERM" in str(e)
    return False


def test_each_forbidden_command_is_refused(acl) -> None:  # type: ignore[no-untyped-def]
    server, passwords, _ = acl
    anonymous = redis.Redis(port=server.port)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()

    partner = as_user(server, passwords, "partner-tamworth-bc")
    assert partner.xadd(f"{P}:inbound", {"event": b"{}", "signature": b"x"})
    partner.xrange(f"{P}:rejected:tamworth-bc")  # its own rejections: allowed
    for cmd in (("XRANGE", f"{P}:inbound", "-", "+"),                       # write-only: no reading others' events
                ("XADD", f"{P}:need.identified", "*", "event", "x"),       # never the canonical streams
                ("XRANGE", f"{P}:rejected:lichfield-dc", "-", "+"),         # another partner's rejections
                ("XRANGE", f"{P}:sealed:bid.submitted", "-", "+"),          # bids
                ("XRANGE", f"{P}:savings.updated", "-", "+"),
                ("GET", f"{P}:state:savings:generation"), ("DEL", f"{P}:inbound"), ("FLUSHALL",), ("KEYS", "*"),
                ("CONFIG", "GET", "*"), ("XGROUP", "DESTROY", f"{P}:inbound", "gateway")):
        assert refused(partner, *cmd), cmd

    dashboard = as_user(server, passwords, "dashboard")
    dashboard.xrange(f"{P}:savings.updated")
    dashboard.xread({f"{P}:savings.updated": "0"}, count=1)
    for cmd in (("XADD", f"{P}:savings.updated", "*", "event", "x"), ("XRANGE", f"{P}:need.identified", "-", "+"),
                ("XRANGE", f"{P}:sealed:bid.submitted", "-", "+"), ("HGETALL", f"{P}:state:savings:events"), ("FLUSHALL",)):
        assert refused(dashboard, *cmd), cmd

    savings = as_user(server, passwords, "service-savings")
    savings.hlen(f"{P}:state:savings:events")
    savings.xrange(f"{P}:opportunity.identified")  # it serves the workspace: it reads what others publish
    savings.xadd(f"{P}:sealed:bid.submitted", {"event": b"{}"})  # as the gateway it may file a bid...
    for cmd in (("XRANGE", f"{P}:sealed:bid.submitted", "-", "+"),  # ...but never read one
                ("HGETALL", f"{P}:state:procurement:events"),      # another service's state
                ("XADD", f"{P}:opportunity.identified", "*", "event", "x"),  # another service's output
                ("FLUSHALL",), ("CONFIG", "SET", "appendonly", "no"), ("SHUTDOWN",), ("ACL", "LIST")):
        assert refused(savings, *cmd), cmd
    procurement = as_user(server, passwords, "service-procurement")
    assert procurement.xrange(f"{P}:sealed:bid.submitted") is not None  # the one reader of bids

    gateway = as_user(server, passwords, "service-gateway")
    gateway.xadd(f"{P}:need.identified", {"event": b"{}"})  # it republishes what it accepts
    for cmd in (("XRANGE", f"{P}:sealed:bid.submitted", "-", "+"), ("HLEN", f"{P}:state:savings:events"),
                ("XADD", f"{P}:savings.updated", "*", "event", "x"), ("XADD", f"{P}:tender.awarded.x", "*", "event", "x"),
                ("FLUSHALL",)):
        assert refused(gateway, *cmd), cmd


def test_the_services_run_under_their_own_users(acl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, passwords, partners = acl
    as_user(server, passwords, "operator").hset(f"{P}:viewers", viewers.digest(VIEWER_TOKEN), "tests")
    procs = {}
    for name in ("needs", "procurement", "contracts", "savings", "gateway"):
        url = f"redis://service-{name}:{passwords[f'service-{name}']}@127.0.0.1:{server.port}/0"
        procs[name] = serve(tmp_path, service_env(url, P, partners), name, name=name)
    try:
        for p in procs.values():
            p.wait_ready()
        for n, (pid, etype, data) in enumerate(reference_payloads("fifteen")):
            send_as(as_user(server, passwords, f"partner-{pid}"), P, pid, etype, data, f"ref-{n}")
        wait_for(lambda: httpx.get(f"{procs['savings'].url}/savings", headers=READ).json()["portfolio"]["annual_saving"] == "317648.00",
                 30, what="the savings figures under the ACL")
        operator = as_user(server, passwords, "operator")
        gateway_consumer = httpx.get(f"{procs['gateway'].url}/health/ready").json()["consumer"]
        assert gateway_consumer in {c["name"].decode() for c in operator.xinfo_consumers(f"{P}:inbound", "gateway")}
        wait_for(lambda: operator.xlen(f"{P}:opportunity.identified") == 3, 20, what="the needs service's proposals")
        wait_for(lambda: operator.hlen(f"{P}:state:contracts:events") == 3, 20, what="the contracts register")
        for path in ("/workspace", "/workspace/pipeline", "/workspace/contracts", "/workspace/audit"):
            page = httpx.get(f"{procs['savings'].url}{path}", headers=READ)
            assert page.status_code == 200, (path, page.text)
            assert path == "/workspace" or "tscip-debt-advice-2013" in page.text, path
        for p in procs.values():
            text = p.log()
            assert "NOPERM" not in text, text
            # a command a Lua script runs without the permission (retention, decisions) says this
            assert "can't run this command" not in text, text
            assert not any(pw in text for pw in passwords.values()), "a password was logged"
            assert "s-staffordshire-cc" not in text, "a partner secret was logged"
    finally:
        for p in procs.values():
            assert p.terminate() == 0, p.log()
