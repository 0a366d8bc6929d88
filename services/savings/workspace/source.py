"""The workspace's reader: the canonical streams and the refusals read through the `Entries`
port (shared.ports: on Redis or in memory) into a fresh `Workspace`
(services/savings/workspace/model.py). Read on each request, so a page is always as current
as the streams; nothing is kept between requests. What the streams hold is bounded by the
project's retention (archive and trim of `P:<type>`; `P:rejected:<partner>` capped by count),
and of the refusals only the newest `REFUSALS_READ` a partner are read, a hundred at a time
(each may hold a 64 KiB event), keeping only what the trail shows."""

from __future__ import annotations

import json
from collections.abc import Iterable

from pydantic import ValidationError

from services.savings.workspace.model import Entry, Workspace, evolve, subject_of
from shared.events import PAYLOADS, SEALED_TYPES, CloudEvent
from shared.ports import Entries
from shared.streams import Streams

CHUNK = 2000
REFUSALS_READ = 1000
#: the types the workspace reads: all accepted ones but sealed bids
TYPES = tuple(sorted(t for t in PAYLOADS if t not in SEALED_TYPES))


def _actor(source: str) -> str:
    return source.rsplit("/", 1)[-1] if source else "unknown"


def accepted_entry(stream_id: str, raw: bytes) -> Entry | None:
    try:
        ev = CloudEvent.parse(raw)
        payload = ev.payload()
    except (ValidationError, ValueError, KeyError):
        return None  # what the services dead-letter, the workspace leaves out too
    return Entry(
        stream_id,
        f"{ev.source} {ev.id}",
        ev.type,
        _actor(ev.source),
        ev.time.isoformat() if ev.time else "",
        payload,
        subject_of(ev.data),
    )


def refused_entry(stream_id: str, fields: dict[bytes, bytes], partner: str) -> Entry:
    try:
        reason = json.loads(fields.get(b"reason", b"{}"))
    except ValueError:
        reason = {}
    try:
        ev = json.loads(fields.get(b"event", b"{}"))
        ev = ev if isinstance(ev, dict) else {}
    except ValueError:
        ev = {}
    data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
    return Entry(
        stream_id,
        f"{ev.get('source', '')} {ev.get('id', stream_id)}",
        str(ev.get("type", "unreadable")),
        partner,
        str(ev.get("time", "")),
        None,
        subject_of(data),
        str(reason.get("code", "refused")),
        str(reason.get("message", "")),
    )


async def load(entries: Entries, streams: Streams, partners: Iterable[str]) -> Workspace:
    ws = Workspace()
    for t in TYPES:
        cursor = "-"
        while chunk := await entries.events(streams.accepted(t), cursor, CHUNK):
            for entry_id, raw in chunk:
                e = accepted_entry(entry_id, raw or b"")
                if e is not None:
                    evolve(ws, e)
            cursor = chunk[-1][0]
    for pid in [*partners, "unknown"]:
        # in pages of a hundred: a refused entry may hold up to 64 KiB of the event refused
        read, cursor = 0, "+"
        while read < REFUSALS_READ:
            page = await entries.newest(streams.rejected(pid), cursor, min(100, REFUSALS_READ - read))
            for entry_id, fields in page:
                evolve(ws, refused_entry(entry_id, fields, pid))
            read += len(page)
            if len(page) < 100:
                break
            cursor = page[-1][0]
    return ws
