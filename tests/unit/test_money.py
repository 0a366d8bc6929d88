"""Money written out from whole pence (`pence_str`) is what the Decimal path writes."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from shared.money import from_pence, money_str, pence_str


@given(st.integers(-(10**20), 10**20))
def test_pence_are_written_as_the_decimal_path_writes_them(p: int) -> None:
    assert pence_str(p) == money_str(from_pence(p))


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
