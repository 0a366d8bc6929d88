"""The savings projection: the set of applied events (shared.state), its figures
(`model.project`), and `savings.updated` after every change."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from redis.asyncio import Redis

from services.savings.model import Facts, evolve, project
from shared.events import CloudEvent, to_json
from shared.policy import SavingsPolicy
from shared.state import EventSetState
from shared.streams import Streams

SOURCE = "/services/savings"
TYPES = (
    "need.identified",
    "need.updated",
    "tender.awarded",
    "monitoring.return.submitted",
    "contract.decommissioned",
    "contract.member.exited",
    "investment.recorded",
)


class Projection(EventSetState[Facts]):
    def __init__(self, redis: Redis, streams: Streams, policy: SavingsPolicy) -> None:
        super().__init__(redis, streams, "savings", Facts, evolve)
        self.policy = policy
        self._cache: dict[Any, Any] = {}  # each contract's figures, on what they depend on
        self.figures: dict[str, Any] = project(self.index, policy)

    async def changed(self, fresh: bool) -> None:
        self.figures = project(self.index, self.policy, self._cache)
        if fresh:
            await self.publish()

    async def publish(self) -> None:
        event = CloudEvent(
            specversion="1.0",
            id=str(uuid.uuid4()),
            source=SOURCE,
            type="savings.updated",
            time=datetime.now(timezone.utc),
            datacontenttype="application/json",
            data=self.dashboard_view(),
        )
        await self.redis.xadd(self.streams.savings_updated, {"event": to_json(event)})

    def dashboard_view(self) -> dict[str, Any]:
        f = self.figures
        keys = ("as_of", "portfolio", "discounted", "horizon", "years", "partners", "events_applied")
        view = {k: f[k] for k in keys}
        view["contracts"] = [
            {k: c[k] for k in ("contract_id", "annual_saving", "status", "realised_saving", "projected_saving", "partners", "supplier", "saving_until")}
            for c in f["contracts"]
        ]
        return view
