"""The contract: investments recorded, and `savings.updated`, what dashboards read (published by
the savings service only)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictStr,
    StringConstraints,
)

from shared.contract.base import (
    Ident,
    MoneyText,
    PartnerId,
    Payload,
)
from shared.money import IsoDate, Money


class InvestmentRecorded(Payload):
    type: ClassVar[str] = "investment.recorded"

    investment_id: Ident
    partner_id: PartnerId
    date: IsoDate
    amount: Money
    description: Annotated[StrictStr, StringConstraints(max_length=2000)] = ""


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
