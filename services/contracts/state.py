"""The contracts service's state: the register (shared.state) and the events derived from it:
judged returns, performance concerns, payments by results, overdue returns, contract ends."""

from __future__ import annotations

from datetime import date
from typing import Any

import structlog

from services.contracts.model import (
    SOURCE,
    ContractEntry,
    ContractsPolicy,
    Register,
    RegisterView,
    check_request,
    evolve,
    judged_row,
)
from shared.authority import OwnerState
from shared.dates import DAY
from shared.events import (
    ContractDecommissioned,
    MonitoringReturnJudged,
    PaymentCalculated,
    PerformanceConcern,
    ReturnOverdue,
)
from shared.ports import Ports
from shared.state import Derived, Outbox, Published
from shared.streams import Streams

#: the canonical streams it reads: the awards (procurement's decisions)
TYPES = ("tender.awarded",)
#: the acts it decides, as the contracts' owner (from P:requests:contracts)
OWNED = frozenset(
    {
        "contract.sla.agreed",
        "monitoring.return.submitted",
        "contract.decommissioned",
        "contract.member.exited",
        "contract.review.recorded",
        "contract.decommissioning.proposed",
    }
)
log = structlog.get_logger("contracts")


def derive(entry: ContractEntry) -> dict[str, Derived]:
    """What one contract's entry publishes: its judged returns, concerns, payments, overdue
    returns, and its end when it ends without renewal."""
    out: dict[str, Derived] = {}
    for j in entry.judged:  # accepted returns, rated (refused ones are on P:rejected:<partner>)
        t = "monitoring.return.accepted"
        out[f"return:{j.key}"] = Derived(t, t, judged_row(j), MonitoringReturnJudged)
    for cid, c in entry.concerns.items():
        for status, period_end, rating in c["transitions"]:
            t = f"performance.concern.{status}"
            step = {
                k: c[k] for k in ("concern_id", "contract_id", "kpi_id", "raised_for", "improvement_plan_due")
            }
            out[f"concern:{cid}:{status}"] = Derived(
                t,
                t,
                {**step, "status": status, "period_end": period_end, "rating": rating},
                PerformanceConcern,
            )
    for pid, p in entry.payments.items():
        out[f"payment:{pid}"] = Derived("payment.calculated", "payment.calculated", p, PaymentCalculated)
    c = entry.row
    cid = c["contract_id"]
    for period in c["schedule"]:
        if period["status"] == "overdue":
            payload = {
                "contract_id": cid,
                **{k: period[k] for k in ("period_start", "period_end", "due")},
                "status": "overdue",
            }
            out[f"overdue:{cid}:{period['period_start']}"] = Derived(
                "monitoring.return.overdue", "monitoring.return.overdue", payload, ReturnOverdue
            )
    if c["ends_without_renewal"]:
        end = {
            "contract_id": cid,
            "partner_id": c["lead_partner_id"],
            "effective_date": _day_after(c["contract_end"]),
            "reason": "contract_end",
            "replacement": "separate_arrangements",
        }
        out[f"{cid}-contract-end"] = Derived(
            "contract.decommissioned",
            "contract.decommissioned",
            end,
            ContractDecommissioned,
            revisioned=False,
        )
    return out


def _day_after(iso: str) -> str:
    return (date.fromisoformat(iso) + DAY).isoformat()


def _vanished(entity: str, before: dict[str, Any]) -> Derived | None:
    if entity.startswith("overdue:") and before["payload"]["status"] == "overdue":
        t = "monitoring.return.received"
        return Derived(t, t, {**before["payload"], "status": "received"}, ReturnOverdue)
    return None


class ContractsState(OwnerState[Register]):
    def __init__(self, ports: Ports, streams: Streams, policy: ContractsPolicy, wait_s: float) -> None:
        super().__init__(ports, streams, "contracts", Register, evolve, OWNED, wait_s)
        self.policy = policy
        self.published = Published(ports.versions("published"))
        self.outbox = Outbox(self.published, streams, SOURCE, _vanished)
        self.register = RegisterView(policy)
        #: what each contract's entry derives, as last published from this process
        self._derived: dict[str, dict[str, Derived]] = {}

    async def decide(self) -> int:
        return await self.decide_pending(
            lambda: lambda payload, key: check_request(self.index, self.policy, payload)
        )

    async def changed(self, fresh: bool) -> None:
        rebuilt = self.register.refresh(self.index)
        contracts = set(self.register.entries) if rebuilt is None else rebuilt
        before = {e for cid in contracts for e in self._derived.get(cid, {})}
        for cid in contracts:
            self._derived[cid] = derive(self.register.entries[cid])
        current = {e: d for cid in contracts for e, d in self._derived[cid].items()}
        scope = None if rebuilt is None else before | set(current)
        self.outbox.put(current, scope)

    async def publish(self) -> None:
        for entity in await self.outbox.flush():
            log.info("published", entity=entity)
