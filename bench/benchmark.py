"""Throughput, latency and rebuild benchmark. Not a test: it prints figures.

    python bench/benchmark.py [--events 20000] [--partners 50] [--latency-seconds 10] [--rebuild 1000000]
                              [--processes 1] [--gateways 1] [--rounds 5]

Workload: signed events from many partners (needs, and awards over them) go through
`P:inbound`, the gateway (verification, validation, once-only republication) and the savings
service (the projection) in real processes, every guarantee of the bus on: by default one
`commissioning serve gateway` process verifying and one `commissioning serve savings` process
projecting (`--gateways 0`: one `serve savings` process doing both).
Baseline, on the same Redis in the same run: a plain batched redis-py loop doing the same
verification, validation and folding, with none of the guarantees (no groups, no acks, no
idempotency records, no atomic effects), with Python's default garbage-collector thresholds,
then again with the serving processes' thresholds (reported beside, for a like-for-like
reading). Throughput is measured in `--rounds` interleaved rounds and the medians reported.
The last line is `throughput <project events/s> baseline <events/s> ratio <r>`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.savings.model import Facts, evolve, project  # noqa: E402
from shared.collector import THRESHOLDS as GC_THRESHOLDS  # noqa: E402
from shared.inbound import Accepted, check  # noqa: E402
from shared.partners import Partner, PartnerRegistry, sign  # noqa: E402
from shared.policy import SavingsPolicy  # noqa: E402
from shared.redis_server import RedisServer, free_port  # noqa: E402
from shared.state import RECOMPUTE_SPACING  # noqa: E402


def workload(n: int, partners: int, start: int = 0) -> list[dict[str, bytes]]:
    """n signed events: per partner group, needs then an award over them (one award per 10 needs)."""
    out = []
    i = start
    while len(out) < n:
        group = [f"partner-{(i + k) % partners:03d}" for k in range(10)]
        for k, pid in enumerate(group):
            data = {"need_id": f"need-{i}-{k}", "partner_id": pid, "service_category": f"cat-{i % 7}", "title": "Advice",
                    "annual_budget": "100000.00", "current_arrangements": 3, "current_annual_resource_cost": f"{10000 + k}.50",
                    "current_arrangements_end": "2013-03-31", "open_to_sharing": True}
            out.append(_signed(pid, "need.identified", data, f"n-{i}-{k}"))
        award = {"tender_id": f"t-{i}", "contract_id": f"c-{i}", "lead_partner_id": group[0],
                 "commissioning_model": "aligned_budgets", "supplier": {"id": "s", "name": "S"},
                 "annual_value": "900000.00", "contract_start": "2013-04-01", "contract_end": "2016-03-31",
                 "partners": [{"partner_id": p, "need_id": f"need-{i}-{k}"} for k, p in enumerate(group)]}
        out.append(_signed(group[0], "tender.awarded", award, f"a-{i}"))
        i += 1
    return out[:n]


def _signed(pid: str, etype: str, data: dict, eid: str) -> dict[str, bytes]:
    body = json.dumps({"specversion": "1.0", "id": eid, "source": f"/partners/{pid}", "type": etype,
                       "time": "2013-04-01T09:00:00+00:00", "datacontenttype": "application/json", "data": data},
                      separators=(",", ":")).encode()
    return {"event": body, "signature": sign(f"secret-{pid}", body).encode()}


def registry(partners: int) -> PartnerRegistry:
    return PartnerRegistry([Partner(id=f"partner-{i:03d}", name=f"P{i}", secret=f"secret-partner-{i:03d}") for i in range(partners)])


def write_registry(path: Path, partners: int) -> Path:
    path.write_text("".join(f'[[partner]]\nid = "partner-{i:03d}"\nname = "P{i}"\nsecret = "secret-partner-{i:03d}"\n'
                            for i in range(partners)))
    return path


def load(r: redis.Redis, key: str, entries: list[dict[str, bytes]]) -> None:
    for k in range(0, len(entries), 2000):
        pipe = r.pipeline(transaction=False)
        for e in entries[k:k + 2000]:
            pipe.xadd(key, e)
        pipe.execute()


def baseline(r: redis.Redis, entries: list[dict[str, bytes]], partners: int) -> float:
    """Plain batched redis-py: read, verify, validate, republish (pipelined), fold, and the
    figures at the service's cadence (at most every 0.2 s, never over a fifth of the time);
    no guarantees."""
    prefix = f"base-{uuid.uuid4().hex[:6]}"
    load(r, f"{prefix}:inbound", entries)
    reg, facts, last, done = registry(partners), Facts(), "0", 0
    cache: dict = {}
    computed, took = 0.0, 0.0
    t0 = time.perf_counter()
    while done < len(entries):
        batch = r.xread({f"{prefix}:inbound": last}, count=500)[0][1]
        pipe = r.pipeline(transaction=False)
        for entry_id, fields in batch:
            v = check(fields.get(b"event"), fields.get(b"signature"), reg, 65536)
            if isinstance(v, Accepted):
                pipe.xadd(f"{prefix}:{v.event.type}", {"event": v.raw})
                evolve(facts, v.event.key, v.payload)
        pipe.execute()
        last, done = batch[-1][0], done + len(batch)
        now = time.perf_counter()
        if now - computed >= max(0.2, RECOMPUTE_SPACING * took) or done >= len(entries):  # the service's cadence
            project(facts, SavingsPolicy(), cache)
            computed, took = now, time.perf_counter() - now
    rate = len(entries) / (time.perf_counter() - t0)
    r.delete(*r.keys(f"{prefix}:*"))
    return rate


class Service:
    def __init__(self, url: str, prefix: str, partners_file: Path, log: Path, service: str = "savings", **env: str) -> None:
        self.port = free_port()
        self.r, self.prefix = redis.Redis.from_url(url), prefix
        e = {**os.environ, "REDIS_URL": url, "COMMISSIONING_PREFIX": prefix, "COMMISSIONING_PARTNERS": str(partners_file),
             "COMMISSIONING_HTTP_PORT": str(self.port), "COMMISSIONING_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), **env}
        self.p = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", service], env=e,
                                  stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the service did not start; see {log}")

    def applied(self) -> int:
        """Events in the latest published projection (read from its stream, as a dashboard would)."""
        latest = self.r.xrevrange(f"{self.prefix}:savings.updated", count=1)
        return int(json.loads(latest[0][1][b"event"])["data"]["events_applied"]) if latest else 0

    def stop(self) -> None:
        self.p.terminate()
        self.p.wait(30)


def start(url: str, prefix: str, partners_file: Path, tmp: Path, processes: int, gateways: int) -> list[Service]:
    """`processes` replicas of `serve savings` in the same consumer groups, and `gateways`
    `serve gateway` processes beside them, as an operator scales it out. The first is a
    savings process."""
    apart = {"COMMISSIONING_GATEWAY": "false"} if gateways else {}  # verifying left to the gateways
    services = [Service(url, prefix, partners_file, tmp / f"{prefix}-savings-{n}.log", **apart) for n in range(processes)]
    services += [Service(url, prefix, partners_file, tmp / f"{prefix}-gateway-{n}.log", "gateway") for n in range(gateways)]
    return services


def project_throughput(url: str, r: redis.Redis, entries: list[dict[str, bytes]], partners_file: Path, tmp: Path,
                       processes: int = 1, gateways: int = 0) -> float:
    prefix = f"proj-{uuid.uuid4().hex[:6]}"
    services = start(url, prefix, partners_file, tmp, processes, gateways)
    try:
        t0 = time.perf_counter()
        load(r, f"{prefix}:inbound", entries)
        while services[0].applied() < len(entries):
            time.sleep(0.05)
        return len(entries) / (time.perf_counter() - t0)
    finally:
        for svc in services:
            svc.stop()
        for key in r.scan_iter(match=f"{prefix}:*", count=1000):
            r.delete(key)


def latency(url: str, r: redis.Redis, partners: int, partners_file: Path, tmp: Path, seconds: float, rate: int,
            processes: int = 1, gateways: int = 0) -> list[float]:
    """Send at a steady `rate` for `seconds`; for each event, the time from its XADD to the first
    savings.updated whose projection includes it (events_applied reaching its position)."""
    prefix = f"lat-{uuid.uuid4().hex[:6]}"
    services = start(url, prefix, partners_file, tmp, processes, gateways)
    entries = workload(int(seconds * rate), partners, start=10_000_000)
    sent: list[float] = []
    updates: list[tuple[float, int]] = []
    stop = threading.Event()

    def watch() -> None:
        w = redis.Redis.from_url(url)
        cursor = "$"
        while not stop.is_set():
            for _, items in w.xread({f"{prefix}:savings.updated": cursor}, block=200, count=100) or []:
                now = time.perf_counter()
                for entry_id, f in items:
                    updates.append((now, json.loads(f[b"event"])["data"]["events_applied"]))
                    cursor = entry_id

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        interval, t0 = 1 / rate, time.perf_counter()
        for n, e in enumerate(entries):
            delay = t0 + n * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            r.xadd(f"{prefix}:inbound", e)
            sent.append(time.perf_counter())
        deadline = time.time() + 60
        while (not updates or updates[-1][1] < len(entries)) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join()
        for svc in services:
            svc.stop()
    out, u = [], 0
    for n, t in enumerate(sent):
        while u < len(updates) and updates[u][1] < n + 1:
            u += 1
        if u < len(updates):
            out.append(updates[u][0] - t)
    return out


def rebuild_time(url: str, r: redis.Redis, n: int, partners: int) -> tuple[float, int]:
    """Time `commissioning savings rebuild` over n accepted events already on the streams."""
    prefix = f"reb-{uuid.uuid4().hex[:6]}"
    entries = workload(n, partners, start=20_000_000)
    for k in range(0, n, 5000):
        pipe = r.pipeline(transaction=False)
        for e in entries[k:k + 5000]:
            etype = json.loads(e["event"])["type"]
            pipe.xadd(f"{prefix}:{etype}", {"event": e["event"]})
        pipe.execute()
    env = {**os.environ, "REDIS_URL": url, "COMMISSIONING_PREFIX": prefix, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "services.cli", "savings", "rebuild"], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    for key in r.scan_iter(match=f"{prefix}:*", count=1000):
        r.delete(key)
    return elapsed, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--partners", type=int, default=50)
    ap.add_argument("--latency-seconds", type=float, default=10)
    ap.add_argument("--latency-rate", type=int, default=1000)
    ap.add_argument("--rebuild", type=int, default=0, help="events for the rebuild timing (e.g. 1000000); 0 skips it")
    ap.add_argument("--processes", type=int, default=1, help="replicas of the service in one group (default 1)")
    ap.add_argument("--gateways", type=int, default=1,
                    help="`serve gateway` processes beside them, the savings processes then running no gateway "
                         "(default 1: the layout for two cores or more; 0: the gateway inside the savings process)")
    ap.add_argument("--rounds", type=int, default=5, help="throughput rounds; medians are reported (default 5)")
    args = ap.parse_args()
    defaults = gc.get_threshold()
    tmp = Path(tempfile.mkdtemp(prefix="commissioning-bench-"))
    server = RedisServer(tmp / "redis").start()
    try:
        r = redis.Redis.from_url(server.url)
        partners_file = write_registry(tmp / "partners.toml", args.partners)
        entries = workload(args.events, args.partners)
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"{subprocess.run([str(server.binary), '--version'], capture_output=True, text=True).stdout.split()[2]}")
        print(f"workload: {len(entries)} signed events from {args.partners} partners (needs, and awards over them)")
        baseline(r, entries[: len(entries) // 10], args.partners)  # warm-up (imports, first validations), not counted
        layout = f"{args.processes} `serve savings`" + (f" (gateway off) + {args.gateways} `serve gateway`" if args.gateways else "")
        bases, bases_gc, ours_all = [], [], []
        for n in range(1, args.rounds + 1):  # interleaved, so that a noisy moment hits every side alike
            bases.append(baseline(r, entries, args.partners))
            gc.set_threshold(*GC_THRESHOLDS)  # the serving processes' garbage-collector thresholds
            try:
                bases_gc.append(baseline(r, entries, args.partners))
            finally:
                gc.set_threshold(*defaults)
            ours_all.append(project_throughput(server.url, r, entries, partners_file, tmp, args.processes, args.gateways))
            print(f"round {n}/{args.rounds}: baseline {bases[-1]:,.0f}, baseline with GC thresholds {bases_gc[-1]:,.0f}, "
                  f"project {ours_all[-1]:,.0f} events/s", flush=True)
        base, base_gc, ours = (statistics.median(x) for x in (bases, bases_gc, ours_all))
        print(f"baseline (plain batched redis-py, same checks and fold, no guarantees), median: {base:,.0f} events/s")
        print(f"baseline with the serving processes' GC thresholds {GC_THRESHOLDS}, median: {base_gc:,.0f} events/s")
        print(f"project (gateway + savings service, every guarantee on; {layout}), median: {ours:,.0f} events/s")
        if args.latency_seconds > 0:
            lat = latency(server.url, r, args.partners, partners_file, tmp, args.latency_seconds, args.latency_rate,
                          args.processes, args.gateways)
            if lat:
                q = statistics.quantiles(lat, n=100)
                print(f"latency at {args.latency_rate} events/s for {args.latency_seconds:.0f} s, inbound entry to the "
                      f"savings.updated that includes it: p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms ({len(lat)} events)")
        if args.rebuild:
            seconds, n = rebuild_time(server.url, r, args.rebuild, args.partners)
            print(f"rebuild of the projection from {n:,} events: {seconds:.1f} s")
        print(f"ratio against the baseline with the same GC thresholds: {ours / base_gc:.2f}")
        print(f"throughput {ours:.0f} baseline {base:.0f} ratio {ours / base:.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
