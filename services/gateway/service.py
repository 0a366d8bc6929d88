"""Handlers for `P:inbound` and `POST /events`: verify, then accept once or reject with a reason.

Every process started by `commissioning serve` runs the gateway in one shared consumer group
(`gateway`), so verification scales with the processes. The rules live in `shared.inbound`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import structlog

from shared.authority import OWNERS
from shared.bus import Bus, Effect, Entry, Subscription
from shared.inbound import Accepted, Rejected, check
from shared.partners import PartnerRegistry
from shared.streams import Streams

GROUP = "gateway"
log = structlog.get_logger("gateway")


@dataclass
class Gateway:
    streams: Streams
    registry: PartnerRegistry
    max_event_bytes: int
    bid_date_tolerance_days: int | None = None

    def decide(self, raw: bytes | None, signature: bytes | str | None, inbound_id: str) -> tuple[Accepted | Rejected, Effect]:
        verdict = check(raw, signature, self.registry, self.max_event_bytes,
                        datetime.now(timezone.utc).date(), self.bid_date_tolerance_days)
        if isinstance(verdict, Accepted):
            event = verdict.event
            structlog.contextvars.bind_contextvars(event_id=event.id, correlation_id=event.correlation_id)
            return verdict, Effect((self.forward(event.type, verdict.raw, inbound_id),), once_key=event.key)
        kept = (raw or b"")[: self.max_event_bytes]  # an oversized body is kept only in part
        return verdict, Effect(
            (
                (
                    "XADD",
                    self.streams.rejected(verdict.partner_id),
                    "*",
                    "event",
                    kept,
                    "reason",
                    verdict.reason_json(),
                    "inbound_id",
                    inbound_id,
                ),
            )
        )

    def forward(self, event_type: str, raw: bytes, inbound_id: str) -> tuple[str | bytes, ...]:
        """Where a verified submission goes: to the service that owns the act, which decides it
        (shared.authority); only an act the gateway decides alone goes straight to `P:<type>`."""
        owner = OWNERS.get(event_type)
        if owner is None:
            return Effect.publish(self.streams.accepted(event_type), raw)
        return ("XADD", self.streams.requests(owner), "*", "event", raw, "inbound_id", inbound_id)

    async def handle(self, entry: Entry) -> Effect:
        verdict, effect = self.decide(entry.raw_event, entry.fields.get(b"signature"), entry.id)
        if isinstance(verdict, Rejected):
            log.info("inbound rejected", inbound_id=entry.id, partner_id=verdict.partner_id, code=verdict.code)
        else:
            log.info("inbound verified", inbound_id=entry.id, partner_id=verdict.partner_id, type=verdict.event.type)
        structlog.contextvars.unbind_contextvars("event_id", "correlation_id")
        return effect

    def subscription(self) -> Subscription:
        return Subscription(
            GROUP,
            self.streams.inbound,
            self.handle,
            title="inbound",
            description="Signed partner events; verified, then republished on P:<type> or "
            "written to P:rejected:<partner> with a reason.",
        )

    async def post(self, bus: Bus, body: bytes, signature_header: str | None) -> Accepted | Rejected:
        """`POST /events`: the same checks; accepted once, rejections also recorded."""
        signature = None
        if signature_header and signature_header.startswith("sha256="):
            signature = signature_header.removeprefix("sha256=")
        verdict, effect = self.decide(body, signature, "http")
        await bus.apply_now(GROUP, effect)
        return verdict

