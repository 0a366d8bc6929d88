"""Partnerships shared by leases: every process is given the same pool of partnerships
(COMMISSIONING_PARTNERSHIPS) and serves those whose lease it holds.

- A lease is a key on the partnership's own slot, `P:lease` = the holder's consumer name, with
  an expiry (`COMMISSIONING_LEASE_S`); its holder renews it every third of that.
- Every process records itself in `<prefix>:processes` (a sorted set scored by when it was
  last seen); each round it counts the live ones and aims at its fair share,
  ceil(partnerships / processes): it releases leases above that (the partnership stopped
  first), and takes free ones below it. So adding a process spreads the partnerships, and the
  partnerships of a process that died are taken over once its leases expire.
- A lease it failed to renew (expired, or taken) stops that partnership at once.

Two processes on one partnership for a moment (one's lease ran out while it was still
stopping) would be safe: they share its consumer groups, as replicas do.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
import uvicorn
from redis.asyncio import Redis

from shared.outage import OUTAGE
from shared.settings import Settings, partnership_prefix
from shared.streams import Streams

log = structlog.get_logger("leases")

# KEYS[1] the lease; ARGV[1] the holder, ARGV[2] ms: renew only a lease we still hold
RENEW = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
    "return 0"
)
# KEYS[1] the lease; ARGV[1] the holder: release only a lease we still hold
RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def lease_key(settings: Settings, partnership: str) -> str:
    return Streams(partnership_prefix(settings.prefix, partnership)).key("lease")


def processes_key(settings: Settings) -> str:
    """The deployment's live processes: not a partnership's key, on a slot of its own."""
    return Streams(settings.prefix).key("processes")


@dataclass
class Leases:
    redis: Redis
    settings: Settings
    holder: str
    #: partnership -> a server for it on its own port (not started)
    make: Callable[[str], uvicorn.Server]
    serving: dict[str, tuple[uvicorn.Server, asyncio.Task[None]]] = field(default_factory=dict)
    stopping: bool = False

    def __post_init__(self) -> None:
        self._renew = self.redis.register_script(RENEW)
        self._release = self.redis.register_script(RELEASE)
        self.pool = [p for p in self.settings.served if p]

    @property
    def ms(self) -> int:
        return int(self.settings.lease_s * 1000)

    async def run(self) -> None:
        """Rounds until `stop`; then every partnership stopped and its lease released."""
        try:
            while not self.stopping:
                try:
                    await self.round()
                    OUTAGE.ok()
                # Redis away: the leases run out, the servers are stopped below
                except Exception as e:  # noqa: BLE001
                    OUTAGE.failed(e, "lease round")
                await asyncio.sleep(self.settings.lease_s / 3)
        finally:
            for p in list(self.serving):
                await self.stop(p)
                try:
                    await self._release(keys=[lease_key(self.settings, p)], args=[self.holder])
                except Exception as e:  # noqa: BLE001 - it expires anyway
                    OUTAGE.failed(e, "releasing a lease")
            await self.redis.zrem(processes_key(self.settings), self.holder)

    async def round(self) -> None:
        now = int(time.time() * 1000)
        key = processes_key(self.settings)
        await self.redis.zadd(key, {self.holder: now})
        await self.redis.zremrangebyscore(key, "-inf", now - self.ms)
        live = max(await self.redis.zcard(key), 1)
        fair = math.ceil(len(self.pool) / live)
        for p in list(self.serving):  # a lease not renewed: someone else may hold it now
            if not await self._renew(keys=[lease_key(self.settings, p)], args=[self.holder, self.ms]):
                log.warning("lease lost; stopping the partnership", partnership=p)
                await self.stop(p)
        for p in sorted(self.serving)[fair:]:  # above the fair share: hand back
            await self.stop(p)
            await self._release(keys=[lease_key(self.settings, p)], args=[self.holder])
            log.info("lease released", partnership=p, share=fair, processes=live)
        for p in self.pool:
            if len(self.serving) >= fair:
                break
            if p not in self.serving and await self.redis.set(
                lease_key(self.settings, p), self.holder, nx=True, px=self.ms
            ):
                server = self.make(p)
                try:
                    sock = server.config.bind_socket()  # uvicorn exits when the port is taken
                except (OSError, SystemExit):  # its port still held (a server stopping): next round
                    await self._release(keys=[lease_key(self.settings, p)], args=[self.holder])
                    continue
                self.serving[p] = (server, asyncio.create_task(server.serve(sockets=[sock])))
                log.info("lease taken", partnership=p, share=fair, processes=live)
        for p, (_, task) in list(self.serving.items()):
            if task.done():  # a partnership's server ended on its own (its startup failed): try again later
                await self.stop(p)
                await self._release(keys=[lease_key(self.settings, p)], args=[self.holder])

    async def stop(self, partnership: str) -> None:
        server, task = self.serving.pop(partnership)
        server.should_exit = True
        try:
            await task
        except Exception as e:  # noqa: BLE001 - stopped either way
            log.warning("partnership stopped with an error", partnership=partnership, error=repr(e))
