"""Handlers for `P:inbound` and `POST /events`: verify, then accept once or reject with a reason.

Every process started by `commissioning serve` runs the gateway in one shared consumer group
(`gateway`), so verification scales with the processes. The rules live in `shared.inbound`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import structlog

from shared.authority import OWNERS
from services.gateway import batch, binary
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

    async def post_batch(
        self, bus: Bus, body: bytes, signature_header: str | None
    ) -> list[dict[str, Any]] | Rejected:
        """`POST /events` in batch mode (contract 1.1): one result per event, in order, each event
        decided and applied exactly as if sent alone; or a rejection of the whole batch."""
        parsed = batch.parse(body, signature_header, self.registry)
        if isinstance(parsed, Rejected):
            return parsed
        results: list[dict[str, Any]] = []
        for item in parsed.items:
            refused = batch.not_from_signer(item, parsed.signer)
            if refused is None:
                verdict, effect = self.decide(item.raw, parsed.signer.sign(item.raw), "http-batch")
            else:
                verdict, effect = refused, self._refusal(refused, item.raw, "http-batch")
            new = await bus.apply_now(GROUP, effect)
            if isinstance(verdict, Accepted):
                # `duplicate` (an addition): the same source+id had been accepted before
                results.append({"id": verdict.event.id, "status": 202} | ({} if new else {"duplicate": True}))
            else:
                results.append({"id": item.id, "status": status_of(verdict), "reason": verdict.reason()})
        structlog.contextvars.unbind_contextvars("event_id", "correlation_id")
        log.info("batch posted", partner_id=parsed.signer.id, events=len(results),
                 accepted=sum(r["status"] == 202 for r in results))
        return results


    async def post_binary(self, bus: Bus, headers: dict[str, str], body: bytes) -> Accepted | Rejected:
        """`POST /events` in CloudEvents binary mode, signed with RFC 9421 (services/gateway/binary.py):
        once the signature over the headers and body verifies, the same checks as structured mode."""
        raw = binary.structured(headers, body)
        if isinstance(raw, Rejected):
            return raw
        signer = binary.verify(headers, body, self.registry)
        if isinstance(signer, Rejected):
            await bus.apply_now(GROUP, self._refusal(signer, raw[: self.max_event_bytes], "http-binary"))
            return signer
        verdict, effect = self.decide(raw, signer.sign(raw), "http-binary")
        await bus.apply_now(GROUP, effect)
        return verdict

    def _refusal(self, verdict: Rejected, raw: bytes, inbound_id: str) -> Effect:
        """Recording a refusal made before the gateway's own checks (batch and binary mode)."""
        return Effect((("XADD", self.streams.rejected(verdict.partner_id), "*", "event", raw,
                        "reason", verdict.reason_json(), "inbound_id", inbound_id),))


def status_of(verdict: Rejected) -> int:
    """The HTTP status of a rejection (the same for a single event and an event in a batch)."""
    return {"bad_signature": 401, "missing_signature": 401, "unknown_partner": 401,
            "acting_for_another": 403, "too_large": 413, "too_many_events": 413}.get(verdict.code, 422)
