"""`savings.updated` as changes (CONTRACT.md 1.1): each update carries the summary (`as_of`,
`portfolio`, `partners`, ...) complete and only the contract rows that changed since the last
update, so its size does not grow with the number of contracts.

`changes` is pure: it compares the figures with what was last published. `UpdateLog` reads and
writes them through the `UpdateLog` port (shared.ports; on Redis the stream and
`P:state:savings:published`, contract id -> the row as last published, written together in one
MULTI) so that a restarted process can compare its figures with what dashboards last saw and
publish the difference, nothing missed.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.ports import UpdateLog as UpdateLogPort

#: what an update carries besides contracts; always complete
SUMMARY_KEYS = ("as_of", "portfolio", "discounted", "horizon", "years", "partners", "events_applied")
#: a contract row's fields in an update: those that change only when the contract's own events
#: do. Its realised and projected savings move with `as_of` (every active contract at once), so
#: they are served by `GET /savings` and summed in `portfolio` and `partners`.
ROW_FIELDS = ("contract_id", "annual_saving", "status", "partners", "supplier", "saving_until")
#: at most this many contract rows in one entry: when more changed together (a bulk load), the
#: update is written as several entries, each with the summary, so that no entry grows with
#: the number of contracts
ROWS_PER_ENTRY = 40
#: `P:savings.updated` keeps about this many entries (a dashboard starts from `GET /savings`
#: and needs only the updates after it)
UPDATES_KEPT = 10_000


def summary_of(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: figures[k] for k in SUMMARY_KEYS}


def row_of(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ROW_FIELDS}


def shown_json(row: dict[str, Any]) -> bytes:
    """A contract's row as an update shows it, as the JSON `P:state:savings:published` keeps:
    rows are compared in this form (a restarted process compares a snapshot's rows with what
    was published without reading either)."""
    return json.dumps(row_of(row), separators=(",", ":")).encode()


@dataclass
class LastPublished:
    """What dashboards last received: the summary, each contract's row (`shown_json`), the
    entry id."""

    summary: dict[str, Any] | None = None
    rows: dict[str, bytes] = field(default_factory=dict)
    entry_id: str | None = None
    #: the figures' row object each published row was taken from: the model hands back the same
    #: object for a contract whose inputs did not change, so most rows are skipped by identity
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Update:
    data: dict[str, Any]
    rows: dict[str, bytes]  # the changed rows, by contract id (`shown_json`)
    removed: list[str]
    sources: dict[str, dict[str, Any]]

    def entries(self) -> list[dict[str, Any]]:
        """`data` as the entries it is written as: `ROWS_PER_ENTRY` contracts in each, the
        summary in every one, the removed contracts in the last."""
        rows = self.data["contracts"]
        chunks = [rows[k : k + ROWS_PER_ENTRY] for k in range(0, len(rows), ROWS_PER_ENTRY)] or [[]]
        out = [{**self.data, "contracts": chunk} for chunk in chunks]
        for entry in out[:-1]:
            entry.pop("contracts_removed", None)
        return out


def changes(last: LastPublished, figures: dict[str, Any]) -> Update | None:
    """The update that brings a dashboard from `last` to `figures`, or None when nothing
    differs. With nothing ever published, an empty projection needs no update either."""
    rows = figures["contracts"]
    return changes_among(last, summary_of(figures), rows, {row["contract_id"] for row in rows})


def changes_among(
    last: LastPublished, summary: dict[str, Any], rows: Iterable[dict[str, Any]], held: Container[str]
) -> Update | None:
    """`changes` when every contract is `held` and `rows` are those that may differ from what
    was last published: a published contract not held is removed."""
    return changes_in(last, summary, rows, sorted(cid for cid in last.rows if cid not in held))


def changes_in(
    last: LastPublished,
    summary: dict[str, Any],
    rows: Iterable[dict[str, Any]],
    removed: Sequence[str] = (),
) -> Update | None:
    """`changes` when only `rows` may differ from what was last published (the contracts a
    recompute touched) besides the summary: its cost follows them, not every contract."""
    changed: dict[str, bytes] = {}
    sources: dict[str, dict[str, Any]] = {}
    for row in rows:
        cid = row["contract_id"]
        if last.sources.get(cid) is row:
            continue
        sources[cid] = row
        shown = shown_json(row)
        if last.rows.get(cid) != shown:
            changed[cid] = shown
    removed = list(removed)
    unchanged = summary == last.summary if last.summary is not None else summary["events_applied"] == 0
    if not changed and not removed and unchanged:
        last.sources.update(sources)  # same rows shown: the identity shortcut holds for them too
        return None
    data = {**summary, "contracts": [row_of(sources[cid]) for cid in sorted(changed)]}
    if removed:
        data["contracts_removed"] = removed
    return Update(data, changed, removed, sources)


def record(last: LastPublished, update: Update, entry_id: str) -> None:
    """`update` was published as `entry_id`."""
    last.summary = {k: update.data[k] for k in SUMMARY_KEYS}
    last.rows.update(update.rows)
    last.sources.update(update.sources)
    for cid in update.removed:
        last.rows.pop(cid, None)
        last.sources.pop(cid, None)
    last.entry_id = entry_id


class UpdateLog:
    """`P:savings.updated` and the rows it last carried, through the `UpdateLog` port
    (shared.ports): what dashboards last received, read back; an update's entries appended
    with its rows, together."""

    def __init__(self, port: UpdateLogPort) -> None:
        self.port = port

    async def last(self) -> LastPublished:
        rows, newest = await self.port.shown()
        if newest is None:
            return LastPublished(None, rows, None)
        entry_id, event = newest
        try:
            data = json.loads(event)["data"]
            summary = {k: data[k] for k in SUMMARY_KEYS}
        except (KeyError, TypeError, ValueError):  # not ours to read: publish everything again
            summary = None
        return LastPublished(summary, rows, entry_id)

    async def append(self, events: list[bytes], update: Update) -> str:
        """Append the update's entries and record its rows, together; the last entry's id."""
        return await self.port.append(events, update.rows, update.removed)
