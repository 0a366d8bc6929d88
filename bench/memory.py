"""Redis memory per accepted event, measured (README, "Limits and retention"). Not a test.

    python bench/memory.py [--events 20000] [--partners 50]

One `commissioning serve` process (every service, the gateway included) on a private Redis
takes the benchmark's workload (bench/workload.py: needs, and awards over them) through
`P:inbound`; once every event is applied and the inbound stream trimmed, it prints Redis's
growth per event and the largest keys.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.benchmark import Side  # noqa: E402
from bench.workload import NEEDS_PER_CONTRACT, contracts, write_registry  # noqa: E402
from shared.redis_server import RedisServer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--partners", type=int, default=50)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    server = RedisServer(tmp / "redis").start()
    try:
        r = redis.Redis.from_url(server.url)
        entries = contracts(args.events // (NEEDS_PER_CONTRACT + 1) + 1, args.partners)[: args.events]
        before = r.info("memory")["used_memory"]
        side = Side("serve", server.url, write_registry(tmp, args.partners), tmp)
        try:
            side.send(entries)
            while side.counted() < len(entries) or r.xlen(f"{side.prefix}:inbound") > 1:
                time.sleep(0.2)
            time.sleep(1.5)  # one more retention round
            growth = r.info("memory")["used_memory"] - before
            sizes = sorted(
                ((r.memory_usage(k) or 0, k.decode()) for k in r.scan_iter(f"{side.prefix}:*")), reverse=True
            )
        finally:
            side.stop()
        print(
            f"{len(entries)} events: Redis grew {growth / 1e6:.1f} MB, "
            f"{growth / len(entries):.0f} bytes an event"
        )
        for size, key in sizes[:8]:
            print(f"  {size / len(entries):7.0f} bytes an event  {key}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
