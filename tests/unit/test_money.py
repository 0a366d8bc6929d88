"""Money written out from whole pence (`pence_str`) is what the Decimal path writes."""

from __future__ import annotations

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
