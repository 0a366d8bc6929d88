"""Handlers for `P:inbound` and `POST /events`: verify, then accept once or reject with a reason.

Every process started by `commissioning serve` runs the gateway in one shared consumer group
(`gateway`), so verification scales with the processes. The rules live in `shared.inbound`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import structlog

from services.gateway.rejections import RejectionPolicy, record
from shared.bus import Bus, Effect, Entry, Subscription
from shared.inbound import Accepted, Admit, Rejected, check
from shared.partners import PartnerRegistry
from shared.ratelimit import RateLimiter
from shared.streams import Streams

GROUP = "gateway"
log = structlog.get_logger("gateway")


@dataclass
class Gateway:
    streams: Streams
    registry: PartnerRegistry
    max_event_bytes: int
    bid_date_tolerance_days: int | None = None
    rejections: RejectionPolicy = field(default_factory=RejectionPolicy)
    #: per partner on the stream, clocked by the entries' arrival (a backlog keeps its pace)
    stream_limits: RateLimiter = field(default_factory=lambda: RateLimiter(1_000, 10_000))
    #: per partner on `POST /events`, clocked by the wall
    http_limits: RateLimiter = field(default_factory=lambda: RateLimiter(1_000, 10_000))
    #: (partner, code) -> rejections this process recorded (services.metrics)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)

    def decide(self, raw: bytes | None, signature: bytes | str | None, inbound_id: str,
               admit: Admit | None = None) -> tuple[Accepted | Rejected, Effect]:
        verdict = check(raw, signature, self.registry, self.max_event_bytes,
                        datetime.now(timezone.utc).date(), self.bid_date_tolerance_days, admit)
        if isinstance(verdict, Accepted):
            event = verdict.event
            structlog.contextvars.bind_contextvars(event_id=event.id, correlation_id=event.correlation_id)
            return verdict, Effect(
                (Effect.publish(self.streams.accepted(event.type), verdict.raw),),
                once_key=event.key,
            )
        return verdict, self.reject(verdict, raw, inbound_id)

    def reject(self, verdict: Rejected, raw: bytes | None, inbound_id: str,
               size: int | None = None) -> Effect:
        """Record a rejection (services.gateway.rejections) and count it for the metrics."""
        self.rejected[(verdict.partner_id, verdict.code)] += 1
        return Effect((record(self.streams, self.rejections, verdict, raw, inbound_id, size),))

    async def handle(self, entry: Entry) -> Effect:
        arrived = int(entry.id.split("-", 1)[0]) / 1000  # the entry id's milliseconds

        def admit(partner_id: str) -> float:
            return self.stream_limits.take(partner_id, arrived)

        verdict, effect = self.decide(entry.raw_event, entry.fields.get(b"signature"), entry.id, admit)
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
        now = time.monotonic()
        verdict, effect = self.decide(body, signature, "http", lambda pid: self.http_limits.take(pid, now))
        await bus.apply_now(GROUP, effect)
        return verdict

