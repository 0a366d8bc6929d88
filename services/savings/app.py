"""Wiring of the savings service: subscriptions, the read API (`GET /savings`, its live stream,
recent events), the dashboard and the workspace, startup load."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response

from services.readauth import UNAUTHENTICATED, Reader, unauthenticated
from services.savings.live import Page, RecentEvents, SavingsStream, savings_response, totals_response
from services.savings.projection import GROUP, TYPES, Projection
from services.savings.settings import appraisal_policy
from services.savings.workspace.pages import Workspace
from services.service import Context, Service, state_service
from shared.settings import savings_policy

__all__ = ["GROUP", "build"]


def build(ctx: Context) -> Service:
    projection = Projection(
        ctx.redis, ctx.streams, savings_policy(), snapshot_every_s=ctx.settings.snapshot_every_s
    )
    stream = SavingsStream(projection.updates.port)
    recent = RecentEvents(projection.ports.entries, ctx.streams)
    reads, public_totals = ctx.reads, ctx.settings.public_totals
    anyone = Depends(reads.optional)  # a default, not Annotated: a local name
    router = APIRouter()

    @router.get(
        "/savings",
        tags=["savings"],
        summary="The whole savings projection",
        description="As JSON, for dashboards that poll; `Savings-Update-Id` names the "
        "`savings.updated` entry these figures were published as (follow `/savings/stream` from "
        "there). With COMMISSIONING_PUBLIC_TOTALS, anyone gets `as_of` and `portfolio` only.",
        responses=UNAUTHENTICATED,
    )
    async def savings(reader: Reader | None = anyone) -> Response:
        if reader is not None:
            return savings_response(projection.figures, projection.published_id)
        if public_totals and (figures := projection.summary):
            return totals_response(figures)
        return unauthenticated()

    @router.get(
        "/savings/stream",
        tags=["savings"],
        summary="Each savings.updated, as Server-Sent Events",
        description="After `?after=<Savings-Update-Id>`, or `Last-Event-ID` on reconnecting; with "
        "neither, the latest at once and then each new one. `event: reset` when what was asked "
        "for was trimmed away: load `/savings` again.",
        response_class=Response,
        responses={200: {"content": {"text/event-stream": {}}}, **UNAUTHENTICATED},
        dependencies=[Depends(reads.api)],
    )
    async def updates(
        after: Annotated[str | None, Query(description="a Savings-Update-Id")] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> Response:
        return stream.response(last_event_id, after)

    @router.get(
        "/events/recent",
        tags=["savings"],
        summary="The newest accepted events, newest first",
        description="Type, source, id, time and what each is about: no money, no partner detail.",
        responses=UNAUTHENTICATED,
        dependencies=[Depends(reads.api)],
    )
    async def recent_events(
        limit: Annotated[str | None, Query(description="1 to 100, 20 if not")] = None,
    ) -> Response:
        return await recent.response(limit)

    pages = APIRouter(include_in_schema=False, dependencies=[Depends(reads.page)])
    for path, name in (
        ("/", "index.html"),
        ("/dashboard", "index.html"),
        ("/dashboard/app.js", "app.js"),
        ("/dashboard/app.css", "app.css"),
    ):
        pages.add_api_route(path, Page(name).response, methods=["GET"])
    router.include_router(pages)

    workspace = Workspace(
        projection.ports.entries, ctx.streams, ctx.registry, savings_policy(), appraisal_policy()
    )
    router.include_router(workspace.routes(reads))
    return state_service(GROUP, ctx, projection, TYPES, router, "the running ROI projection")
