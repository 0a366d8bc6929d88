"""The procurement service's state (shared.state) and what it publishes: tender notices, the
award (the contract's `tender.awarded`), and refusals to the sender's rejected stream."""

from __future__ import annotations

import json
from typing import Any

import structlog

from services.procurement.model import (
    ProcurementPolicy,
    Register,
    awards,
    check_request,
    evolve,
    tenders,
    touches,
)
from shared.authority import Check, OwnerState
from shared.events import TenderAwarded, TenderNotice
from shared.money import money_str
from shared.partners import PartnerRegistry
from shared.ports import Ports
from shared.state import Derived, Published, publish_changes
from shared.streams import Streams

SOURCE = "/services/procurement"
#: the canonical streams it reads: sealed bids, and the needs service's decisions (to judge awards);
#: the tender lifecycle and partners' awards come as requests (P:requests:procurement)
TYPES = (
    "bid.submitted",
    "need.identified",
    "need.updated",
    "need.withdrawn",
    "opportunity.identified",
    "opportunity.updated",
)
#: the acts it decides as their owner before anything else sees them (the rest of the
#: lifecycle is judged by `tenders`, below, against the accepted requests)
OWNED = frozenset({"tender.awarded", "tender.requested"})
log = structlog.get_logger("procurement")


def notices(view: dict[str, dict[str, Any]]) -> dict[str, Derived]:
    out: dict[str, Derived] = {}

    def notice(tid: str, stage: str, status: str, **data: Any) -> None:
        t = f"tender.{stage}"
        out[f"{tid}:{stage}"] = Derived(t, t, {"tender_id": tid, "status": status, **data}, TenderNotice)

    for tid, t in view.items():
        req = t["request"]
        notice(
            tid,
            "published",
            "published",
            title=req.title,
            service_category=req.service_category,
            opportunity_id=req.opportunity_id,
            lead_partner_id=req.partner_id,
            partners=[p.partner_id for p in req.partners],
            route=t["route"],
            route_reason=t["route_reason"],
            lifetime_value=t["lifetime_value"],
            estimated_annual_value=money_str(req.estimated_annual_value),
            term_months=req.term_months,
            date=req.date.isoformat(),
            clarification_deadline=req.clarification_deadline.isoformat(),
            closing_date=req.closing_date.isoformat(),
            contract_start=req.contract_start.isoformat(),
            weighting=req.weighting.model_dump(mode="json"),
            lots=[lot.model_dump(mode="json") for lot in req.lots],
            consortia_allowed=req.consortia_allowed,
            subcontracting_allowed=req.subcontracting_allowed,
        )
        if t["closed"]:
            notice(
                tid,
                "closed",
                "closed",
                closing_date=req.closing_date.isoformat(),
                bids_received=len(t["bids"]),
            )
        if t["results"] is not None:
            intended = [
                {"lot_id": lot["lot_id"], **{k: w[k] for k in ("provider_id", "provider_name")}}
                for lot in t["results"].values()
                for w in lot["bids"]
                if w["bid_id"] == lot["winner"]
            ]
            notice(
                tid,
                "award.intended",
                "standstill",
                standstill_end=t["standstill_end"].isoformat(),
                intended=intended,
            )
        if t["award"] is not None:
            # evaluation results are published only with the award
            notice(tid, "evaluation.published", "awarded", lots=list(t["results"].values()))
            for a in awards(tid, t):
                out[a["contract_id"]] = Derived(
                    "tender.awarded", "tender.awarded", a, TenderAwarded, revisioned=False
                )
        if t["status"] == "cancelled":
            c = t["cancelled"]
            notice(tid, "cancelled", "cancelled", date=c.date.isoformat(), reason=c.reason)
    return out


class ProcurementState(OwnerState[Register]):
    def __init__(
        self,
        ports: Ports,
        streams: Streams,
        policy: ProcurementPolicy,
        registry: PartnerRegistry,
        wait_s: float,
    ) -> None:
        super().__init__(ports, streams, "procurement", Register, evolve, OWNED, wait_s)
        self.touches = touches  # an award waiting for its needs is judged again when one comes
        self.policy = policy
        self.lead_kinds = {p.id: p.kind for p in registry}
        self.published = Published(ports.versions("published"))
        self.refused = Published(ports.versions("refused"))
        self.view: dict[str, dict[str, Any]] = {}
        self.refusals: list[Any] = []

    async def decide(self) -> int:
        def rule() -> Check:
            self.view, self.refusals = tenders(self.index, self.policy, self.lead_kinds)
            awarded = {a["contract_id"] for tid, t in self.view.items() for a in awards(tid, t)}
            return lambda payload, key: check_request(self.index, payload, awarded)

        return await self.decide_pending(rule)

    async def changed(self, fresh: bool) -> None:
        self.view, self.refusals = tenders(self.index, self.policy, self.lead_kinds)
        for entity in await publish_changes(self.published, self.streams, SOURCE, notices(self.view)):
            log.info("published", entity=entity)
        done = await self.refused.all()
        for r in self.refusals:
            if r.key in done or r.code == "unknown_tender":
                # the tender may simply not have been read yet (its stream is read on its own):
                # an event for an unknown tender waits for it, listed in GET /tenders
                continue
            raw = (await self.events.get([r.key]))[0] or b""
            reason = json.dumps(
                {"code": r.code, "message": r.message, "errors": [], "tender_id": r.tender_id},
                separators=(",", ":"),
            )
            if await self.refused.publish(
                r.key,
                None,
                {"revision": 0, "payload": {"code": r.code}},
                self.streams.rejected(r.sender),
                fields={"event": raw, "reason": reason, "inbound_id": ""},
            ):
                log.info("refused", tender_id=r.tender_id, sender=r.sender, code=r.code)
