"""The workspace's pages (Jinja2 templates, rendered on the server) and the report downloads,
as FastAPI routes. Each takes the read credential as a dependency (services/readauth.py: a
page sends a browser to /signin; a download answers 401), which also says who reads. The views
are built from the streams on each request (services/savings/workspace/source.py)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any, ClassVar

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from jinja2 import Environment, PackageLoader, select_autoescape

from services.http import answer
from services.readauth import UNAUTHENTICATED, ReadAuth, Reader
from services.savings.workspace import model, report, source
from services.savings.workspace.appraisal import AppraisalPolicy
from services.savings.workspace.report import OPTION_NAMES
from shared.money import gbp
from shared.partners import PartnerRegistry
from shared.policy import SavingsPolicy
from shared.ports import Entries
from shared.streams import Streams

#: what a search may be: words, ids, dates; nothing else
SEARCH = re.compile(r"[\w .:@/-]{0,80}")
FILTERS = {
    "": "all contracts",
    "underperforming": "underperforming",
    "overdue": "with overdue returns",
    "review": "with an annual review due or not recorded",
}


def _day(d: date | None) -> str:
    return f"{d.day} {d:%B %Y}" if d else "–"


def _pct(x: Decimal | None) -> str:
    """A ratio as a whole percentage, half up; negatives with a true minus sign, as gbp shows them."""
    if x is None:
        return "–"
    whole = (x * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"\u2212{abs(whole)}%" if whole < 0 else f"{whole}%"


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("services.savings.workspace", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        gbp=lambda x: "–" if x is None else gbp(x),
        day=_day,
        pct=_pct,
        option=lambda o: OPTION_NAMES.get(o, o),
    )
    return env


def _send(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> Response:
    return answer(body, content_type, status, {"Cache-Control": "no-store", **(extra or {})})


def _download(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


class Workspace:
    """The routes: `/workspace` (overview), `/workspace/pipeline`, `/workspace/contracts`,
    `/workspace/providers`, `/workspace/audit`, `/workspace/report.csv`, `/workspace/report.pdf`
    and the page's own CSS and script."""

    def __init__(
        self,
        entries: Entries,
        streams: Streams,
        registry: PartnerRegistry,
        savings: SavingsPolicy,
        appraisal: AppraisalPolicy,
    ) -> None:
        self.entries, self.streams, self.registry = entries, streams, registry
        self.savings, self.appraisal = savings, appraisal
        self.env = environment()

    @property
    def names(self) -> dict[str, str]:
        return {p.id: p.name for p in self.registry}

    async def load(self) -> model.Workspace:
        return await source.load(self.entries, self.streams, [p.id for p in self.registry])

    async def compute(self, work: Callable[[], Any]) -> Any:
        # the fold is pure and may take a second on a large partnership: off the event loop,
        # so the bus and the SSE streams of the same process keep going
        return await asyncio.to_thread(work)

    def _contracts(self, ws: model.Workspace) -> tuple[model.ContractRow, ...]:
        return model.contracts(ws, self.names, model.today_of(ws))

    def _report(self, ws: model.Workspace) -> report.Report:
        over, rows = model.overview(ws, self.names, self.savings), self._contracts(ws)
        return report.build(over, rows, model.pipeline(ws, self.names, rows, over.as_of, self.appraisal))

    async def report(self) -> report.Report:
        ws = await self.load()
        return await self.compute(lambda: self._report(ws))  # type: ignore[no-any-return]

    def render(self, name: str, **context: Any) -> bytes:
        return self.env.get_template(name).render(**context).encode()

    def routes(self, reads: ReadAuth) -> APIRouter:
        """Pages send a browser to /signin; the files and downloads answer 401 without a credential."""
        page = APIRouter(include_in_schema=False)
        for path, view in (
            ("/workspace", self.overview),
            ("/workspace/pipeline", self.pipeline),
            ("/workspace/contracts", self.contracts),
            ("/workspace/providers", self.providers),
        ):
            page.add_api_route(path, view, methods=["GET"])

        signed_in = Depends(reads.page)  # a default, not Annotated: a local name

        @page.get("/workspace/audit")
        async def audit(q: str = "", reader: Reader = signed_in) -> Response:
            # who reads: a partner sees the messages of its own refusals
            # reads.page answers for a missing one
            return await self.audit(q, reader)  # type: ignore[arg-type]

        files = APIRouter(tags=["workspace"], dependencies=[Depends(reads.api)], responses=UNAUTHENTICATED)
        files.add_api_route(
            "/workspace/report.csv",
            self.csv,
            methods=["GET"],
            summary="The joint-committee report, as CSV",
            responses={200: {"content": {"text/csv": {}}}},
        )
        files.add_api_route(
            "/workspace/report.pdf",
            self.pdf,
            methods=["GET"],
            summary="The joint-committee report, as PDF",
            responses={200: {"content": {"application/pdf": {}}}, 503: {"description": "No PDF renderer"}},
        )
        files.add_api_route(
            "/workspace/partners.json", self.partners, methods=["GET"], summary="Each partner's name, by id"
        )
        for name in ("workspace.css", "live.js"):
            files.add_api_route(
                f"/workspace/{name}", Static(name).response, methods=["GET"], include_in_schema=False
            )
        router = APIRouter()
        router.include_router(page, dependencies=[Depends(reads.page)])
        router.include_router(files)
        return router

    async def html(self, status: int, name: str, **context: Any) -> Response:
        return _send(status, self.render(name, **context), "text/html; charset=utf-8")

    async def overview(self) -> Response:
        ws = await self.load()
        over, rows = await self.compute(
            lambda: (model.overview(ws, self.names, self.savings), self._contracts(ws))
        )
        top = max((y.saving for y in over.years), default=Decimal(0)) or Decimal(1)
        bars = [
            (y, int(max(y.saving, Decimal(0)) / top * 170)) for y in over.years
        ]  # bar heights in the chart
        return await self.html(
            200,
            "overview.html",
            o=over,
            bars=bars,
            nav="overview",
            underperforming=sum(r.underperforming for r in rows),
        )

    async def pipeline(self) -> Response:
        ws = await self.load()
        p = await self.compute(
            lambda: model.pipeline(ws, self.names, self._contracts(ws), model.today_of(ws), self.appraisal)
        )
        return await self.html(
            200, "pipeline.html", p=p, nav="pipeline", planning=model.PLANNING_MONTHS, policy=self.appraisal
        )

    async def contracts(self, show: str = "") -> Response:
        if show not in FILTERS:
            return await self.html(
                400,
                "contracts.html",
                rows=(),
                nav="contracts",
                show="",
                filters=FILTERS,
                as_of=None,
                error=f"“{show[:40]}” is not a choice: pick one of the list and press Show.",
            )
        ws = await self.load()
        rows, today = await self.compute(lambda: (self._contracts(ws), model.today_of(ws)))
        chosen = [
            r
            for r in rows
            if show == ""
            or (show == "underperforming" and r.underperforming)
            or (show == "overdue" and r.overdue)
            or (
                show == "review"
                and (r.reviews_missing or (r.review_notice and today and r.review_notice <= today))
            )
        ]
        return await self.html(
            200,
            "contracts.html",
            rows=chosen,
            nav="contracts",
            show=show,
            filters=FILTERS,
            as_of=today,
            error=None,
        )

    async def providers(self) -> Response:
        ws = await self.load()
        found = await self.compute(lambda: model.providers(self._contracts(ws)))
        return await self.html(200, "providers.html", providers=found, nav="providers")

    async def audit(self, q: str, reader: Reader) -> Response:
        if not SEARCH.fullmatch(q):
            return await self.html(
                400,
                "audit.html",
                entries=(),
                q="",
                nav="audit",
                limit=0,
                reader=None,
                error="Search for a contract, tender, need or partner id, an event type or a reason "
                "code: letters, digits, spaces and . : @ / - only, at most 80 characters.",
            )
        ws = await self.load()
        entries = await self.compute(lambda: model.trail(ws, q))
        # a refusal's message is its partner's own (P:rejected:<partner> is read by that partner)
        own = reader[1] if reader[0] == "partner" else None
        return await self.html(
            200, "audit.html", entries=entries, q=q, nav="audit", limit=500, own=own, error=None
        )

    async def csv(self) -> Response:
        r = await self.report()
        name = f"joint-committee-{r.as_of or 'empty'}.csv"
        return _send(200, report.to_csv(r).encode(), "text/csv; charset=utf-8", _download(name))

    async def partners(self) -> Response:
        """`GET /workspace/partners.json`: each partner's id and name from the registry (no more)."""
        return _send(200, json.dumps(self.names).encode(), "application/json")

    def report_pdf(self, r: report.Report) -> bytes:
        return report.to_pdf(
            self.render("report.html", r=r, css=Static("workspace.css").body.decode()).decode()
        )

    async def pdf(self) -> Response:
        r = await self.report()
        name = f"joint-committee-{r.as_of or 'empty'}.pdf"
        try:
            body = await self.compute(lambda: self.report_pdf(r))
        except report.PdfUnavailable as e:
            return _send(503, f"{e}: /workspace/report.csv".encode(), "text/plain; charset=utf-8")
        return _send(200, body, "application/pdf", _download(name))


class Static:
    TYPES: ClassVar[dict[str, str]] = {
        ".css": "text/css; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
    }

    def __init__(self, name: str) -> None:
        self.body = resources.files("services.savings.workspace").joinpath("templates", name).read_bytes()
        self.content_type = self.TYPES[name[name.rindex(".") :]]

    def response(self) -> Response:
        return _send(200, self.body, self.content_type)
