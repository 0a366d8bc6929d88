"""The contract: SLAs, monitoring returns, annual reviews, members leaving, decommissioning
(proposed with its consultation and impact assessment, then decided), and what the contracts
service publishes from them (judged returns, concerns, payments, overdue returns)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

from shared.contract.base import (
    Ident,
    MoneyText,
    PartnerId,
    Payload,
)
from shared.money import IsoDate, Money, Quantity

DecommissionReason = Literal[
    "requirements_unfulfilled",
    "provider_unable",
    "financial_constraints",
    "no_longer_strategic",
    "contract_end",
]
Rating = Literal["on_target", "approaching_target", "requires_improvement", "inadequate"]


class Kpi(Payload):
    kpi_id: Ident
    target: Quantity
    actual: Quantity


class MonitoringReturnSubmitted(Payload):
    type: ClassVar[str] = "monitoring.return.submitted"

    contract_id: Ident
    partner_id: PartnerId
    period_start: IsoDate
    period_end: IsoDate
    spend: Money
    management_cost: Money | None = None
    kpis: Annotated[tuple[Kpi, ...], Field(max_length=200)] = ()

    @model_validator(mode="after")
    def _check(self) -> MonitoringReturnSubmitted:
        if self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        return self


class ContractDecommissioned(Payload):
    type: ClassVar[str] = "contract.decommissioned"

    contract_id: Ident
    partner_id: PartnerId
    effective_date: IsoDate
    reason: DecommissionReason
    replacement: Literal["separate_arrangements", "none"]


Text = Annotated[StrictStr, StringConstraints(min_length=1, max_length=4000)]


class ContractReviewRecorded(Payload):
    """The lead records a contract's annual review (seed 004 §4.28; 002 §4.2 stage 8): the
    anniversary of the start it is for, the day it was held, the RAG the partners agreed, what
    service users said, and the decision. Of the records for one anniversary the highest
    `revision` stands."""

    type: ClassVar[str] = "contract.review.recorded"

    contract_id: Ident
    partner_id: PartnerId
    review_for: IsoDate
    held_on: IsoDate
    revision: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0
    rag: Literal["red", "amber", "green"]
    user_feedback: Text
    decision: Literal["continue", "improvement_plan", "recommission", "decommission"]
    notes: Annotated[StrictStr, StringConstraints(max_length=4000)] = ""


class Consultation(Payload):
    started: IsoDate
    ended: IsoDate
    #: who was consulted: partners, the provider, service users' groups...
    consulted: Annotated[
        tuple[Annotated[StrictStr, StringConstraints(min_length=1, max_length=200)], ...],
        Field(min_length=1, max_length=100),
    ]
    summary: Text

    @model_validator(mode="after")
    def _check(self) -> Consultation:
        if self.ended < self.started:
            raise ValueError("the consultation ended before it started")
        return self


class ImpactAssessment(Payload):
    """Seed 004 §§5.2-5.3: sensitive to service users' needs and wishes, with the position of
    the provider's employees considered."""

    service_users_affected: Annotated[StrictInt, Field(ge=0, le=100_000_000)]
    on_service_users: Text
    on_employees: Text
    mitigation: Text


class DecommissioningProposed(Payload):
    """The lead proposes to end a contract early, as a planned process (seed 004 §§5.2-5.3):
    the consultation held with service users, the provider and other stakeholders, and the
    impact assessment, recorded before it takes effect (the lead's `contract.decommissioned`
    then ends it). One a contract."""

    type: ClassVar[str] = "contract.decommissioning.proposed"

    contract_id: Ident
    partner_id: PartnerId
    proposed_on: IsoDate
    effective_date: IsoDate
    reason: Literal[
        "requirements_unfulfilled", "provider_unable", "financial_constraints", "no_longer_strategic"
    ]
    replacement: Literal["separate_arrangements", "none"]
    consultation: Consultation
    impact: ImpactAssessment

    @model_validator(mode="after")
    def _check(self) -> DecommissioningProposed:
        if self.effective_date <= self.proposed_on:
            raise ValueError("effective_date is not after proposed_on")
        if self.consultation.ended > self.effective_date:
            raise ValueError("the consultation ends after the decommissioning takes effect")
        return self


class KpiTerm(Payload):
    kpi_id: Ident
    description: Annotated[StrictStr, StringConstraints(max_length=500)] = ""
    target: Quantity
    higher_is_better: StrictBool = True


class PartnerSchedule(Payload):
    """A partner's individual schedule: requirements it adds to the shared SLA (seed 003)."""

    partner_id: PartnerId
    kpis: Annotated[tuple[KpiTerm, ...], Field(max_length=100)] = ()


class PaymentByResults(Payload):
    #: share of the contract value paid by results, e.g. "0.10"
    share: Annotated[Quantity, Field(ge=0, le=1)]
    #: achievement below this pays nothing of the results share
    floor: Annotated[Quantity, Field(ge=0, le=1)] = Decimal(0)


class ContractSlaAgreed(Payload):
    """The lead partner states a contract's service level agreement: KPIs with targets, the
    monitoring frequency, partners' individual schedules, payment by results. The highest
    `revision` stands."""

    type: ClassVar[str] = "contract.sla.agreed"

    contract_id: Ident
    partner_id: PartnerId
    revision: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0
    kpis: Annotated[tuple[KpiTerm, ...], Field(min_length=1, max_length=100)]
    monitoring: Literal["quarterly", "half_yearly", "annual"] | None = None
    schedules: Annotated[tuple[PartnerSchedule, ...], Field(max_length=500)] = ()
    payment_by_results: PaymentByResults | None = None
    #: months of notice a member gives to leave its part of the contract (seed 004: three
    #: months); when absent the contracts policy's default applies
    exit_notice_months: Annotated[StrictInt, Field(ge=0, le=120)] | None = None


class ContractMemberExited(Payload):
    """A member (not the lead) leaves its own part of a running contract (seed 003: each
    partner keeps its sovereignty). Given on `notice_date`, it takes effect on `effective_date`,
    at least the contract's notice later; from then the contract no longer replaces that
    partner's needs and its own schedule stops."""

    type: ClassVar[str] = "contract.member.exited"

    contract_id: Ident
    partner_id: PartnerId
    notice_date: IsoDate
    effective_date: IsoDate
    reason: DecommissionReason

    @model_validator(mode="after")
    def _check(self) -> ContractMemberExited:
        if self.effective_date < self.notice_date:
            raise ValueError("effective_date is before notice_date")
        return self


class KpiRating(Payload):
    kpi_id: Ident
    target: StrictStr
    actual: StrictStr
    achievement: StrictStr
    rating: Rating


class MonitoringReturnJudged(Payload):
    """`monitoring.return.accepted`, with each KPI's rating, for a `monitoring.return.submitted`
    the contracts service accepted (`return_key`: its source + id). A refused return is on
    `P:rejected:<partner>`; `status`, `code` and `message` keep the published shape."""

    type: ClassVar[str] = "monitoring.return.accepted"
    signer_field: ClassVar[str | None] = None

    return_key: StrictStr
    contract_id: Ident
    partner_id: PartnerId
    period_start: IsoDate
    period_end: IsoDate
    status: Literal["accepted", "rejected"]
    code: StrictStr | None
    message: StrictStr | None
    ratings: tuple[KpiRating, ...]
    spend: MoneyText
    management_cost: MoneyText | None
    revision: Annotated[StrictInt, Field(ge=0)]


class PerformanceConcern(Payload):
    """One step of a performance concern: `performance.concern.raised` (a KPI below target),
    then `.escalated` (still below after the improvement plan was due), `.termination_considered`
    (the last resort) or `.resolved` (back on target). `period_end`: the return that moved it."""

    type: ClassVar[str] = "performance.concern.raised"
    signer_field: ClassVar[str | None] = None

    concern_id: Ident
    contract_id: Ident
    kpi_id: Ident
    raised_for: IsoDate
    status: Literal["raised", "escalated", "termination_considered", "resolved"]
    period_end: IsoDate
    rating: Rating
    improvement_plan_due: IsoDate
    revision: Annotated[StrictInt, Field(ge=0)]


class PaymentCalculated(Payload):
    """Payment by results for one period of a contract."""

    type: ClassVar[str] = "payment.calculated"
    signer_field: ClassVar[str | None] = None

    payment_id: Ident
    contract_id: Ident
    supplier_id: Ident
    period_start: IsoDate
    period_end: IsoDate
    fixed_payment: MoneyText
    results_at_risk: MoneyText
    results_payment: MoneyText
    total: MoneyText
    achievement: StrictStr
    revision: Annotated[StrictInt, Field(ge=0)]


class ReturnOverdue(Payload):
    """A monitoring period ended without a return: `monitoring.return.overdue`, then
    `monitoring.return.received` when a late one arrives."""

    type: ClassVar[str] = "monitoring.return.overdue"
    signer_field: ClassVar[str | None] = None

    contract_id: Ident
    period_start: IsoDate
    period_end: IsoDate
    due: IsoDate
    status: Literal["overdue", "received"]
    revision: Annotated[StrictInt, Field(ge=0)]
