"""A test consumer built on the product's own consumption mechanism (`shared.bus`).

Its effect on each event is `HINCRBY <prefix>:counts <source id> 1`, so any event applied
twice shows as a 2. Events whose data has `"poison": true` fail until `<prefix>:fixed` exists. `COUNTER_DELAY_MS`
slows each entry down so that a kill lands in the middle of a batch.
Run: python -m tests.procs.counter  (env: REDIS_URL, COMMISSIONING_PREFIX, ...)
"""

from __future__ import annotations

import asyncio
import os

from faststream import FastStream
from faststream.redis import RedisBroker, RedisRouter
from redis.asyncio import Redis

from shared.bus import Bus, Entry, event_subscription
from shared.events import CloudEvent
from shared.logging import configure_logging
from shared.settings import Settings
from shared.streams import Streams

GROUP = "counter"


def main() -> None:
    settings = Settings()
    configure_logging("counter", "INFO", "json")
    streams = Streams(settings.prefix)
    redis = Redis.from_url(settings.redis_url)
    delay = int(os.environ.get("COUNTER_DELAY_MS", "0")) / 1000
    bus = Bus.from_settings(redis, settings)

    async def count(event: CloudEvent, entry: Entry) -> list[tuple[str, ...]]:
        if event.data.get("poison") and not await redis.exists(streams.key("fixed")):
            raise RuntimeError(f"cannot process {event.id}: poisoned on purpose")
        if delay:
            await asyncio.sleep(delay)
        return [("HINCRBY", streams.key("counts"), event.key, "1")]

    bus.add(event_subscription(GROUP, streams.key("work"), count))
    broker = RedisBroker(settings.redis_url, graceful_timeout=settings.shutdown_timeout_s, logger=None)
    router = RedisRouter()
    bus.register(router)
    broker.include_router(router)

    async def started() -> None:
        bus.start_sweepers()
        await redis.set(streams.key("counter-ready", bus.consumer), "1")

    app = FastStream(
        broker,
        logger=None,
        on_startup=[bus.ensure_groups],
        after_startup=[started],
        on_shutdown=[bus.stop_sweepers],
    )
    asyncio.run(app.run())


if __name__ == "__main__":
    main()
