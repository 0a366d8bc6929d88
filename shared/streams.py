"""Stream and key names, all under the deployment's prefix (`P:` in the contract)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.events import SEALED_TYPES


def entry_id(value: bytes | str) -> tuple[int, int]:
    """A stream entry id (`<ms>-<seq>`, or `<ms>`) as a pair that orders like the stream."""
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


_STREAM_ID = re.compile(r"^\d+-\d+$")


def arrival(request_id: str, inbound_id: str) -> tuple[int, int]:
    """When a request came in: its entry on `P:inbound` (the order partners sent in, even when
    a gateway that died left it to be forwarded late), else (over HTTP) its request entry."""
    return entry_id(inbound_id if _STREAM_ID.match(inbound_id) else request_id)


@dataclass(frozen=True)
class Streams:
    prefix: str = "commissioning"

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def inbound(self) -> str:
        return self.key("inbound")

    @property
    def dead_letter(self) -> str:
        return self.key("dead-letter")

    @property
    def savings_updated(self) -> str:
        return self.key("savings.updated")

    def rejected(self, partner_id: str) -> str:
        return self.key("rejected", partner_id)

    def of_type(self, event_type: str) -> str:
        return self.key(event_type)

    def accepted(self, event_type: str) -> str:
        """Where an accepted partner event goes: `P:<type>`, or `P:sealed:<type>` for types only
        their service may read (bids)."""
        return self.key("sealed", event_type) if event_type in SEALED_TYPES else self.key(event_type)

    # Internal keys, the project's own (not part of the contract).
    def requests(self, owner: str) -> str:
        """A service's requests: partner submissions it owns, verified, awaiting its decision."""
        return self.key("requests", owner)

    def seen(self, group: str) -> str:
        """Sorted set of the `source id` pairs a consumer group applied, scored by when: its
        idempotency record, kept for a window (shared.bus.retention). (Before the window it
        was a set named `seen`; that key is no longer read and may be deleted.)"""
        return self.key("group", group, "once")

    def errors(self, group: str) -> str:
        """Hash `stream/entry-id` -> last error, kept until the entry is acked or dead-lettered."""
        return self.key("group", group, "errors")

    def state(self, service: str, *parts: str) -> str:
        return self.key("state", service, *parts)
