"""What the bus keeps, and for how long: nothing grows without bound.

- **Handled entries** of a stream (`P:inbound`; a canonical stream once archived) are trimmed
  once every consumer group has handled them: up to the oldest entry still pending in any
  group or not yet delivered to it, never past it. A stream with no group is left alone.
- **Derived streams** (`P:savings.updated`, the dead letters) are capped by count.
- **State logs** (`P:state:<service>:log`: the keys each service stored, in order, which its
  replicas follow every two seconds) keep `state_log_keep_s`; a process that fell further
  behind reads its state whole (shared.state).
- **Owners' refusals** (`P:state:<owner>:decisions`, the verdict of each request, and
  `:refused`, when each refusal was recorded) keep the same window as the idempotency records:
  a request refused longer ago and sent again is decided afresh. Accepted verdicts stay, one
  beside each accepted request in the owner's state.
- **Idempotency records** (`P:group:<g>:once`, a sorted set scored by when each event was
  applied) keep a window: `window_s` seconds and at most `max_ids` ids per group. An event sent
  again after it left the window is applied again by that group's effects; the services'
  states are keyed by `source id`, so no figure counts it twice.

Every process runs it every `interval_s` (the commands are idempotent, so several processes
doing it at once do no harm).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.ports import DecisionLog, StateStore
from shared.streams import entry_id

log = structlog.get_logger("bus")

#: archive(stream, up_to) -> the id below which the stream may be trimmed (all archived)
Archive = Callable[[str, str], Awaitable[str]]


async def handled_below(redis: Redis, stream: str) -> str | None:
    """The smallest id some group still needs (pending, or not yet delivered); every entry
    below it has been handled by every group. None when the stream has no group."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream
        return None
    if not groups:
        return None
    needed: list[tuple[int, int]] = []
    for g in groups:
        summary = await redis.xpending(stream, g["name"]) if g["pending"] else None
        if summary is not None and summary["min"] is not None:
            needed.append(entry_id(summary["min"]))
        else:
            # the last delivered entry was handled (or acked since the group was looked at:
            # what was delivered after that look is above its last-delivered id); everything
            # after it is still to come
            last = entry_id(g["last-delivered-id"])
            needed.append((last[0], last[1] + 1))
    ms, seq = min(needed)
    return f"{ms}-{seq}"


@dataclass
class Retention:
    redis: Redis
    #: streams trimmed to what every group has handled
    handled: list[str] = field(default_factory=list)
    #: streams whose handled entries are archived before they are trimmed
    archived: list[str] = field(default_factory=list)
    #: stream -> most entries kept
    capped: dict[str, int] = field(default_factory=dict)
    #: idempotency records to keep to the window
    once_keys: list[str] = field(default_factory=list)
    window_s: int = 7 * 86_400
    max_ids: int = 200_000
    interval_s: float = 1.0
    archive: Archive | None = None
    #: the state stores whose logs are trimmed to the last `state_log_keep_s` (shared.ports)
    state_logs: list[StateStore] = field(default_factory=list)
    state_log_keep_s: float = 600.0
    #: the owners' decision logs whose refusals are forgotten after `window_s`
    decision_logs: list[DecisionLog] = field(default_factory=list)

    async def trim_handled(self, streams: Iterable[str]) -> int:
        removed = 0
        for stream in streams:
            below = await handled_below(self.redis, stream)
            if below is not None and below != "0-1":
                removed += await self.redis.xtrim(stream, minid=below, approximate=False)
        return removed

    async def run_once(self) -> dict[str, int]:
        """One round; how many entries or ids each part removed."""
        done = {
            "handled": await self.trim_handled(self.handled),
            "archived": 0,
            "capped": 0,
            "ids": 0,
            "log": 0,
            "refusals": 0,
        }
        if self.archive is not None:
            for stream in self.archived:
                below = await handled_below(self.redis, stream)
                if below is not None and below != "0-1":
                    safe = await self.archive(stream, below)  # written and synced before we trim
                    done["archived"] += await self.redis.xtrim(stream, minid=safe, approximate=False)
        for stream, maxlen in self.capped.items():
            done["capped"] += await self.redis.xtrim(stream, maxlen=maxlen, approximate=True)
        below = f"{int((time.time() - self.state_log_keep_s) * 1000)}-0"
        for store in self.state_logs:
            done["log"] += await store.trim(below)
        cutoff = int((time.time() - self.window_s) * 1000)
        for decisions in self.decision_logs:
            done["refusals"] += await decisions.forget_refused(cutoff)
        for key in self.once_keys:
            done["ids"] += await self.redis.zremrangebyscore(key, "-inf", f"({cutoff}")
            done["ids"] += await self.redis.zremrangebyrank(key, 0, -self.max_ids - 1)
        return done
