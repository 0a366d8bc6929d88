"""What the dashboard's endpoints answer: the page itself, `GET /savings`, `GET /savings/stream`
(Server-Sent Events from `P:savings.updated`) and `GET /events/recent`. The stream is a
response of its own: it keeps writing until the client goes, and stops as soon as it does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, ClassVar

from fastapi.responses import Response

from services.http import answer
from shared.ports import Entries, UpdateLog
from shared.streams import Streams

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

#: the canonical streams a dashboard may list (no bids: those are sealed)
RECENT_TYPES = (
    "need.identified",
    "need.updated",
    "tender.published",
    "tender.awarded",
    "monitoring.return.submitted",
    "contract.decommissioned",
    "investment.recorded",
    "opportunity.identified",
    "performance.concern.raised",
)
SUBJECT_FIELDS = ("contract_id", "tender_id", "opportunity_id", "need_id", "investment_id")
KEEPALIVE_S = 15
ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}", re.ASCII)


class Page:
    """The static page: three files shipped in the package, nothing from elsewhere."""

    TYPES: ClassVar[dict[str, str]] = {
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
    }

    def __init__(self, name: str) -> None:
        suffix = name[name.rindex(".") :]
        self.body = resources.files("services.savings").joinpath("dashboard", name).read_bytes()
        self.content_type = self.TYPES[suffix]

    def response(self) -> Response:
        return answer(self.body, self.content_type, headers={"Cache-Control": "no-cache"})


def _sse(entry_id: str, event: bytes) -> bytes:
    head = b"id: " + entry_id.encode() + b"\nevent: savings.updated\ndata: "
    return head + event.replace(b"\n", b"") + b"\n\n"


class SavingsStream:
    """`GET /savings/stream`: `savings.updated` as Server-Sent Events. A dashboard loads
    `GET /savings`, then asks for the updates after the one those figures were published as
    (`?after=<Savings-Update-Id>`); a client that reconnects sends `Last-Event-ID` and gets what
    it missed. With neither, the latest update at once, then each new one. When what a client
    asks for was trimmed away (`UPDATES_KEPT`), it is sent `event: reset`: reload the figures."""

    def __init__(self, updates: UpdateLog) -> None:
        self.updates = updates  # the projection's (shared.ports): `P:savings.updated`

    def response(self, last_event_id: str | None, after: str | None) -> Response:
        candidates = (x for x in (last_event_id, after) if x)
        return _EventStream(self, next((x for x in candidates if ENTRY_ID.fullmatch(x)), None))

    async def serve(self, last: str | None, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        pump = asyncio.create_task(self._pump(send, last))
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    async def _pump(self, send: Send, last: str | None) -> None:
        if last is None:
            newest = await self.updates.newest()
            if newest is not None:
                await send({"type": "http.response.body", "body": _sse(*newest), "more_body": True})
            cursor = newest[0] if newest else "0-0"
        elif await self.updates.lost_after(last):
            await send(
                {"type": "http.response.body", "body": b"event: reset\ndata: {}\n\n", "more_body": True}
            )
            return
        else:
            cursor = last
        while True:
            # in pages: a client far behind is sent what it missed a hundred entries at a time
            found = await self.updates.after(cursor, KEEPALIVE_S * 1000, 100)
            if not found:
                await send({"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True})
                continue
            for entry_id, event in found:
                await send({"type": "http.response.body", "body": _sse(entry_id, event), "more_body": True})
                cursor = entry_id


class _EventStream(Response):
    def __init__(self, stream: SavingsStream, last: str | None) -> None:
        super().__init__(media_type="text/event-stream")
        self.stream, self.last = stream, last

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await self.stream.serve(self.last, receive, send)


def savings_response(figures: dict[str, Any], update_id: str | None) -> Response:
    """`GET /savings`: the whole projection, and in `Savings-Update-Id` the `savings.updated`
    entry these figures were published as (a dashboard follows the stream from there)."""
    headers = {"Cache-Control": "no-cache"}
    if update_id is not None:
        headers["Savings-Update-Id"] = update_id
    return answer(json.dumps(figures, separators=(",", ":")).encode(), "application/json", headers=headers)


def totals_response(figures: dict[str, Any]) -> Response:
    """`GET /savings` without a credential, where the operator made the totals public."""
    body = json.dumps({"as_of": figures.get("as_of"), "portfolio": figures["portfolio"]}).encode()
    return answer(body, "application/json", headers={"Cache-Control": "no-store"})


class RecentEvents:
    """`GET /events/recent?limit=N`: the newest accepted events, newest first: type, source, id,
    time and what they are about (no money, no partner detail)."""

    def __init__(self, entries: Entries, streams: Streams) -> None:
        self.entries, self.streams = entries, streams

    async def response(self, asked: str | None) -> Response:
        try:
            limit = max(1, min(int(asked or "20"), 100))
        except ValueError:
            limit = 20
        newest = [self.entries.newest(self.streams.of_type(t), "+", limit) for t in RECENT_TYPES]
        rows = []
        for entries in await asyncio.gather(*newest):
            for entry_id, fields in entries:
                try:
                    ev = json.loads(fields[b"event"])
                except (KeyError, ValueError):
                    continue
                data = ev.get("data") or {}
                subject = next((str(data[f]) for f in SUBJECT_FIELDS if f in data), None)
                rows.append(
                    {
                        "entry_id": entry_id,
                        "type": ev.get("type"),
                        "source": ev.get("source"),
                        "id": ev.get("id"),
                        "time": ev.get("time"),
                        "subject": subject,
                    }
                )
        rows.sort(key=lambda r: tuple(int(x) for x in r["entry_id"].split("-")), reverse=True)
        body = json.dumps({"events": rows[:limit]}).encode()
        return answer(body, "application/json", headers={"Cache-Control": "no-cache"})
