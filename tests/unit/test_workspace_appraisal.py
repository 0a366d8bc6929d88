"""The Green Book appraisal against figures worked by hand (3.5%, three years).

Two partners, staff cost of today's arrangements £30,000 + £20,000 = £50,000 a year.
Lead commissioner (aligned budgets): management £20,433.50 + 2 x £1,371.10 = £23,175.70 a year,
one-off £20,000. Partnership (stand-alone): 2 x £21,804.60 = £43,609.20 a year, one-off
£20,000 + 2 x £5,000 = £30,000.

Discount factors: 1/1.035 = 0.966184, 1/1.035^2 = 0.933511, 1/1.035^3 = 0.901943 (sum 2.801637).
Lead commissioner saves £26,824.30 a year: £25,917.20, £25,040.77, £24,193.98 discounted,
£75,151.95 in all; NPV £55,151.95; year 1 already covers the one-off (£5,917.20).
Partnership saves £6,390.80 a year: £17,904.70 discounted; NPV -£12,095.30; no payback.
Recommendation: lead commissioner. It changes to doing nothing when savings fall to
20,000 / 75,151.95 = 0.2661 of what they are (73.4% lower), or when one-off costs rise to
75,151.95 / 20,000 = 3.7576 times (275.8% higher).
"""

from __future__ import annotations

from decimal import Decimal as D

from services.savings.workspace.appraisal import AppraisalPolicy, OptionInput, appraise, option_inputs


def _case(years: int = 3) -> object:
    options = option_inputs([("aligned_budgets", D("23175.70")), ("stand_alone_partnership", D("43609.20")),
                             ("do_nothing", D("50000.00"))], partners=2, policy=AppraisalPolicy())
    return appraise(D("50000.00"), options, years, D("0.035"))


def test_one_off_costs_follow_the_policy() -> None:
    options = option_inputs([("aligned_budgets", D("1")), ("stand_alone_partnership", D("1")), ("do_nothing", D("1"))],
                            partners=2, policy=AppraisalPolicy())
    assert [(o.option, o.one_off) for o in options] == [("aligned_budgets", D("20000")),
                                                        ("stand_alone_partnership", D("30000"))]


def test_npv_and_payback_match_the_hand_figures() -> None:
    a = _case()
    lead, partnership, nothing = a.options
    assert lead.option == "aligned_budgets" and lead.annual_saving == D("26824.30")
    assert [y.discounted for y in lead.years] == [D("25917.20"), D("25040.77"), D("24193.98")]
    assert lead.years[0].cumulative_discounted == D("5917.20")
    assert lead.npv == D("55151.95") and lead.payback_year == 1
    assert partnership.annual_saving == D("6390.80") and partnership.npv == D("-12095.30")
    assert partnership.payback_year is None
    assert nothing.option == "do_nothing" and nothing.npv == D("0.00")
    assert a.recommendation == "aligned_budgets"


def test_switching_values_say_how_far_the_figures_must_move() -> None:
    a = _case()
    assert a.savings_fall is not None and a.savings_fall.to == "do_nothing"
    assert a.savings_fall.factor == D("0.2661") and a.savings_fall.change_pct == D("-73.4")
    assert a.one_off_rise is not None and a.one_off_rise.to == "do_nothing"
    assert a.one_off_rise.factor == D("3.7576") and a.one_off_rise.change_pct == D("275.8")


def test_over_one_year_the_one_off_is_not_recovered_and_nothing_is_recommended() -> None:
    # one year: £25,917.20 discounted against £20,000 one-off still pays; with £30,000 it would not
    a = appraise(D("50000"), [OptionInput("aligned_budgets", D("23175.70"), D("30000"))], 1, D("0.035"))
    assert a.options[0].npv == D("-4082.80") and a.recommendation == "do_nothing"
    # savings must rise to 30,000 / 25,917.20 = 1.1575 before it pays: no fall flips it
    assert a.savings_fall is None


def test_without_discounting_npv_is_plain_sum() -> None:
    a = appraise(D("1000"), [OptionInput("aligned_budgets", D("400"), D("1000"))], 3, D("0"))
    assert a.options[0].npv == D("800.00") and a.options[0].payback_year == 2
