"""The contracts service's state: the register (shared.state) and the events derived from it:
judged returns, performance concerns, payments by results, overdue returns, contract ends."""

from __future__ import annotations

from datetime import date
from typing import Any

import structlog
from redis.asyncio import Redis

from services.contracts.model import ContractsPolicy, Register, check_request, evolve, judged_row, register
from shared.authority import OwnerState
from shared.dates import DAY
from shared.events import (
    ContractDecommissioned,
    MonitoringReturnJudged,
    PaymentCalculated,
    PerformanceConcern,
    ReturnOverdue,
)
from shared.state import Derived, Published, publish_changes
from shared.streams import Streams

SOURCE = "/services/contracts"
#: the canonical streams it reads: the awards (procurement's decisions)
TYPES = ("tender.awarded",)
#: the acts it decides, as the contracts' owner (from P:requests:contracts)
OWNED = frozenset({"contract.sla.agreed", "monitoring.return.submitted", "contract.decommissioned",
                   "contract.member.exited"})
log = structlog.get_logger("contracts")


def derive(view: dict[str, Any]) -> dict[str, Derived]:
    out: dict[str, Derived] = {}
    for j in view["judged"]:  # accepted returns, rated (refused ones are on P:rejected:<partner>)
        t = "monitoring.return.accepted"
        out[f"return:{j.key}"] = Derived(t, t, judged_row(j), MonitoringReturnJudged)
    for cid, c in view["concerns"].items():
        for status, period_end, rating in c["transitions"]:
            t = f"performance.concern.{status}"
            step = {k: c[k] for k in ("concern_id", "contract_id", "kpi_id", "raised_for", "improvement_plan_due")}
            out[f"concern:{cid}:{status}"] = Derived(t, t, {**step, "status": status, "period_end": period_end,
                                                           "rating": rating}, PerformanceConcern)
    for pid, p in view["payments"].items():
        out[f"payment:{pid}"] = Derived("payment.calculated", "payment.calculated", p, PaymentCalculated)
    for cid, c in view["contracts"].items():
        for period in c["schedule"]:
            if period["status"] == "overdue":
                payload = {"contract_id": cid, **{k: period[k] for k in ("period_start", "period_end", "due")}, "status": "overdue"}
                out[f"overdue:{cid}:{period['period_start']}"] = Derived(
                    "monitoring.return.overdue", "monitoring.return.overdue", payload, ReturnOverdue)
        if c["ends_without_renewal"]:
            end = {"contract_id": cid, "partner_id": c["lead_partner_id"], "effective_date": _day_after(c["contract_end"]),
                   "reason": "contract_end", "replacement": "separate_arrangements"}
            out[f"{cid}-contract-end"] = Derived("contract.decommissioned", "contract.decommissioned", end,
                                                 ContractDecommissioned, revisioned=False)
    return out


def _day_after(iso: str) -> str:
    return (date.fromisoformat(iso) + DAY).isoformat()


def _vanished(entity: str, before: dict[str, Any]) -> Derived | None:
    if entity.startswith("overdue:") and before["payload"]["status"] == "overdue":
        t = "monitoring.return.received"
        return Derived(t, t, {**before["payload"], "status": "received"}, ReturnOverdue)
    return None


class ContractsState(OwnerState[Register]):
    def __init__(self, redis: Redis, streams: Streams, policy: ContractsPolicy, wait_s: float) -> None:
        super().__init__(redis, streams, "contracts", Register, evolve, OWNED, wait_s)
        self.policy = policy
        self.published = Published(redis, streams.state("contracts", "published"))
        self.view: dict[str, Any] = register(self.index, policy)

    async def changed(self, fresh: bool) -> None:
        decided = await self.decide_pending(lambda: lambda payload, key: check_request(self.index, self.policy, payload))
        if self.only_deciding(decided):
            return
        self.view = register(self.index, self.policy)
        for entity in await publish_changes(self.published, self.streams, SOURCE, derive(self.view), _vanished):
            log.info("published", entity=entity)
