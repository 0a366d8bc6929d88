"""Sending events to `POST /events` in signed batches (contract 1.1), resumable.

A journal file records every event the server has answered 202 for; a run sends only what the
journal does not hold, so a run cut short by the network resumes where it stopped. The server
counts `source`+`id` once whatever happens, so a batch that arrived but whose answer was lost is
harmless when sent again: its events come back marked `duplicate` and are reported as such.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.partners import sign

BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"
MAX_EVENTS = 1000
MAX_BYTES = 4 * 1024 * 1024 - 1024  # the contract's 4 MiB, less room for the brackets and commas


class SendError(RuntimeError):
    """The server could not be reached (or refused a batch as a whole); what was sent is kept."""


@dataclass
class Outcome:
    new: int = 0
    duplicate: int = 0  # the server had the event already (sent before, e.g. its answer was lost)
    skipped: int = 0  # the journal says it was sent by an earlier run
    rejected: list[dict[str, object]] = field(default_factory=list)


class Journal:
    """The `source id` pairs a server accepted, one per line with that server's URL, appended as
    answers arrive: a run against another server (a test one, say) starts from nothing."""

    def __init__(self, path: Path, server: str) -> None:
        self.path = path
        self.server = server
        self.done: set[str] = set()
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                server_, _, key = line.partition(" ")
                if server_ == server:
                    self.done.add(key)

    def add(self, keys: Sequence[str]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.writelines(f"{self.server} {k}\n" for k in keys)
        self.done.update(keys)


@dataclass(frozen=True)
class Outgoing:
    partner_id: str
    event_id: str
    body: bytes

    @property
    def key(self) -> str:
        return f"/partners/{self.partner_id} {self.event_id}"


def batches(events: Sequence[Outgoing], max_events: int = MAX_EVENTS) -> Iterator[list[Outgoing]]:
    """One partner's events per batch (a batch is signed by one partner), within both limits."""
    current: list[Outgoing] = []
    size = 0
    for ev in sorted(events, key=lambda e: e.partner_id):  # stable: keeps the file's order per partner
        if current and (
            ev.partner_id != current[0].partner_id
            or len(current) >= max_events
            or size + len(ev.body) + 1 > MAX_BYTES
        ):
            yield current
            current, size = [], 0
        current.append(ev)
        size += len(ev.body) + 1
    if current:
        yield current


def events_url(url: str) -> str:
    base = url.rstrip("/")
    return base if base.endswith("/events") else f"{base}/events"


class Sender:
    def __init__(
        self, url: str, secrets: dict[str, str], journal: Journal, *, retries: int = 3, timeout: float = 30.0
    ) -> None:
        self.url = events_url(url)
        self.secrets = secrets
        self.journal = journal
        self.retries = retries
        self.client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def _post(self, body: bytes, secret: str) -> httpx.Response:
        headers = {"Content-Type": BATCH_MEDIA_TYPE, "X-Signature": "sha256=" + sign(secret, body)}
        last: Exception | None = None
        for attempt in range(self.retries):
            try:
                answer = self.client.post(self.url, content=body, headers=headers)
            except httpx.TransportError as e:
                last = e
            else:
                if answer.status_code < 500 and answer.status_code != 429:
                    return answer
                last = SendError(f"the server answered {answer.status_code}")
            time.sleep(min(0.2 * 2**attempt, 2.0))
        raise SendError(
            f"{self.url} could not be reached ({last}); what was sent is recorded in "
            f"{self.journal.path}: run the same command again to send the rest"
        )

    def send(
        self,
        events: Sequence[Outgoing],
        progress: Callable[[int], None] = lambda n: None,
        max_events: int = MAX_EVENTS,
    ) -> Outcome:
        outcome = Outcome()
        todo = [e for e in events if e.key not in self.journal.done]
        outcome.skipped = len(events) - len(todo)
        done = outcome.skipped
        progress(done)
        for chunk in batches(todo, max_events):
            body = b"[" + b",".join(e.body for e in chunk) + b"]"
            answer = self._post(body, self.secrets[chunk[0].partner_id])
            if answer.status_code != 207:
                raise SendError(
                    f"the server refused a batch of {chunk[0].partner_id}'s events "
                    f"({answer.status_code}): {answer.text[:500]}"
                )
            results = answer.json()
            accepted = []
            for ev, result in zip(chunk, results, strict=True):
                if result.get("status") == 202:
                    accepted.append(ev.key)
                    if result.get("duplicate"):
                        outcome.duplicate += 1
                    else:
                        outcome.new += 1
                else:
                    outcome.rejected.append(
                        {
                            "partner_id": ev.partner_id,
                            "id": ev.event_id,
                            "status": result.get("status"),
                            "reason": result.get("reason"),
                        }
                    )
            self.journal.add(accepted)
            done += len(chunk)
            progress(done)
        return outcome


def report(outcome: Outcome) -> str:
    parts = [
        f"{outcome.new} new",
        f"{outcome.duplicate} already on the server",
        f"{outcome.skipped} sent by an earlier run",
        f"{len(outcome.rejected)} rejected",
    ]
    lines = [", ".join(parts)]
    lines += [
        f"  rejected {r['id']} ({r['partner_id']}): {json.dumps(r['reason'])}" for r in outcome.rejected
    ]
    return "\n".join(lines)
