"""What a service is to the runtime: its subscriptions, HTTP routes and lifecycle hooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from redis.asyncio import Redis

from services.readauth import ReadAuth
from shared.adapters.redis import redis_ports
from shared.authority import OwnerState
from shared.bus import Bus, Subscription, event_subscription
from shared.bus.consumer import parse_trusted
from shared.partners import PartnerRegistry
from shared.ports import Ports
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
    #: the read credentials, as FastAPI dependencies (services.readauth)
    reads: ReadAuth

    def ports(self, service: str) -> Ports:
        """A service's adapters (shared.ports): on this process's Redis."""
        return redis_ports(self.redis, self.streams, service)


@dataclass
class Service:
    name: str
    subscriptions: Sequence[Subscription] = ()
    #: its HTTP routes (FastAPI), on the process's one app
    http: APIRouter | None = None
    on_startup: Sequence[Callable[[], Awaitable[None]]] = ()
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = ()
    #: what it does, in one line (also each subscription's description in the event API document)
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def state_service(
    name: str,
    ctx: Context,
    state: EventSetState[Any],
    event_types: Sequence[str],
    http: APIRouter,
    summary: str,
) -> Service:
    """A service whose state is the set of events it applied (shared.state): it subscribes
    to `event_types`, loads on start, and serves `http`."""
    state.batch_size = ctx.bus.batch_size
    subs = [
        event_subscription(
            name,
            ctx.streams.accepted(t),
            state.handle,
            after_batch=state.after_batch,
            description=f"{t}: {summary}",
            parse=parse_trusted,
        )
        for t in event_types
    ]
    if isinstance(state, OwnerState):  # the partners' requests it decides (shared.authority)
        state.inputs = [ctx.streams.accepted(t) for t in event_types]
        owned = ", ".join(sorted(state.owned))
        subs.append(
            event_subscription(
                name,
                ctx.streams.requests(name),
                state.handle,
                after_batch=state.after_batch,
                parse=parse_trusted,
                description=f"requests to {name} ({owned}): {summary}",
            )
        )
    return Service(
        name,
        subs,
        http=http,
        on_startup=[state.start],
        on_shutdown=[state.stop],
        summary=summary,
        extra={"state": state},
    )
