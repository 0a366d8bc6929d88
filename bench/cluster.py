"""Aggregate throughput of many partnerships, with 1, 2 and 4 service processes, on a Redis
Cluster (three primaries, three replicas, on loopback) against a single primary, in one run.
Not a test: it prints figures.

    python bench/cluster.py [--partnerships 50] [--contracts 20] [--processes 1 2 4]

Each partnership gets `--contracts` contracts of bench/workload.py (ten needs and an award
each, signed by its partners), onto its own `P:inbound` (`P` = `<prefix>:{<partnership>}`).
The partnerships are dealt round robin to the processes (COMMISSIONING_PARTNERSHIPS); each
process runs every service and the gateway for each of its partnerships. Timed from the first
XADD, once every process is ready (and has idled `IDLE_S` seconds, its CPU measured: what
serving the partnerships costs with nothing to do), until every partnership's savings service
has applied all its events; CPU ms an event over all the processes. Both Redis setups are started here (the cluster with `redis-cli --cluster
create`, as the tests do), so one run compares them on the same machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis
from redis.cluster import RedisCluster

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workload import contracts, write_registry  # noqa: E402
from shared.redis_server import RedisServer  # noqa: E402
from shared.settings import partnership_prefix  # noqa: E402
from tests.cluster import LoopbackCluster, http_ports  # noqa: E402  (the tests' loopback cluster)

PARTNERS = 20
IDLE_S = 5.0


def cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU time the processes have used so far (Linux /proc)."""
    total = 0
    for p in procs:
        with open(f"/proc/{p.pid}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run(
    url: str,
    cluster: bool,
    processes: int,
    names: list[str],
    events: list[dict[str, bytes]],
    registry: Path,
    tmp: Path,
) -> tuple[float, float, float, float]:
    """(seconds to start and be ready, share of a core the processes use while idle, events a
    second, CPU ms an event)."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    r = RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)
    shares = [names[i::processes] for i in range(processes)]
    procs, ports, log_paths = [], [], []
    t0 = time.perf_counter()
    for i, share in enumerate(shares):
        base = http_ports(len(share))
        ports.extend(range(base, base + len(share)))
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": url,
            "COMMISSIONING_PREFIX": prefix,
            "COMMISSIONING_PARTNERSHIPS": ",".join(share),
            "COMMISSIONING_PARTNERS": str(registry),
            "COMMISSIONING_REDIS_MODE": "cluster" if cluster else "single",
            "COMMISSIONING_HTTP_PORT": str(base),
        }
        log_paths.append(tmp / f"{prefix}-{i}.log")
        log = open(log_paths[-1], "wb")  # noqa: SIM115 - kept open for the child
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "services.cli", "serve"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        pending = set(ports)
        while pending:
            for p in procs:
                if p.poll() is not None:
                    tail = log_paths[procs.index(p)].read_text(errors="replace")[-3000:]
                    raise SystemExit(f"a process exited with {p.returncode}:\n{tail}")
            for port in list(pending):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                        pending.discard(port)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        ready = time.perf_counter() - t0
        cpu, t0 = cpu_seconds(procs), time.perf_counter()
        time.sleep(IDLE_S)  # nothing sent: what serving the partnerships costs by itself
        idle = (cpu_seconds(procs) - cpu) / (time.perf_counter() - t0)
        cpu, t0 = cpu_seconds(procs), time.perf_counter()
        for name in names:
            pipe = r.pipeline(transaction=False)
            for e in events:
                pipe.xadd(f"{partnership_prefix(prefix, name)}:inbound", e)
            pipe.execute()
        left = list(names)
        while left:
            left = [
                n
                for n in left
                if r.hlen(f"{partnership_prefix(prefix, n)}:state:savings:events") < len(events)
            ]
            time.sleep(0.05)
        rate = len(names) * len(events) / (time.perf_counter() - t0)
        per_event = (cpu_seconds(procs) - cpu) * 1000 / (len(names) * len(events))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        r.close()
    return ready, idle, rate, per_event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partnerships", type=int, default=50)
    parser.add_argument(
        "--contracts", type=int, default=20, help="contracts per partnership (11 events each)"
    )
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    names = [f"p{i:03d}" for i in range(args.partnerships)]
    events = contracts(args.contracts, PARTNERS)
    print(
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"{args.partnerships} partnerships x {len(events)} events = {args.partnerships * len(events)} events a run"
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        registry, _ = write_registry(tmp, PARTNERS)
        single = RedisServer(tmp / "single").start()
        cluster = LoopbackCluster(tmp / "cluster").start()
        try:
            primaries = sum(1 for n in cluster.nodes() if n.primary)
            print(
                f"{'redis':<34} {'processes':>9} {'ready s':>8} {'idle cores':>10} {'events/s':>9} {'CPU ms/event':>12}"
            )
            for n in args.processes:
                for label, url, is_cluster in (
                    ("single primary", single.url, False),
                    (f"cluster, {primaries} primaries + replicas", cluster.url, True),
                ):
                    ready, idle, rate, per_event = run(url, is_cluster, n, names, events, registry, tmp)
                    print(
                        f"{label:<34} {n:>9} {ready:>8.1f} {idle:>10.2f} {rate:>9.0f} {per_event:>12.2f}",
                        flush=True,
                    )
        finally:
            cluster.stop()
            single.stop()


if __name__ == "__main__":
    main()
