"""What a service is to the runtime: its subscriptions, HTTP routes and lifecycle hooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis

from shared.bus import Bus, Entry, Subscription, event_subscription
from shared.events import CloudEvent
from shared.partners import PartnerRegistry
from shared.settings import Settings
from shared.state import EventSetState
from shared.streams import Streams


@dataclass
class Context:
    settings: Settings
    streams: Streams
    redis: Redis
    bus: Bus
    registry: PartnerRegistry


@dataclass
class Service:
    name: str
    subscriptions: Sequence[Subscription] = ()
    routes: Sequence[tuple[str, Any]] = ()
    on_startup: Sequence[Callable[[], Awaitable[None]]] = ()
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = ()
    #: what it does, in one line, shown at start
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def listening_service(name: str, ctx: Context, event_types: Sequence[str], summary: str) -> Service:
    """A service not built yet: it consumes its streams reliably and logs what it receives,
    and says plainly that it does nothing else with them."""
    log = structlog.get_logger(name)

    async def note(event: CloudEvent, entry: Entry) -> list[Any]:
        log.info("received; not processed yet (service not built)", stream=entry.stream, source=event.source)
        return []

    subs = [event_subscription(name, ctx.streams.of_type(t), note) for t in event_types]
    return Service(name, subs, summary=summary)


def state_service(name: str, ctx: Context, state: EventSetState[Any], event_types: Sequence[str],
                  routes: Sequence[tuple[str, Any]], summary: str) -> Service:
    """A service whose state is the set of events it applied (shared.state): it subscribes
    to `event_types`, loads on start, and serves `routes`."""
    subs = [
        event_subscription(name, ctx.streams.accepted(t), state.handle, after_batch=state.after_batch,
                           description=f"{t}: {summary}")
        for t in event_types
    ]
    return Service(name, subs, routes=routes, on_startup=[state.start], on_shutdown=[state.stop],
                   summary=summary, extra={"state": state})
