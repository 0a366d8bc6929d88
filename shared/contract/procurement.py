"""The contract: tenders, bids, evaluations and awards (the procurement service owns them)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from shared.contract.base import (
    Ident,
    PartnerId,
    Payload,
    Text,
)
from shared.money import IsoDate, Money, Quantity

Score = Annotated[Quantity, Field(ge=0, le=100)]


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
    commissioning_model: Literal["aligned_budgets", "stand_alone_partnership", "single_partner"] = (
        "aligned_budgets"
    )
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
            raise ValueError(
                "dates must run: date <= clarification_deadline <= closing_date <= contract_start"
            )
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
