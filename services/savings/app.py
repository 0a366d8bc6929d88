"""Wiring of the savings service: subscriptions, `GET /savings`, startup load."""

from __future__ import annotations

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
        on_startup=[projection.start],
        on_shutdown=[projection.stop],
        summary="the running ROI projection; GET /savings; publishes savings.updated",
        extra={"projection": projection},
    )
