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

The leases and the processes seen go through the `LeaseBoard` port (shared.ports; on Redis
`RedisLeaseBoard`, which holds the keys and scripts).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
import uvicorn

from shared.outage import OUTAGE
from shared.ports import LeaseBoard
from shared.settings import Settings

log = structlog.get_logger("leases")


@dataclass
class Leases:
    board: LeaseBoard
    settings: Settings
    holder: str
    #: partnership -> a server for it on its own port (not started)
    make: Callable[[str], uvicorn.Server]
    serving: dict[str, tuple[uvicorn.Server, asyncio.Task[None]]] = field(default_factory=dict)
    stopping: bool = False

    def __post_init__(self) -> None:
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
                    await self.board.release(p, self.holder)
                except Exception as e:  # noqa: BLE001 - it expires anyway
                    OUTAGE.failed(e, "releasing a lease")
            await self.board.gone(self.holder)

    async def round(self) -> None:
        live = max(await self.board.seen(self.holder, int(time.time() * 1000), self.ms), 1)
        fair = math.ceil(len(self.pool) / live)
        for p in list(self.serving):  # a lease not renewed: someone else may hold it now
            if not await self.board.renew(p, self.holder, self.ms):
                log.warning("lease lost; stopping the partnership", partnership=p)
                await self.stop(p)
        for p in sorted(self.serving)[fair:]:  # above the fair share: hand back
            await self.stop(p)
            await self.board.release(p, self.holder)
            log.info("lease released", partnership=p, share=fair, processes=live)
        for p in self.pool:
            if len(self.serving) >= fair:
                break
            if p not in self.serving and await self.board.take(p, self.holder, self.ms):
                server = self.make(p)
                try:
                    sock = server.config.bind_socket()  # uvicorn exits when the port is taken
                except (OSError, SystemExit):  # its port still held (a server stopping): next round
                    await self.board.release(p, self.holder)
                    continue
                self.serving[p] = (server, asyncio.create_task(server.serve(sockets=[sock])))
                log.info("lease taken", partnership=p, share=fair, processes=live)
        for p, (_, task) in list(self.serving.items()):
            if task.done():  # a partnership's server ended on its own (its startup failed): try again later
                await self.stop(p)
                await self.board.release(p, self.holder)

    async def stop(self, partnership: str) -> None:
        server, task = self.serving.pop(partnership)
        server.should_exit = True
        try:
            await task
        except Exception as e:  # noqa: BLE001 - stopped either way
            log.warning("partnership stopped with an error", partnership=partnership, error=repr(e))
