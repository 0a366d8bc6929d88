"""Which payload model each event type has, and who may send it."""

from __future__ import annotations

from collections.abc import Mapping

from shared.contract.base import (
    Payload,
)
from shared.contract.contracts import (
    ContractDecommissioned,
    ContractMemberExited,
    ContractReviewRecorded,
    ContractSlaAgreed,
    DecommissioningProposed,
    MonitoringReturnJudged,
    MonitoringReturnSubmitted,
    PaymentCalculated,
    PerformanceConcern,
    ReturnOverdue,
)
from shared.contract.needs import (
    NeedIdentified,
    NeedUpdated,
    NeedWithdrawn,
    OpportunityDeclined,
    OpportunityIdentified,
    OpportunityJoined,
    OpportunityUpdated,
)
from shared.contract.procurement import (
    BidSubmitted,
    TenderAwardConfirmed,
    TenderAwarded,
    TenderCancelRequested,
    TenderEvaluationSubmitted,
    TenderNotice,
    TenderRequested,
)
from shared.contract.savings import InvestmentRecorded

#: the types a partner may send to `P:inbound`, and their payload models
PARTNER_TYPES: Mapping[str, type[Payload]] = {
    m.type: m
    for m in (
        NeedIdentified,
        TenderAwarded,
        MonitoringReturnSubmitted,
        ContractDecommissioned,
        InvestmentRecorded,
        NeedUpdated,
        NeedWithdrawn,
        OpportunityJoined,
        OpportunityDeclined,
        ContractSlaAgreed,
        ContractMemberExited,
        ContractReviewRecorded,
        DecommissioningProposed,
        TenderRequested,
        BidSubmitted,
        TenderEvaluationSubmitted,
        TenderAwardConfirmed,
        TenderCancelRequested,
    )
}


#: the types only a provider (registry kind "provider") may send, and only those
PROVIDER_TYPES = frozenset({BidSubmitted.type})


#: accepted types whose stream only their service reads: bids are confidential until award
SEALED_TYPES = frozenset({BidSubmitted.type})


#: every type with a payload model, including those only services publish
PAYLOADS: dict[str, type[Payload]] = {
    **PARTNER_TYPES,
    OpportunityIdentified.type: OpportunityIdentified,
    OpportunityUpdated.type: OpportunityUpdated,
    "monitoring.return.accepted": MonitoringReturnJudged,
    **{
        f"performance.concern.{s}": PerformanceConcern
        for s in ("raised", "escalated", "termination_considered", "resolved")
    },
    PaymentCalculated.type: PaymentCalculated,
    "monitoring.return.overdue": ReturnOverdue,
    "monitoring.return.received": ReturnOverdue,
    **{
        f"tender.{s}": TenderNotice
        for s in ("published", "closed", "award.intended", "evaluation.published", "cancelled")
    },
}
