"""The contract: needs and the opportunities made of them (the needs service owns them)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from shared.contract.base import (
    Ident,
    MoneyText,
    PartnerId,
    Payload,
    Text,
)
from shared.money import IsoDate, Money

Revision = Annotated[StrictInt, Field(ge=1, le=1_000_000)]


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
