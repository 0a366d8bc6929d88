"""The needs service's state: the register (shared.state), the opportunities derived from it,
and their publication as `opportunity.identified` / `opportunity.updated` events."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import structlog
from redis.asyncio import Redis

from services.needs.model import NeedsPolicy, Register, evolve, opportunities
from shared.events import CloudEvent, OpportunityIdentified
from shared.policy import SavingsPolicy
from shared.state import EventSetState, Published
from shared.streams import Streams

SOURCE = "/services/needs"
TYPES = ("need.identified", "need.updated", "need.withdrawn", "opportunity.joined", "opportunity.declined")
log = structlog.get_logger("needs")


class NeedsState(EventSetState[Register]):
    def __init__(self, redis: Redis, streams: Streams, policy: NeedsPolicy, savings: SavingsPolicy) -> None:
        super().__init__(redis, streams, "needs", Register, evolve)
        self.policy, self.savings = policy, savings
        self.published = Published(redis, streams.state("needs", "opportunities"))
        self.opportunities: dict[str, dict[str, Any]] = {}

    async def changed(self, fresh: bool) -> None:
        current = opportunities(self.index, self.policy, self.savings)
        last = await self.published.all()
        for oid in sorted(set(current) | set(last)):
            before = last.get(oid)
            if oid in current:
                payload = current[oid]
            elif before is not None and before["payload"]["status"] != "closed":
                payload = {**before["payload"], "status": "closed",
                           "reasons": ["The needs no longer match: withdrawn, changed, or no longer open to sharing."]}
            else:
                continue
            if before is not None and before["payload"] == payload:
                continue
            revision = 0 if before is None else before["revision"] + 1
            await self._publish(oid, before, revision, payload)
        self.opportunities = {oid: p for oid, p in current.items()}

    async def _publish(self, oid: str, before: dict[str, Any] | None, revision: int, payload: dict[str, Any]) -> None:
        data = OpportunityIdentified.model_validate({**payload, "revision": revision}).model_dump(mode="json")
        etype = "opportunity.identified" if before is None else "opportunity.updated"
        event = CloudEvent(specversion="1.0", id=f"{oid}-r{revision}", source=SOURCE, type=etype,
                           time=datetime.now(timezone.utc), data=data)
        if await self.published.publish(oid, before, {"revision": revision, "payload": payload},
                                        self.streams.of_type(etype), event):
            log.info("opportunity published", opportunity_id=oid, revision=revision, status=payload["status"])
