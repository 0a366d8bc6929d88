"""Green Book option appraisal of one opportunity: each option over the horizon, with its one-off
costs, discounted at the Green Book rate; its net present value (NPV) against doing nothing,
its payback year, and how far savings or one-off costs must move before the recommendation
changes (the switching values).

Conventions (HM Treasury Green Book): one-off costs fall in year 0 and are not discounted; the
running saving of year t (1..horizon) is discounted by (1 + rate)^t. An option's annual saving is
the do-nothing running cost minus its own. Doing nothing has NPV 0 by construction. The
recommendation is the option with the largest NPV, doing nothing when none is positive.
Arithmetic is exact (fractions); money is rounded once, by shared.money.round_money.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field

from shared.money import round_money

DO_NOTHING = "do_nothing"


class AppraisalPolicy(BaseModel):
    """Policy defaults a deployment sets (COMMISSIONING_APPRAISAL_*, read by
    services.savings.settings): not figures from the seeds."""

    model_config = ConfigDict(frozen=True)

    #: years the options are compared over: the reference contracts run three years
    horizon_years: int = Field(default=3, ge=1, le=30)
    discount_rate: Decimal = Field(default=Decimal("0.035"), ge=0, lt=1)
    #: one procurement and a partnership agreement, run once by the lead commissioner
    one_off_lead_commissioner: Decimal = Field(default=Decimal("20000"), ge=0)
    #: a stand-alone partnership: one procurement, then set-up of each partner's own contract
    one_off_partnership_per_partner: Decimal = Field(default=Decimal("5000"), ge=0)


@dataclass(frozen=True)
class OptionInput:
    option: str
    annual_cost: Decimal  # running cost a year
    one_off: Decimal  # in year 0


@dataclass(frozen=True)
class YearFigure:
    year: int
    net_saving: Decimal
    discounted: Decimal
    cumulative_discounted: Decimal  # net of the one-off costs


@dataclass(frozen=True)
class OptionResult:
    option: str
    annual_cost: Decimal
    annual_saving: Decimal  # against doing nothing
    one_off: Decimal
    npv: Decimal
    payback_year: int | None  # first year the discounted cumulative is not negative; None: not in the horizon
    years: tuple[YearFigure, ...]


@dataclass(frozen=True)
class Switch:
    """The recommendation changes to `to` when the moved figure is `factor` times what it is
    (e.g. 0.62: savings 38% lower)."""

    to: str
    factor: Decimal

    @property
    def change_pct(self) -> Decimal:
        return ((self.factor - 1) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Appraisal:
    horizon_years: int
    discount_rate: Decimal
    baseline: Decimal  # doing nothing, a year
    options: tuple[OptionResult, ...]
    recommendation: str
    #: the nearest change of recommendation as every option's savings fall (None: none does)
    savings_fall: Switch | None
    #: the nearest change as every one-off cost rises (None: none does)
    one_off_rise: Switch | None


def _f(x: Decimal) -> Fraction:
    return Fraction(x)


def annuity(rate: Decimal, years: int) -> Fraction:
    """Sum of the discount factors of years 1..years."""
    r = _f(rate)
    return sum((Fraction(1) / (1 + r) ** t for t in range(1, years + 1)), Fraction(0))


def appraise(baseline: Decimal, options: list[OptionInput], horizon_years: int, rate: Decimal) -> Appraisal:
    r = _f(rate)
    raw: dict[str, tuple[Fraction, Fraction]] = {
        DO_NOTHING: (Fraction(0), Fraction(0))
    }  # one-off, annual saving
    results: list[OptionResult] = []
    for o in options:
        saving = _f(baseline) - _f(o.annual_cost)
        one_off = _f(o.one_off)
        raw[o.option] = (one_off, saving)
        cumulative, years, payback = -one_off, [], None
        for t in range(1, horizon_years + 1):
            discounted = saving / (1 + r) ** t
            cumulative += discounted
            if payback is None and cumulative >= 0 and saving > 0:
                payback = t
            years.append(YearFigure(t, round_money(saving), round_money(discounted), round_money(cumulative)))
        if one_off == 0 and saving > 0:
            payback = 0
        results.append(
            OptionResult(
                o.option,
                round_money(_f(o.annual_cost)),
                round_money(saving),
                round_money(one_off),
                round_money(cumulative),
                payback,
                tuple(years),
            )
        )
    if DO_NOTHING not in {o.option for o in options}:
        results.append(
            OptionResult(
                DO_NOTHING,
                round_money(_f(baseline)),
                Decimal("0.00"),
                Decimal("0.00"),
                Decimal("0.00"),
                None,
                (),
            )
        )
    a = annuity(rate, horizon_years)
    npv = {name: -o + a * s for name, (o, s) in raw.items()}
    best = max(npv, key=lambda n: (npv[n], n == DO_NOTHING))  # a tie goes to doing nothing
    return Appraisal(
        horizon_years,
        rate,
        round_money(_f(baseline)),
        tuple(results),
        best,
        _switch(raw, best, a, moves="savings"),
        _switch(raw, best, a, moves="one_off"),
    )


def _switch(raw: dict[str, tuple[Fraction, Fraction]], best: str, a: Fraction, moves: str) -> Switch | None:
    """NPV_x(k) = -one_off_x + a * saving_x * k when savings are scaled by k (or -one_off_x * k +
    a * saving_x when one-off costs are): the recommendation changes where another option's
    line crosses the best one's, nearest to k = 1 in the direction asked (savings fall, k < 1;
    one-off costs rise, k > 1)."""
    o_b, s_b = raw[best]
    found: list[tuple[Fraction, str]] = []
    for name, (o_x, s_x) in raw.items():
        if name == best:
            continue
        if moves == "savings":
            slope = a * (s_b - s_x)
            if slope == 0:
                continue
            k = (o_b - o_x) / slope
            if 0 <= k < 1:
                found.append((k, name))
        else:
            slope = o_b - o_x
            if slope == 0:
                continue
            k = a * (s_b - s_x) / slope
            if k > 1:
                found.append((k, name))
    if not found:
        return None
    k, name = max(found) if moves == "savings" else min(found)
    return Switch(
        name,
        (Decimal(k.numerator) / Decimal(k.denominator)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
    )


def option_inputs(
    options: list[tuple[str, Decimal]], partners: int, policy: AppraisalPolicy
) -> list[OptionInput]:
    """The options an opportunity names (option, running cost a year) with their one-off costs."""
    one_off = {
        "aligned_budgets": policy.one_off_lead_commissioner,
        "stand_alone_partnership": policy.one_off_lead_commissioner
        + policy.one_off_partnership_per_partner * partners,
    }
    return [
        OptionInput(name, cost, one_off.get(name, Decimal(0))) for name, cost in options if name != DO_NOTHING
    ]
