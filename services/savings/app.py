"""Wiring of the savings service: subscriptions, `GET /savings`, startup load."""

from __future__ import annotations

from faststream.asgi import AsgiResponse, Request, get

from services.savings.live import Page, RecentEvents, SavingsStream, savings_response
from services.savings.projection import TYPES, Projection
from services.service import Context, Service, state_service
from services.savings.workspace.pages import Workspace
from services.savings.settings import appraisal_policy
from shared.settings import savings_policy

GROUP = "savings"


def build(ctx: Context) -> Service:
    projection = Projection(ctx.redis, ctx.streams, savings_policy())

    @get(description="The whole savings projection as JSON (dashboards that poll).")
    async def savings(request: Request) -> AsgiResponse:
        return savings_response(projection.figures, projection.published_id)

    workspace = Workspace(ctx.redis, ctx.streams, ctx.registry, savings_policy(), appraisal_policy())
    return state_service(
        GROUP,
        ctx,
        projection,
        TYPES,
        [
            ("/savings", savings),
            ("/savings/stream", SavingsStream(ctx.redis, ctx.streams)),
            ("/events/recent", RecentEvents(ctx.redis, ctx.streams)),
            ("/", Page("index.html")),
            ("/dashboard", Page("index.html")),
            ("/dashboard/app.js", Page("app.js")),
            ("/dashboard/app.css", Page("app.css")),
            *workspace.routes(),
        ],
        "the running ROI projection",
    )
