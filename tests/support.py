"""Test helpers: partners with known secrets, signed events, and real service processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from shared.partners import sign
from shared.redis_server import free_port
from tests.cluster import http_ports

ROOT = Path(__file__).resolve().parent.parent

PARTNERS = {
    "staffordshire-cc": "secret-staffordshire",
    "stoke-on-trent-cc": "secret-stoke",
    "north-staffs-pct": "secret-north-pct",
    "tamworth-bc": "secret-tamworth",
}


#: a viewer token every test deployment knows (service_env stores its digest under the prefix)
VIEWER_TOKEN = "cv1_test-viewer-token-for-the-suite"
READ = {"Authorization": f"Bearer {VIEWER_TOKEN}"}


def write_partners(path: Path) -> Path:
    path.write_text(
        "".join(
            f'[[partner]]\nid = "{pid}"\nname = "{pid}"\nkind = "test"\nsecret = "{secret}"\n\n'
            for pid, secret in PARTNERS.items()
        ),
        encoding="utf-8",
    )
    return path


def need_data(partner: str = "staffordshire-cc", n: int = 1, **over: Any) -> dict[str, Any]:
    data = {
        "need_id": f"{partner}-need-{n}",
        "partner_id": partner,
        "service_category": "debt-benefits-consumer-advice",
        "title": "Debt, benefits and consumer advice",
        "annual_budget": "1200000.00",
        "current_arrangements": 12,
        "current_annual_resource_cost": "51234.00",
        "current_arrangements_end": "2012-12-31",
        "open_to_sharing": True,
    }
    data.update(over)
    return data


def event(
    data: dict[str, Any],
    *,
    type: str = "need.identified",
    partner: str = "staffordshire-cc",
    id: str | None = None,
    **over: Any,
) -> dict[str, Any]:
    ev = {
        "specversion": "1.0",
        "id": id or f"{partner}-{data.get('need_id', 'x')}",
        "source": f"/partners/{partner}",
        "type": type,
        "time": "2011-09-08T10:00:00+01:00",
        "datacontenttype": "application/json",
        "data": data,
    }
    ev.update(over)
    return ev


def signed(ev: dict[str, Any] | bytes, partner: str = "staffordshire-cc", secret: str | None = None) -> dict[str, bytes]:
    """The two fields of an inbound entry, signed as a partner system would."""
    body = ev if isinstance(ev, bytes) else json.dumps(ev).encode()
    return {"event": body, "signature": sign(secret or PARTNERS[partner], body).encode()}


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class Proc:
    """A real process of the product (or a test consumer), with its own log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, http_port: int | None = None):
        self.args = args
        self.env = env
        self.log_path = log_path
        self.http_port = http_port
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child
        self.p = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()
        return self

    def wait_ready(self, timeout: float = 30.0) -> Proc:
        assert self.http_port, "no HTTP port for this process"

        def ready() -> bool:
            assert self.p is not None
            if self.p.poll() is not None:
                raise AssertionError(f"process exited with {self.p.returncode}:\n{self.log()}")
            try:
                return httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout, 0.1, "the process to be ready")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def kill(self) -> None:
        assert self.p is not None
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.p is not None
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        return self.p.wait(timeout)

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def service_env(redis_url: str, prefix: str, partners: Path, **settings: str) -> dict[str, str]:
    """The environment of a product process under test; also lets `READ` read its figures."""
    import redis

    from shared import viewers
    from shared.streams import Streams

    with redis.Redis.from_url(redis_url) as r, contextlib.suppress(redis.ResponseError):
        # (a service's ACL user may not write it: test_acl issues the token as the operator)
        r.hset(viewers.key(Streams(prefix)), viewers.digest(VIEWER_TOKEN), "tests")
    env = dict(os.environ)
    env.update(
        {
            "REDIS_URL": redis_url,
            "COMMISSIONING_PREFIX": prefix,
            "COMMISSIONING_PARTNERS": str(partners),
            "COMMISSIONING_CLAIM_IDLE_MS": "500",
            "COMMISSIONING_BLOCK_MS": "100",
            "COMMISSIONING_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update({f"COMMISSIONING_{k.upper()}": v for k, v in settings.items()})
    return env


def serve(tmp: Path, env: dict[str, str], *services: str, name: str = "serve", ports: int = 1) -> Proc:
    # several partnerships: consecutive ports, out of the ephemeral range
    port = http_ports(ports) if ports > 1 else free_port()
    env = {**env, "COMMISSIONING_HTTP_PORT": str(port)}
    return Proc(
        [sys.executable, "-m", "services.cli", "serve", *services],
        env,
        tmp / f"{name}-{port}.log",
        http_port=port,
    ).start()


#: the services that decide partners' acts (CONTRACT.md 1.1, Authority): a process that
#: projects savings from partners' events runs them too
OWNERS = ("needs", "procurement", "contracts")


def accepted_count(r: Any, prefix: str) -> int:
    """The events the savings service reads: every accepted one, once per `source`+`id` (the
    owners' decisions, and the contracts service's own `contract_end` decommissionings)."""
    from services.savings.projection import TYPES

    keys = set()
    for t in TYPES:
        for _, f in r.xrange(f"{prefix}:{t}"):
            ev = json.loads(f[b"event"])
            keys.add(f"{ev['source']} {ev['id']}")
    return len(keys)


def figures_only(projection: dict[str, Any]) -> dict[str, Any]:
    """The figures, without the count of events applied (which a `contract_end` the contracts
    service published adds to, without moving a figure)."""
    return {k: v for k, v in json.loads(json.dumps(projection)).items() if k != "events_applied"}


def tscip_secret(partner_id: str) -> str:
    return f"s-{partner_id}"


PROVIDERS = ("staffs-cab", "age-uk-staffs", "lowball-ltd")


def write_tscip_partners(path: Path) -> Path:
    """A registry of the reference partnership's fifteen partners and three providers (bidders),
    with known secrets."""
    from shared.tscip import PARTNERS as TSCIP

    rows = [(p, n, k) for p, n, k in TSCIP] + [(p, p, "provider") for p in PROVIDERS]
    path.write_text("".join(f'[[partner]]\nid = "{p}"\nname = "{n}"\nkind = "{k}"\nsecret = "{tscip_secret(p)}"\n'
                            for p, n, k in rows))
    return path


def send_as(r: Any, prefix: str, partner: str, etype: str, data: dict[str, Any], event_id: str) -> None:
    """XADD one event to P:inbound, signed by a reference partner."""
    r.xadd(f"{prefix}:inbound", signed(event(data, type=etype, partner=partner, id=event_id), partner=partner,
                                       secret=tscip_secret(partner)))
