"""The event contract (CONTRACT.md, version 1) as pydantic models.

A CloudEvents 1.0 envelope in JSON structured mode, and one frozen, strict model per payload.
Partner payloads refuse unknown fields; money is `Decimal` from a string, dates are dates.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from shared.money import IsoDate, IsoTime, Money, Quantity

PartnerId = Annotated[StrictStr, StringConstraints(pattern=r"^[a-z0-9-]{1,64}$")]
Ident = Annotated[StrictStr, StringConstraints(min_length=1, max_length=200, pattern=r"^\S+$")]
Text = Annotated[StrictStr, StringConstraints(min_length=1, max_length=2000)]
#: money as published by services: pounds with exactly 2 places, may be negative
MoneyText = Annotated[StrictStr, StringConstraints(pattern=r"^-?[0-9]+\.[0-9]{2}$")]

PARTNER_SOURCE = re.compile(r"^/partners/([a-z0-9-]{1,64})\Z")  # \Z: no trailing newline
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")


class Payload(BaseModel):
    """Base of every payload: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ClassVar[str]
    #: the field that must name the signing partner (a partner never acts for another)
    signer_field: ClassVar[str | None] = "partner_id"


class NeedIdentified(Payload):
    type: ClassVar[str] = "need.identified"

    need_id: Ident
    partner_id: PartnerId
    service_category: Ident
    title: Text
    annual_budget: Money
    current_arrangements: Annotated[StrictInt, Field(ge=0, le=100_000)]
    current_annual_resource_cost: Money
    current_arrangements_end: IsoDate
    outcomes: tuple[Text, ...] = ()
    open_to_sharing: StrictBool


class Supplier(Payload):
    id: Ident
    name: Text


class AwardShare(Payload):
    partner_id: PartnerId
    need_id: Ident
    annual_contribution: Money | None = None


class TenderAwarded(Payload):
    type: ClassVar[str] = "tender.awarded"
    signer_field: ClassVar[str | None] = "lead_partner_id"

    tender_id: Ident
    contract_id: Ident
    lead_partner_id: PartnerId
    commissioning_model: Literal["aligned_budgets", "stand_alone_partnership", "single_partner"]
    supplier: Supplier
    annual_value: Money
    contract_start: IsoDate
    contract_end: IsoDate
    partners: Annotated[tuple[AwardShare, ...], Field(min_length=1, max_length=500)]
    annual_management_cost: Money | None = None

    @model_validator(mode="after")
    def _check(self) -> TenderAwarded:
        if self.contract_end < self.contract_start:
            raise ValueError("contract_end is before contract_start")
        needs = [(p.partner_id, p.need_id) for p in self.partners]
        if len(set(needs)) != len(needs):
            raise ValueError("the same partner need is listed twice in partners")
        return self


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


DecommissionReason = Literal[
    "requirements_unfulfilled",
    "provider_unable",
    "financial_constraints",
    "no_longer_strategic",
    "contract_end",
]


class ContractDecommissioned(Payload):
    type: ClassVar[str] = "contract.decommissioned"

    contract_id: Ident
    partner_id: PartnerId
    effective_date: IsoDate
    reason: DecommissionReason
    replacement: Literal["separate_arrangements", "none"]


class InvestmentRecorded(Payload):
    type: ClassVar[str] = "investment.recorded"

    investment_id: Ident
    partner_id: PartnerId
    date: IsoDate
    amount: Money
    description: Annotated[StrictStr, StringConstraints(max_length=2000)] = ""


# -- additions to the contract (docs/contract-additions.md) --------------------------------

Revision = Annotated[StrictInt, Field(ge=1, le=1_000_000)]


class NeedUpdated(NeedIdentified):
    """A partner restates its own need. The highest `revision` stands (need.identified is
    revision 0), whatever order the events arrive in."""

    type: ClassVar[str] = "need.updated"

    revision: Revision


class NeedWithdrawn(Payload):
    """A partner withdraws its own need; a later revision (need.updated) can restore it."""

    type: ClassVar[str] = "need.withdrawn"

    need_id: Ident
    partner_id: PartnerId
    revision: Revision
    reason: Annotated[StrictStr, StringConstraints(max_length=2000)] = ""


class OpportunityJoined(Payload):
    """A partner opts in to a shared commissioning opportunity (its sovereign decision)."""

    type: ClassVar[str] = "opportunity.joined"

    opportunity_id: Ident
    partner_id: PartnerId
    revision: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0
    offers_to_lead: StrictBool = False


class OpportunityDeclined(Payload):
    """A partner opts out of an opportunity. Of a partner's decisions the highest `revision`
    stands; at equal revisions, a decline."""

    type: ClassVar[str] = "opportunity.declined"

    opportunity_id: Ident
    partner_id: PartnerId
    revision: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0
    reason: Annotated[StrictStr, StringConstraints(max_length=2000)] = ""


class OptionAppraisal(Payload):
    option: Literal["aligned_budgets", "stand_alone_partnership", "do_nothing"]
    annual_cost: Money
    annual_saving: MoneyText
    lead_partner_id: PartnerId | None = None
    summary: Text


class OpportunityNeed(Payload):
    partner_id: PartnerId
    need_id: Ident
    decision: Literal["joined", "declined", "undecided"]


class OpportunityIdentified(Payload):
    """Published by the needs service when needs of two or more partners could be commissioned
    together; republished as `opportunity.updated` whenever it changes."""

    type: ClassVar[str] = "opportunity.identified"
    signer_field: ClassVar[str | None] = None

    opportunity_id: Ident
    service_category: Ident
    revision: Annotated[StrictInt, Field(ge=0)]
    status: Literal["open", "proposed", "not_viable", "closed"]
    needs: tuple[OpportunityNeed, ...]
    window_start: IsoDate
    window_end: IsoDate
    lead_partner_id: PartnerId | None
    options: tuple[OptionAppraisal, ...]
    recommendation: Literal["aligned_budgets", "stand_alone_partnership", "do_nothing"]
    reasons: tuple[Text, ...]


class OpportunityUpdated(OpportunityIdentified):
    type: ClassVar[str] = "opportunity.updated"


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
    floor: Annotated[Quantity, Field(ge=0, le=1)] = Decimal("0")


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


# -- published by the contracts service ------------------------------------------------------

Rating = Literal["on_target", "approaching_target", "requires_improvement", "inadequate"]


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


# -- procurement (docs/contract-additions.md) ----------------------------------------------

Score = Annotated[Quantity, Field(ge=0, le=100)]


class Weighting(Payload):
    """Evaluation weights, in percent, summing to 100 (seed 002: social value, local providers)."""

    price: Score
    quality: Score
    social_value: Score = Decimal(0)
    local: Score = Decimal(0)

    @model_validator(mode="after")
    def _sum(self) -> Weighting:
        if self.price + self.quality + self.social_value + self.local != 100:
            raise ValueError("the weights must sum to 100")
        return self


class Lot(Payload):
    lot_id: Ident
    title: Text
    estimated_annual_value: Money


class TenderRequested(Payload):
    """The lead partner asks the procurement service to run a tender for the partners that
    joined an opportunity."""

    type: ClassVar[str] = "tender.requested"

    tender_id: Ident
    partner_id: PartnerId  # the lead
    opportunity_id: Ident | None = None
    title: Text
    service_category: Ident
    kind: Literal["service", "project"] = "service"
    commissioning_model: Literal["aligned_budgets", "stand_alone_partnership", "single_partner"] = "aligned_budgets"
    partners: Annotated[tuple[AwardShare, ...], Field(min_length=1, max_length=500)]
    estimated_annual_value: Money
    term_months: Annotated[StrictInt, Field(ge=1, le=240)]
    date: IsoDate  # when it is published
    clarification_deadline: IsoDate
    closing_date: IsoDate
    contract_start: IsoDate
    weighting: Weighting
    lots: Annotated[tuple[Lot, ...], Field(max_length=50)] = ()
    consortia_allowed: StrictBool = True
    subcontracting_allowed: StrictBool = True
    standstill_days: Annotated[StrictInt, Field(ge=0, le=60)] | None = None

    @model_validator(mode="after")
    def _dates(self) -> TenderRequested:
        if not self.date <= self.clarification_deadline <= self.closing_date <= self.contract_start:
            raise ValueError("dates must run: date <= clarification_deadline <= closing_date <= contract_start")
        return self


class BidSubmitted(Payload):
    """A provider's bid, signed with its own key. Sealed: only the procurement service reads it."""

    type: ClassVar[str] = "bid.submitted"
    signer_field: ClassVar[str | None] = "provider_id"

    tender_id: Ident
    bid_id: Ident
    provider_id: PartnerId
    provider_name: Text
    lot_id: Ident | None = None
    submitted_on: IsoDate
    annual_price: Money
    consortium: tuple[PartnerId, ...] = ()
    subcontractors: tuple[Text, ...] = ()
    local_provider: StrictBool = False


class BidScore(Payload):
    bid_id: Ident
    quality: Score
    social_value: Score = Decimal(0)


class TenderEvaluationSubmitted(Payload):
    """The lead's evaluation panel scores quality (and social value) after the tender closed."""

    type: ClassVar[str] = "tender.evaluation.submitted"

    tender_id: Ident
    partner_id: PartnerId
    date: IsoDate
    revision: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0
    scores: Annotated[tuple[BidScore, ...], Field(max_length=1000)]
    #: bids flagged abnormally low whose explanation the panel accepted
    accept_abnormally_low: tuple[Ident, ...] = ()


class TenderAwardConfirmed(Payload):
    """The lead confirms the intended award once the standstill period is over."""

    type: ClassVar[str] = "tender.award.confirmed"

    tender_id: Ident
    partner_id: PartnerId
    date: IsoDate
    contract_id: Ident


class TenderCancelRequested(Payload):
    type: ClassVar[str] = "tender.cancel.requested"

    tender_id: Ident
    partner_id: PartnerId
    date: IsoDate
    reason: Text


class TenderNotice(Payload):
    """What the procurement service publishes about a tender at each step (`tender.published`,
    `tender.closed`, `tender.award.intended`, `tender.evaluation.published`, `tender.cancelled`).
    Bids are never in it before the award."""

    type: ClassVar[str] = "tender.published"
    signer_field: ClassVar[str | None] = None
    model_config = ConfigDict(frozen=True, extra="allow")

    tender_id: Ident
    status: StrictStr
    revision: Annotated[StrictInt, Field(ge=0)]


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
    **{f"performance.concern.{s}": PerformanceConcern for s in ("raised", "escalated", "termination_considered", "resolved")},
    PaymentCalculated.type: PaymentCalculated,
    "monitoring.return.overdue": ReturnOverdue,
    "monitoring.return.received": ReturnOverdue,
    **{f"tender.{s}": TenderNotice for s in ("published", "closed", "award.intended", "evaluation.published", "cancelled")},
}


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope, JSON structured mode; `data` kept as parsed JSON."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"]
    id: Annotated[StrictStr, StringConstraints(min_length=1, max_length=256)]
    source: Annotated[StrictStr, StringConstraints(min_length=1, max_length=512)]
    type: Annotated[StrictStr, StringConstraints(min_length=1, max_length=128)]
    time: IsoTime | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    @model_validator(mode="after")
    def _extensions(self) -> CloudEvent:
        for name, value in (self.model_extra or {}).items():
            if not _EXTENSION_NAME.match(name):
                raise ValueError(
                    f"'{name}' is not a CloudEvents attribute: extension names are 1-20 "
                    "lowercase letters or digits"
                )
            if not isinstance(value, (str, int, bool)):
                raise ValueError(f"extension attribute '{name}' must be a string, integer or boolean")
        return self

    @property
    def key(self) -> str:
        """`source` + `id`: what identifies an event everywhere."""
        return f"{self.source} {self.id}"

    @property
    def correlation_id(self) -> str:
        extra = self.model_extra or {}
        return str(extra.get("correlationid") or self.id)

    def payload(self) -> Payload:
        """The typed payload; raises `ValidationError` or `KeyError` for an unknown type."""
        return PAYLOADS[self.type].model_validate(self.data)

    @classmethod
    def parse(cls, raw: bytes | str) -> CloudEvent:
        return cls.model_validate_json(raw)


def new_event(
    payload: Payload,
    *,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
    correlation_id: str | None = None,
) -> CloudEvent:
    extra = {"correlationid": correlation_id} if correlation_id else {}
    return CloudEvent(
        specversion="1.0",
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=payload.type,
        time=time or datetime.now(timezone.utc),
        datacontenttype="application/json",
        data=payload.model_dump(mode="json", exclude_none=True),
        **extra,
    )


def to_json(event: CloudEvent) -> bytes:
    """The contract's plain JSON bytes for one event (what goes in a stream's `event` field)."""
    return json.dumps(
        event.model_dump(mode="json", exclude_none=True), separators=(",", ":"), ensure_ascii=False
    ).encode()


def errors_of(e: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as a machine-readable list, without echoing input values back."""
    return [
        {"loc": ".".join(str(p) for p in err["loc"]), "type": err["type"], "msg": err["msg"]}
        for err in e.errors(include_url=False, include_input=False)
    ]


# -- `savings.updated`: what dashboards read (published by the savings service only) --------

class _Open(BaseModel):
    """Dashboard documents name the fields they guarantee and may carry more."""

    model_config = ConfigDict(frozen=True, extra="allow")


class SavingsPortfolio(_Open):
    baseline_annual_cost: MoneyText
    shared_annual_cost: MoneyText
    annual_saving: MoneyText
    contract_price_annual_saving: MoneyText
    investment: MoneyText
    projected_saving: MoneyText
    realised_saving: MoneyText
    roi: Annotated[StrictStr, StringConstraints(pattern=r"^-?[0-9]+\.[0-9]{2}$")] | None


class SavingsPartner(_Open):
    partner_id: PartnerId
    annual_saving: MoneyText


class SavingsContract(_Open):
    contract_id: Ident
    annual_saving: MoneyText
    status: Literal["active", "ended", "decommissioned"]


class SavingsUpdatedData(_Open):
    as_of: Annotated[StrictStr, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None
    portfolio: SavingsPortfolio
    partners: list[SavingsPartner]
    contracts: list[SavingsContract]
