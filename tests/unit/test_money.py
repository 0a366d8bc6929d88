"""Money written out from whole pence (`pence_str`) is what the Decimal path writes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from shared.money import from_pence, money_str, pence, pence_of, pence_str, to_pence


@given(st.integers(-(10**20), 10**20))
def test_pence_are_written_as_the_decimal_path_writes_them(p: int) -> None:
    assert pence_str(p) == money_str(from_pence(p)) == f"{to_pence(from_pence(p)):.2f}"


def test_pence_at_the_edges() -> None:
    assert [pence_str(p) for p in (0, 1, -1, 99, -99, 100, -100, -1205)] == [
        "0.00",
        "0.01",
        "-0.01",
        "0.99",
        "-0.99",
        "1.00",
        "-1.00",
        "-12.05",
    ]


def test_what_is_not_an_int_takes_the_decimal_path() -> None:
    assert pence_str(Decimal(1205)) == "12.05"  # type: ignore[arg-type]
    assert pence_str(True) == "0.01"  # type: ignore[arg-type]


@given(
    st.integers(-(10**15), 10**15),
    st.integers(1, 10**9),
    st.integers(1, 10**6),
)
def test_pence_of_a_numerator_and_denominator_is_pence_of_their_fraction(n: int, d: int, k: int) -> None:
    """`pence_of` rounds n/d without reducing it: scaled by any k, the same as `pence`."""
    assert pence_of(n * k, d * k) == pence(Fraction(n, d)) == pence_of(n, d)


@given(st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, places=4))
def test_money_is_written_as_the_decimal_path_writes_it(amount: Decimal) -> None:
    """`money_str` writes non-negative amounts through whole pence: the same text as Decimal's
    own rounding to the penny, half up, negative amounts and zeros ("-0.00") included; the
    savings tables write theirs with it (`model._d`)."""
    from services.savings.model import _d

    assert _d(amount) == money_str(amount) == f"{to_pence(amount):.2f}"
    assert _d(Decimal("-0.00")) == money_str(Decimal("-0.00")) == "-0.00"
    assert _d(None) is None


def test_money_in_messages_is_rounded_half_up_like_every_figure() -> None:
    """`gbp(x, whole=False)` writes pounds and pence rounded half up (`pence`'s rule), not by
    format()'s half even: a tender's lifetime value is an annual value times months over 12."""
    from shared.money import gbp

    assert gbp(Decimal("1000.005"), whole=False) == "£1,000.01"  # half even: £1,000.00
    assert gbp(Decimal("2.125"), whole=False) == "£2.13"
    assert gbp(Decimal("-2.125"), whole=False) == "\u2212£2.13"
    assert gbp(Decimal("12345.5")) == "£12,346"


@given(st.integers(0, 1), st.integers(0, 10**15), st.integers(-6, 4))
def test_money_of_any_exponent_is_written_as_the_decimal_path_writes_it(
    sign: int, digits: int, exponent: int
) -> None:
    """Amounts of two places (money from the wire and its sums) are written as Decimal writes
    them, and every other (one place, four, none, Decimal's exponent form "1E+3") as before: the
    same text as Decimal's own rounding to the penny, half up."""
    amount = Decimal((sign, tuple(int(c) for c in str(digits)), exponent))
    assert money_str(amount) == f"{to_pence(amount):.2f}"


def test_money_of_two_places_and_of_exponent_form() -> None:
    cases = {"41000.50": "41000.50", "0.05": "0.05", "-12.05": "-12.05", "-0.00": "-0.00", "100.5": "100.50"}
    cases |= {"1E+3": "1000.00", "1.00E+3": "1000.00", "5E-7": "0.00", "0.005": "0.01", "12": "12.00"}
    assert {text: money_str(Decimal(text)) for text in cases} == cases


def test_a_date_read_again_is_the_same_and_those_kept_are_bounded() -> None:
    """Dates are kept by their text once read (`_DATES`): the same date again, each refusal
    still said every time, and never more than `DATES_KEPT` of them."""
    import pytest

    from shared import money

    assert money._parse_date("2016-03-31") is money._parse_date("2016-03-31") == date(2016, 3, 31)
    assert money._parse_date("2016-04-01") == date(2016, 4, 1)
    refused = {"2016-02-30": "not a calendar date", "1989-12-31": "outside", "20160331": "ISO 8601"}
    for bad, said in refused.items():
        for _ in range(2):
            with pytest.raises(ValueError, match=said):
                money._parse_date(bad)
    start = date(2000, 1, 1)
    for k in range(2 * money.DATES_KEPT + 7):
        day = date.fromordinal(start.toordinal() + k)
        assert money._parse_date(day.isoformat()) == day
        assert len(money._DATES) <= money.DATES_KEPT
