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
doing it at once do no harm). It speaks the ports (shared.ports: `Delivery` for the streams and
the idempotency records, `StateStore` and `DecisionLog` for the rest), not Redis.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import structlog

from shared.ports import DecisionLog, Delivery, StateStore

log = structlog.get_logger("bus")

#: archive(stream, up_to) -> the id below which the stream may be trimmed (all archived)
Archive = Callable[[str, str], Awaitable[str]]


@dataclass
class Retention:
    delivery: Delivery
    #: streams trimmed to what every group has handled
    handled: list[str] = field(default_factory=list)
    #: streams whose handled entries are archived before they are trimmed
    archived: list[str] = field(default_factory=list)
    #: stream -> most entries kept
    capped: dict[str, int] = field(default_factory=dict)
    #: the consumer groups whose idempotency records are kept to the window
    groups: list[str] = field(default_factory=list)
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
            below = await self.delivery.handled_below(stream)
            if below is not None and below != "0-1":
                removed += await self.delivery.trim_below(stream, below)
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
                below = await self.delivery.handled_below(stream)
                if below is not None and below != "0-1":
                    safe = await self.archive(stream, below)  # written and synced before we trim
                    done["archived"] += await self.delivery.trim_below(stream, safe)
        for stream, maxlen in self.capped.items():
            done["capped"] += await self.delivery.cap(stream, maxlen)
        below = f"{int((time.time() - self.state_log_keep_s) * 1000)}-0"
        for store in self.state_logs:
            done["log"] += await store.trim(below)
        cutoff = int((time.time() - self.window_s) * 1000)
        for decisions in self.decision_logs:
            done["refusals"] += await decisions.forget_refused(cutoff)
        for group in self.groups:
            done["ids"] += await self.delivery.forget_settled(group, cutoff, self.max_ids)
        return done
