"""Wiring of the savings service: subscriptions, `GET /savings`, startup load."""

from __future__ import annotations

import asyncio

from faststream.asgi import AsgiResponse, Request, get

from services.http import json_response
from services.savings.projection import TYPES, Projection
from services.service import Context, Service
from shared.bus import event_subscription
from shared.policy import SavingsPolicy

GROUP = "savings"


def build(ctx: Context) -> Service:
    projection = Projection(ctx.redis, ctx.streams, SavingsPolicy())

    @get(description="The whole savings projection as JSON (dashboards that poll).")
    async def savings(request: Request) -> AsgiResponse:
        return json_response(projection.figures)

    tasks: list[asyncio.Task[None]] = []

    async def load() -> None:
        await projection.load()
        tasks.append(asyncio.create_task(projection.keep_fresh()))

    async def stop() -> None:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    subs = [
        event_subscription(
            GROUP,
            ctx.streams.of_type(t),
            projection.handle,
            after_batch=projection.after_batch,
            description=f"{t} into the savings projection",
        )
        for t in TYPES
    ]
    return Service(
        GROUP,
        subs,
        routes=[("/savings", savings)],
        on_startup=[load],
        on_shutdown=[stop],
        summary="the running ROI projection; GET /savings; publishes savings.updated",
        extra={"projection": projection},
    )
