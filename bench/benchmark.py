"""The project as deployed against a minimal hand-written pipeline (bench/baseline.py), in the
same run, interleaved. Not a test: it prints figures.

    python bench/benchmark.py [--contracts 500 8000] [--rounds 3] [--latency-seconds 10]
                              [--latency-rate 1000] [--latency-runs 3] [--rebuild 0] [--partners 50]

Workload (bench/workload.py): signed needs from 50 partners and an award over every ten, onto
`P:inbound`; done when the last summary counts them all (`P:savings.updated` for the project,
`P:summary` for the baseline). Sides:
- `baseline`: bench/baseline.py, two processes (verify, totals), importing nothing from the project;
- `serve`: one `commissioning serve` process (every service, the gateway inside), as
  `commissioning up` and the single container run it;
- `split`: one process per service (`serve gateway`, and `serve needs|procurement|contracts|
  savings` with `COMMISSIONING_GATEWAY=false`), as the containers are deployed apart.
Throughput: `--rounds` interleaved rounds per contract count, medians. Latency: a steady
`--latency-rate` for `--latency-seconds`, `--latency-runs` interleaved runs a side (medians of
their p50 and p99, with the p99's range), from each inbound XADD to the first summary that
counts it, with the side's CPU meanwhile (per event, and as a share of one core), and for the
product each hop of the way (from the ids Redis gave the entries: the gateway's forward on
`P:requests:<owner>`, the owner's decision on `P:<type>`, then the summary). CPU per
event: user + system time of the side's processes from the first XADD to the summary counting
the last event. Redis bytes per event: `MEMORY USAGE` of every key the run left.
Update size: the `savings.updated` entry after one contract is decommissioned, and the
largest entry of the run. Rebuild: `commissioning savings rebuild` over `--rebuild` events.
The last line: `throughput <serve events/s> baseline <events/s> ratio <r>` (at the first count).
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

from bench.workload import NEEDS_PER_CONTRACT, contracts, decommission, write_registry  # noqa: E402
from shared.redis_server import RedisServer, free_port  # noqa: E402  (to start a Redis: not measured)

SPLIT = ("needs", "procurement", "contracts", "savings")
SIDES = ("baseline", "serve", "split")


class Side:
    """One side's processes on one key prefix: started, fed, watched, stopped, cleaned up."""

    def __init__(self, name: str, url: str, registry: tuple[Path, Path], tmp: Path) -> None:
        self.name, self.url, self.tmp = name, url, tmp
        self.prefix = f"{name}-{uuid.uuid4().hex[:6]}"
        self.r = redis.Redis.from_url(url)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if name == "baseline":
            self.summary = f"{self.prefix}:summary"
            for hop in ("verify", "totals"):
                self._spawn(
                    [
                        sys.executable,
                        str(ROOT / "bench" / "baseline.py"),
                        hop,
                        "--redis",
                        url,
                        "--prefix",
                        self.prefix,
                        "--secrets",
                        str(registry[1]),
                    ],
                    env,
                    hop,
                )
        else:
            self.summary = f"{self.prefix}:savings.updated"
            env.update(
                {
                    "REDIS_URL": url,
                    "COMMISSIONING_PREFIX": self.prefix,
                    "COMMISSIONING_PARTNERS": str(registry[0]),
                }
            )
            layout = [[]] if name == "serve" else [["gateway"], *([s] for s in SPLIT)]
            for services in layout:
                port = free_port()
                self.ports.append(port)
                apart = (
                    {"COMMISSIONING_GATEWAY": "false"} if name == "split" and services != ["gateway"] else {}
                )
                self._spawn(
                    [sys.executable, "-m", "services.cli", "serve", *services],
                    {**env, **apart, "COMMISSIONING_HTTP_PORT": str(port)},
                    "-".join(services) or "all",
                )
        self._wait_ready()

    def _spawn(self, args: list[str], env: dict[str, str], what: str) -> None:
        log = open(self.tmp / f"{self.prefix}-{what}.log", "wb")  # noqa: SIM115 - kept open for the child
        self.procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))

    def _wait_ready(self) -> None:
        def ready() -> bool:
            if self.name == "baseline":
                return bool(
                    self.r.exists(f"{self.prefix}:ready:verify")
                    + self.r.exists(f"{self.prefix}:ready:totals")
                    == 2
                )
            try:
                return all(
                    httpx.get(f"http://127.0.0.1:{p}/health/ready", timeout=2).status_code == 200
                    for p in self.ports
                )
            except httpx.HTTPError:
                return False

        deadline = time.time() + 120
        while not ready():
            if time.time() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"{self.name} did not start; see the logs in {self.tmp}")
            time.sleep(0.1)

    def counted(self) -> int:
        """Events the newest summary counts (read as a dashboard would)."""
        newest = self.r.xrevrange(self.summary, count=1)
        if not newest:
            return 0
        doc = json.loads(newest[0][1][b"event"])
        return int(doc["events_applied"] if self.name == "baseline" else doc["data"]["events_applied"])

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the side's processes have used so far (Linux /proc)."""
        total = 0
        for p in self.procs:
            with open(f"/proc/{p.pid}/stat", encoding="ascii") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / os.sysconf("SC_CLK_TCK")

    def send(self, entries: list[dict[str, bytes]]) -> None:
        for k in range(0, len(entries), 2000):
            pipe = self.r.pipeline(transaction=False)
            for e in entries[k : k + 2000]:
                pipe.xadd(f"{self.prefix}:inbound", e)
            pipe.execute()

    def wait_counted(self, n: int, timeout: float = 600) -> None:
        deadline = time.time() + timeout
        while self.counted() < n:
            if time.time() > deadline:
                raise RuntimeError(f"{self.name}: {self.counted()} of {n} events counted after {timeout} s")
            time.sleep(0.01)

    def bytes_held(self) -> int:
        pipe = self.r.pipeline(transaction=False)
        keys = list(self.r.scan_iter(match=f"{self.prefix}:*", count=1000))
        for key in keys:
            pipe.memory_usage(key, samples=0)
        return sum(x or 0 for x in pipe.execute())

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        for key in self.r.scan_iter(match=f"{self.prefix}:*", count=1000):
            self.r.delete(key)


def throughput(side: Side, entries: list[dict[str, bytes]]) -> tuple[float, float]:
    """(events/s, CPU milliseconds an event, over the side's processes)."""
    cpu, t0 = side.cpu_seconds(), time.perf_counter()
    side.send(entries)
    side.wait_counted(len(entries))
    elapsed = time.perf_counter() - t0
    return len(entries) / elapsed, (side.cpu_seconds() - cpu) * 1000 / len(entries)


def update_sizes(side: Side, n_contracts: int, partners: int, counted: int) -> tuple[int, int]:
    """(bytes of the entry after one contract changed, bytes of the largest entry of the run)."""
    largest = max(len(f[b"event"]) for _, f in side.r.xrange(side.summary))
    side.send([decommission(n_contracts // 2, partners)])
    side.wait_counted(counted + 1)
    return len(side.r.xrevrange(side.summary, count=1)[0][1][b"event"]), largest


#: where a partner's need and award pass on their way (the product's streams): forwarded by the
#: gateway to its owner, decided by the owner onto the canonical stream
REQUESTS = ("requests:needs", "requests:procurement")
DECIDED = ("need.identified", "tender.awarded")


class Latency:
    """Seconds from each XADD (at a steady rate) to the first summary that counts it, and, for
    the product's sides, each hop of the way, from the ids Redis gave the entries (its clock,
    in ms): the gateway's forward to `P:requests:<owner>`, the owner's decision on `P:<type>`,
    and from there to the summary."""

    def __init__(self) -> None:
        self.total: list[float] = []
        self.hops: dict[str, list[float]] = {"gateway": [], "owner": [], "savings": []}


def _ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


def latency(side: Side, entries: list[dict[str, bytes]], rate: int) -> Latency:
    """Send `entries` at a steady `rate` and time them (`Latency`)."""
    sent: list[float] = []
    seen: list[tuple[float, int, int]] = []  # (when read, events counted, the entry's ms)
    forwarded: dict[bytes, int] = {}  # inbound entry id -> ms of its request entry
    decided: dict[str, int] = {}  # event id -> ms of its canonical entry
    product = side.name != "baseline"
    streams = [side.summary] + ([f"{side.prefix}:{s}" for s in REQUESTS + DECIDED] if product else [])
    stop = threading.Event()

    # where each stream ends now (not `$` at each read: what came between two reads would be lost)
    cursors = {s: (side.r.xrevrange(s, count=1) or [(b"0-0", None)])[0][0] for s in streams}

    def watch() -> None:
        w = redis.Redis.from_url(side.url)
        while not stop.is_set():
            for stream, items in w.xread(cursors, block=100, count=500) or []:
                now = time.perf_counter()
                name = stream.decode()
                cursors[name] = items[-1][0]
                for entry_id, f in items:
                    if name == side.summary:
                        doc = json.loads(f[b"event"])
                        seen.append((now, int(doc.get("data", doc)["events_applied"]), _ms(entry_id)))
                    elif b"inbound_id" in f:
                        forwarded.setdefault(f[b"inbound_id"], _ms(entry_id))
                    else:
                        decided.setdefault(json.loads(f[b"event"])["id"], _ms(entry_id))

    watcher = threading.Thread(target=watch)
    # the harness's own collections stay out of the window: what it holds (the workload, every
    # round's results) is frozen out of the collector and nothing is collected while it times
    # (a full collection over it took 29 ms here, and the watcher notes summaries that late)
    gc.collect()
    gc.freeze()
    gc.disable()
    watcher.start()
    inbound_ids: list[bytes] = []
    try:
        t0 = time.perf_counter()
        for n, e in enumerate(entries):
            delay = t0 + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            inbound_ids.append(side.r.xadd(f"{side.prefix}:inbound", e))
            sent.append(time.perf_counter())
        side.wait_counted(len(entries), timeout=120)
        time.sleep(0.3)
    finally:
        stop.set()
        watcher.join()
        gc.enable()
        gc.unfreeze()
    out, u = Latency(), 0
    for n, t in enumerate(sent):
        while u < len(seen) and seen[u][1] < n + 1:
            u += 1
        if u == len(seen):
            continue
        out.total.append(seen[u][0] - t)
        if not product:
            continue
        inbound = _ms(inbound_ids[n])
        request = forwarded.get(inbound_ids[n])
        decision = decided.get(json.loads(entries[n]["event"])["id"])
        if request is not None and decision is not None:
            out.hops["gateway"].append((request - inbound) / 1000)
            out.hops["owner"].append((decision - request) / 1000)
            out.hops["savings"].append((seen[u][2] - decision) / 1000)
    return out


LOAD = """
import asyncio, resource, sys, time
from services.savings.projection import Projection
from shared import collector
from shared.settings import savings_policy
from shared.redis_client import connect
from shared.settings import Settings
from shared.streams import Streams
collector.tune()  # as `commissioning serve` runs
async def main():
    settings = Settings()
    every = float(sys.argv[1])  # 0: no snapshot, read every event
    projection = Projection(connect(settings.redis_url), Streams(settings.prefix), savings_policy(),
                            snapshot_every_s=every)
    t0 = time.perf_counter()
    # as the service starts (`Projection.start`, less the follower it then runs): what dashboards
    # last received, then the state, compared with it and the difference published
    projection.last = await projection.updates.last()
    n = await projection.load()
    took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    with open("/proc/self/statm") as statm:  # resident now, MiB
        now = int(statm.read().split()[1]) * resource.getpagesize() // 2**20
    print(took, n, peak, now, int(projection._snapshot_pos is not None))  # 1: from the snapshot
asyncio.run(main())
"""


def rebuild_time(url: str, r: redis.Redis, n: int, partners: int) -> tuple[float, float, float]:
    """`commissioning savings rebuild` over n accepted events already on their streams; then the
    start of a savings process on the state it left (what it does before it consumes: what
    dashboards last received read, `Projection.load`, the difference compared and published, in
    a process of its own): the first, which publishes every contract (the rebuild publishes
    nothing), then a restart from the snapshot the rebuild saved and, for comparison, one reading
    every event."""
    prefix = f"rebuild-{uuid.uuid4().hex[:6]}"
    entries = contracts(n // (NEEDS_PER_CONTRACT + 1) + 1, partners, start=20_000_000)[:n]
    for k in range(0, n, 5000):
        pipe = r.pipeline(transaction=False)
        for e in entries[k : k + 5000]:
            pipe.xadd(f"{prefix}:{json.loads(e['event'])['type']}", {"event": e["event"]})
        pipe.execute()
    env = {**os.environ, "REDIS_URL": url, "COMMISSIONING_PREFIX": prefix, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "services.cli", "savings", "rebuild"],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - t0
    print(f"\nrebuild of the projection from {n:,} events: {elapsed:.1f} s", flush=True)
    loads = []
    for what, every in (("first start", "60"), ("from the snapshot", "60"), ("every event", "0")):
        loaded = subprocess.run(
            [sys.executable, "-c", LOAD, every], env=env, cwd=ROOT, capture_output=True, text=True
        )
        if loaded.returncode:
            raise SystemExit(f"loading the rebuilt state failed:\n{loaded.stderr}")
        last = loaded.stdout.strip().splitlines()[-1]  # after the logs
        seconds, _, peak_mib, now_mib, restored = last.split()
        if restored != ("1" if every != "0" else "0"):
            raise SystemExit(f"the start ({what}) did not start as it should: {loaded.stderr}")
        loads.append(float(seconds))
        print(
            f"  start ({what}): {float(seconds):.1f} s, "
            f"resident {now_mib} MiB after it (peak {peak_mib} MiB)",
            flush=True,
        )
    for key in r.scan_iter(match=f"{prefix}:*", count=1000):
        r.delete(key)
    return elapsed, loads[1], loads[2]


def _q(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100)
    return f"p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms"


def portfolio_size(
    url: str, registry: tuple[Path, Path], tmp: Path, args: argparse.Namespace, size: int, rounds: int
) -> dict[str, list[float]]:
    """Throughput rounds at one portfolio size, every side in turn (interleaved: a noisy moment
    hits every side alike); the first round also measures the update sizes."""
    entries = contracts(size, args.partners)
    print(f"\n{size:,} contracts: {len(entries):,} signed events from {args.partners} partners", flush=True)
    got: dict[str, list[float]] = {s: [] for s in args.sides}
    for n in range(1, rounds + 1):
        for name in args.sides:
            side = Side(name, url, registry, tmp)
            try:
                rate, cpu = throughput(side, entries)
                got[name].append(rate)
                held = side.bytes_held() / len(entries)
                line = (
                    f"  round {n}/{rounds} {name}: {rate:,.0f} events/s, CPU {cpu:.2f} ms/event, "
                    f"Redis {held:,.0f} bytes/event"
                )
                if name != "baseline" and n == 1:
                    one, largest = update_sizes(side, size, args.partners, len(entries))
                    line += f"; savings.updated after one contract changed {one:,} bytes, largest {largest:,}"
                print(line, flush=True)
            finally:
                side.stop()
    medians = {k: statistics.median(v) for k, v in got.items()}
    print("  medians: " + ", ".join(f"{k} {v:,.0f} events/s" for k, v in medians.items()), flush=True)
    for name in ("serve", "split"):
        if name in medians and "baseline" in medians:
            print(f"  ratio {name}/baseline at {size:,} contracts: {medians[name] / medians['baseline']:.2f}")
    return got


def latencies(url: str, registry: tuple[Path, Path], tmp: Path, args: argparse.Namespace) -> None:
    """`--latency-runs` runs of each side, interleaved, each on a side started afresh with
    events of its own; then each side's median p50 and p99 over the runs, with the p99's range
    (one 10 s run's p99 moves with what else the machine is doing: 30-114 ms for serve in 30
    runs of the same code here, 8 December)."""
    n = int(args.latency_seconds * args.latency_rate)
    print(
        f"\nlatency at a steady {args.latency_rate:,} events/s for {args.latency_seconds:.0f} s, "
        f"inbound XADD to the first summary that counts it ({args.latency_runs} runs a side, interleaved):",
        flush=True,
    )
    quantiles: dict[str, list[tuple[float, float]]] = {name: [] for name in args.sides}
    for run in range(args.latency_runs):
        first = 10_000_000 + run * (n // (NEEDS_PER_CONTRACT + 1) + 1)
        entries = contracts(n // (NEEDS_PER_CONTRACT + 1) + 1, args.partners, start=first)[:n]
        for name in args.sides:
            side = Side(name, url, registry, tmp)
            try:
                cpu, t0 = side.cpu_seconds(), time.perf_counter()
                timed = latency(side, entries, args.latency_rate)
                cpu, wall = side.cpu_seconds() - cpu, time.perf_counter() - t0
                q = statistics.quantiles(timed.total, n=100)
                quantiles[name].append((q[49], q[98]))
                # at a steady rate the batches are small and each costs its round trips: the CPU
                # an event here, against the throughput's (full batches), shows what that costs
                print(
                    f"  run {run + 1}/{args.latency_runs} {name}: {_q(timed.total)}; "
                    f"CPU {cpu * 1000 / n:.2f} ms an event, {100 * cpu / wall:.0f}% of a core",
                    flush=True,
                )
                if timed.hops["gateway"]:
                    print(
                        "    hops: " + "; ".join(f"{hop} {_q(values)}" for hop, values in timed.hops.items()),
                        flush=True,
                    )
            finally:
                side.stop()
    for name, runs in quantiles.items():
        p50, p99s = statistics.median(p for p, _ in runs), sorted(p99 for _, p99 in runs)
        low, high = p99s[0] * 1000, p99s[-1] * 1000
        print(
            f"  {name}, median of {len(runs)} runs: p50 {p50 * 1000:.0f} ms, "
            f"p99 {statistics.median(p99s) * 1000:.0f} ms (p99 {low:.0f}-{high:.0f} ms)",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--contracts",
        type=int,
        nargs="+",
        default=[500, 8000],
        help="portfolio sizes (11 events a contract); default 500 and 8000",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        nargs="+",
        default=[3, 1],
        help="interleaved rounds per size, the last repeated (default 3 at 500, 1 at 8000)",
    )
    ap.add_argument("--partners", type=int, default=50)
    ap.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    ap.add_argument("--latency-seconds", type=float, default=10)
    ap.add_argument("--latency-rate", type=int, default=1000)
    ap.add_argument(
        "--latency-runs", type=int, default=3, help="runs of each side at that rate, interleaved; medians"
    )
    ap.add_argument(
        "--rebuild", type=int, default=0, help="events for the rebuild timing (e.g. 1000000); 0 skips it"
    )
    args = ap.parse_args()
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="commissioning-bench-"))
    server = RedisServer(tmp / "redis").start()
    try:
        registry = write_registry(tmp, args.partners)
        version = subprocess.run(
            [str(server.binary), "--version"], check=True, capture_output=True, text=True
        ).stdout.split()[2]
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at "
            f"start, Python {platform.python_version()}, {version}",
            flush=True,
        )
        rounds = args.rounds + [args.rounds[-1]] * (len(args.contracts) - len(args.rounds))
        results = {
            size: portfolio_size(server.url, registry, tmp, args, size, n)
            for size, n in zip(args.contracts, rounds, strict=False)
        }
        if args.latency_seconds > 0:
            latencies(server.url, registry, tmp, args)
        if args.rebuild:
            seconds, snapshot_s, whole_s = rebuild_time(
                server.url, redis.Redis.from_url(server.url), args.rebuild, args.partners
            )
            print(
                f"a restarted savings process loads that state in {snapshot_s:.1f} s from its snapshot, "
                f"{whole_s:.1f} s reading every event",
                flush=True,
            )
        took = time.perf_counter() - started
        print(f"\nload average at the end {os.getloadavg()[0]:.1f}; took {took:.0f} s")
        first = results[args.contracts[0]]
        if "baseline" in first and "serve" in first:
            ours, base = statistics.median(first["serve"]), statistics.median(first["baseline"])
            print(f"throughput {ours:.0f} baseline {base:.0f} ratio {ours / base:.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
