"""`commissioning dead-letter list` and `retry`: what failed, and replaying it once fixed.

A dead letter keeps the original entry's fields plus `stream`, `entry_id`, `group`,
`deliveries` and `error`. Retrying appends the original fields to the original stream as a new
entry (every consumer is idempotent on the event's `source`+`id`, so groups that had already
applied it ignore it) and removes the dead letter, atomically. Both go through the bus's
`Delivery` port (shared.ports; on Redis `shared/bus/replay.lua`).
"""

from __future__ import annotations

import json
from typing import Any

from shared.ports import Delivery

#: dead letters read at a time when replaying them all
PAGE = 500


async def listing(delivery: Delivery, count: int = 100) -> list[dict[str, Any]]:
    rows = []
    for entry_id, fields in await delivery.dead_letters("-", count):
        error = json.loads(fields.get(b"error", b"{}") or b"{}")
        event = fields.get(b"event", b"")
        try:
            parsed = json.loads(event)
            what = f"{parsed.get('type')} {parsed.get('source')} {parsed.get('id')}"
        except ValueError:
            what = event[:60].decode(errors="replace")
        rows.append(
            {
                "dead_letter_id": entry_id,
                "stream": fields.get(b"stream", b"").decode(),
                "group": fields.get(b"group", b"").decode(),
                "deliveries": int(fields.get(b"deliveries", b"0")),
                "code": error.get("code"),
                "error": error.get("message"),
                "event": what,
            }
        )
    return rows


async def retry(delivery: Delivery, ids: list[str]) -> dict[str, str]:
    """Replay dead letters (all when `ids` is empty). Returns id -> outcome."""
    if not ids:
        after = "-"
        while page := await delivery.dead_letters(after, PAGE):
            ids += [i for i, _ in page]
            after = page[-1][0]
    return {i: await delivery.replay(i) for i in ids}
