"""What FastStream's dispatch costs a batch, as the product configures it. Not a test: it prints
figures.

    python bench/dispatch.py [--entries 3000] [--rounds 3]

At a steady rate the product's batches are small (README, Performance), so what each batch
costs counts. Each side reads one-entry batches from a stream of its own and acknowledges them
(a separate process adds an entry every 1.5 ms), and reports its process's CPU per entry:
- `redis-py`: a plain XREADGROUP loop, nothing else;
- `faststream`: a batch subscriber on the broker of FastStream's FastAPI router, with the
  product's parser and decoder (`shared.bus.consumer`), as `services/runtime.py` sets it up;
- `faststream+metrics`: the same with FastStream's Prometheus middleware, as the product runs.
Sides run one after the other, interleaved, in their own processes; medians of `--rounds`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIDES = ("redis-py", "faststream", "faststream+metrics")

FEED = """
import sys, time, redis
r = redis.Redis.from_url(sys.argv[1])
for _ in range(int(sys.argv[3])):
    r.xadd(sys.argv[2], {"event": b"x" * 300})
    time.sleep(0.0015)
"""


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _side(side: str, url: str, entries: int) -> float:
    """CPU seconds of this process per entry, reading `entries` one-entry batches."""
    from faststream import AckPolicy
    from faststream.redis.fastapi import RedisRouter as RedisFastAPIRouter
    from faststream.redis.prometheus import RedisPrometheusMiddleware
    from prometheus_client import CollectorRegistry
    from redis.asyncio import Redis

    from services.runtime import _BatchRouter
    from shared.bus.consumer import _decode_batch, _parse_batch, _StreamSub

    r = Redis.from_url(url)
    stream = f"dispatch:{side}:{os.getpid()}"
    await r.xgroup_create(stream, "g", id="0", mkstream=True)
    got, done = 0, asyncio.Event()

    async def handle(raw: dict) -> None:
        nonlocal got
        ids = raw["message_ids"]
        await r.xack(stream, "g", *ids)
        got += len(ids)
        if got >= entries:
            done.set()

    broker = None
    if side == "redis-py":

        async def loop() -> None:
            while not done.is_set():
                for _, items in await r.xreadgroup("g", "c", {stream: ">"}, count=500, block=1000) or []:
                    await handle({"message_ids": [i for i, _ in items]})

        reader = asyncio.create_task(loop())
    else:
        metrics = [RedisPrometheusMiddleware(registry=CollectorRegistry(), app_name="x")]
        router = RedisFastAPIRouter(url, logger=None, middlewares=metrics if side.endswith("metrics") else [])
        broker = router.broker
        _BatchRouter(router).subscriber(  # as services/runtime.py puts the bus's subscribers on it
            stream=_StreamSub(
                stream,
                group="g",
                consumer="c",
                batch=True,
                max_records=500,
                polling_interval=1000,
                last_id=">",
            ),
            parser=_parse_batch,
            decoder=_decode_batch,
            ack_policy=AckPolicy.MANUAL,
        )(handle)
        await broker.start()
    await asyncio.sleep(0.5)
    feeder = await asyncio.create_subprocess_exec(sys.executable, "-c", FEED, url, stream, str(entries))
    cpu = _cpu()
    await done.wait()
    cpu = _cpu() - cpu
    await feeder.wait()
    if broker is not None:
        await broker.stop()
    else:
        await reader
    await r.delete(stream)
    await r.aclose()
    return cpu / entries


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # one side, in its own process
    ap.add_argument("--redis", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        import uvloop

        print(uvloop.run(_side(args.side, args.redis, args.entries)))
        return
    from shared.redis_server import RedisServer

    server = RedisServer(Path(tempfile.mkdtemp(prefix="commissioning-dispatch-")) / "redis").start()
    try:
        got: dict[str, list[float]] = {s: [] for s in SIDES}
        for n in range(args.rounds):
            for side in SIDES:
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--side",
                        side,
                        "--redis",
                        server.url,
                        "--entries",
                        str(args.entries),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                )
                got[side].append(float(out.stdout.split()[-1]))
                print(
                    f"  round {n + 1}/{args.rounds} {side}: {got[side][-1] * 1e6:.0f} us CPU an entry",
                    flush=True,
                )
        medians = {s: statistics.median(v) * 1e6 for s, v in got.items()}
        print("medians: " + ", ".join(f"{s} {m:.0f} us" for s, m in medians.items()))
        print(
            f"dispatch {medians['faststream'] - medians['redis-py']:.0f} us a batch, "
            f"metrics {medians['faststream+metrics'] - medians['faststream']:.0f} us more"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
