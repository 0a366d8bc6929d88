"""Handlers for `P:inbound` and `POST /events`: verify, then accept once or reject with a reason.

Every process started by `commissioning serve` runs the gateway in one shared consumer group
(`gateway`), so verification scales with the processes. The rules live in `shared.inbound`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import structlog

from shared.authority import OWNERS
from services.gateway import batch, binary
from services.gateway.rejections import RejectionPolicy, record
from shared.bus import Bus, Effect, Entry, Subscription
from shared.decode import remember
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
    #: hand what it validated to the services of this process that read it next
    #: (`shared.decode.remember`); False in a process that runs the gateway alone
    share_decoded: bool = True

    def decide(
        self, raw: bytes | None, signature: bytes | str | None, inbound_id: str, admit: Admit | None = None
    ) -> tuple[Accepted | Rejected, Effect]:
        verdict = check(
            raw,
            signature,
            self.registry,
            self.max_event_bytes,
            datetime.now(timezone.utc).date(),
            self.bid_date_tolerance_days,
            admit,
        )
        if isinstance(verdict, Accepted):
            event = verdict.event
            if self.share_decoded:  # its owner, in this process, reads it next
                remember(verdict.raw, event, verdict.payload)
            return verdict, Effect((self.forward(event.type, verdict.raw, inbound_id),), once_key=event.key)
        return verdict, self.reject(verdict, raw, inbound_id)

    def reject(
        self, verdict: Rejected, raw: bytes | None, inbound_id: str, size: int | None = None
    ) -> Effect:
        """Record a rejection (services.gateway.rejections) and count it for the metrics."""
        self.rejected[(verdict.partner_id, verdict.code)] += 1
        return Effect((record(self.streams, self.rejections, verdict, raw, inbound_id, size),))

    def forward(self, event_type: str, raw: bytes, inbound_id: str) -> tuple[str | bytes, ...]:
        """Where a verified submission goes: to the service that owns the act, which decides it
        (shared.authority); only an act the gateway decides alone goes straight to `P:<type>`."""
        owner = OWNERS.get(event_type)
        if owner is None:
            return Effect.publish(self.streams.accepted(event_type), raw)
        return ("XADD", self.streams.requests(owner), "*", "event", raw, "inbound_id", inbound_id)

    async def handle(self, entry: Entry) -> Effect:
        arrived = int(entry.id.split("-", 1)[0]) / 1000  # the entry id's milliseconds

        def admit(partner_id: str) -> float:
            return self.stream_limits.take(partner_id, arrived)

        verdict, effect = self.decide(entry.raw_event, entry.fields.get(b"signature"), entry.id, admit)
        if isinstance(verdict, Rejected):
            log.info(
                "inbound rejected", inbound_id=entry.id, partner_id=verdict.partner_id, code=verdict.code
            )
        else:  # one line an event: DEBUG (at INFO it cost 15-25% of the throughput)
            log.debug(
                "inbound verified",
                inbound_id=entry.id,
                partner_id=verdict.partner_id,
                type=verdict.event.type,
                event_id=verdict.event.id,
                correlation_id=verdict.event.correlation_id,
            )
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

    async def post_batch(
        self, bus: Bus, body: bytes, signature_header: str | None
    ) -> list[dict[str, Any]] | Rejected:
        """`POST /events` in batch mode (contract 1.1): one result per event, in order, each event
        decided and applied exactly as if sent alone; or a rejection of the whole batch."""
        parsed = batch.parse(body, signature_header, self.registry)
        if isinstance(parsed, Rejected):
            return parsed
        results: list[dict[str, Any]] = []
        now = time.monotonic()  # each event spends the partner's allowance, as if sent alone
        for item in parsed.items:
            refused = batch.not_from_signer(item, parsed.signer)
            if refused is None:
                verdict, effect = self.decide(
                    item.raw,
                    parsed.signer.sign(item.raw),
                    "http-batch",
                    lambda pid: self.http_limits.take(pid, now),
                )
            else:
                verdict, effect = refused, self.reject(refused, item.raw, "http-batch")
            new = await bus.apply_now(GROUP, effect)
            if isinstance(verdict, Accepted):
                # `duplicate` (an addition): the same source+id had been accepted before
                results.append({"id": verdict.event.id, "status": 202} | ({} if new else {"duplicate": True}))
            else:
                results.append({"id": item.id, "status": status_of(verdict.code), "reason": verdict.reason()})
        log.info(
            "batch posted",
            partner_id=parsed.signer.id,
            events=len(results),
            accepted=sum(r["status"] == 202 for r in results),
        )
        return results

    async def post_binary(self, bus: Bus, headers: dict[str, str], body: bytes) -> Accepted | Rejected:
        """`POST /events` in CloudEvents binary mode, signed with RFC 9421 (services/gateway/binary.py):
        once the signature over the headers and body verifies, the same checks as structured mode."""
        raw = binary.structured(headers, body)
        if isinstance(raw, Rejected):
            return raw
        signer = binary.verify(headers, body, self.registry)
        if isinstance(signer, Rejected):
            await bus.apply_now(GROUP, self.reject(signer, raw, "http-binary"))
            return signer
        now = time.monotonic()
        verdict, effect = self.decide(
            raw, signer.sign(raw), "http-binary", lambda pid: self.http_limits.take(pid, now)
        )
        await bus.apply_now(GROUP, effect)
        return verdict


def status_of(code: str) -> int:
    """The HTTP status of a rejection's code (the same for a single event and an event in a batch)."""
    return {
        "bad_signature": 401,
        "missing_signature": 401,
        "unknown_partner": 401,
        "acting_for_another": 403,
        "too_large": 413,
        "too_many_events": 413,
        "rate_limited": 429,
    }.get(code, 422)
