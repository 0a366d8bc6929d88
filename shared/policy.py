"""Savings policy: one definition for every service (needs appraises with it, savings reports
with it). Defaults from the reference report; every figure can be changed per deployment."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class SavingsPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: estimated annual management cost of a shared contract = intercept + per_partner x n.
    #: The straight line through the report's two points: £41,000 (15), £27,289 (5).
    cost_intercept: Decimal = Decimal("20433.50")
    cost_per_partner: Decimal = Decimal("1371.10")
    #: Green Book discount rate, a year
    discount_rate: Decimal = Field(default=Decimal("0.035"), ge=0, lt=1)
    #: the horizon savings are projected over: the report counts 5.5 years (development
    #: phase plus three-year contracts) from the programme start
    horizon_months: int = Field(default=66, ge=1, le=600)

    def shared_cost(self, partners: int) -> Decimal:
        """Estimated annual cost of the lead commissioner managing one shared contract."""
        return self.cost_intercept + self.cost_per_partner * partners
