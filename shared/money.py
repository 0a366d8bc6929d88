"""Money and dates on the wire: `Decimal` pounds from strings with at most 2 places, ISO dates.

Figures are computed exactly (Decimal from the wire, Fraction in between) and rounded once,
to the penny, half up (`pence` / `round_money`).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

PENNY = Decimal("0.01")
MAX_POUNDS = Decimal("1000000000000")  # £1tn: anything larger is a typo, not a budget

# ASCII digits only, matched in full (`\d` would take Arabic-Indic and full-width digits, and `$`
# a trailing newline); the JSON Schema patterns are the same without the anchors' subtleties.
_MONEY = re.compile(r"[0-9]{1,13}(\.[0-9]{1,2})?")
_QUANTITY = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,6})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: ISO 8601 time with an offset, as the contract writes it: 2013-01-01T09:00:00+01:00 (or Z)
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
EARLIEST = date(1990, 1, 1)
LATEST = date(2200, 12, 31)


def to_pence(amount: Decimal) -> Decimal:
    """Round a Decimal to the penny, half up (the same rule as `pence`)."""
    return amount.quantize(PENNY, rounding=ROUND_HALF_UP)


def money_str(amount: Decimal) -> str:
    """Pounds to the penny, half up ("12.05"): `f"{to_pence(amount):.2f}"`. An amount of two
    places, as money from the wire and its sums are, is the text Decimal writes for it (0.24 us
    against 1.7: a need's row writes one, 909,091 of them in a rebuild at 1,000,000 events); any
    other in integers through whole pence (`pence_str`: a fifth of the time) but for a negative
    amount or zero, written as Decimal writes it ("-0.00" included)."""
    text = str(amount)
    if text[-3:-2] == ".":  # "41000.50", "-0.00": positional (Decimal's exponent form has none)
        return text
    if amount.is_signed():
        return f"{to_pence(amount):.2f}"
    return pence_str(pence(amount))


def _parse_money(value: Any) -> Decimal:
    if isinstance(value, Decimal):  # built in code, not read from the wire
        return value
    if not isinstance(value, str):
        raise ValueError('money must be a JSON string of pounds, e.g. "41000.00"')
    if not _MONEY.fullmatch(value):
        raise ValueError(
            f'"{value}" is not an amount of money: use pounds with at most 2 decimal places, '
            'not negative, e.g. "41000.00"'
        )
    amount = Decimal(value)
    if amount >= MAX_POUNDS:
        raise ValueError(f'"{value}" is larger than any budget this system accepts (£1tn)')
    return amount


def _parse_quantity(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
        raise ValueError('a KPI figure must be a JSON string holding a number, e.g. "1200"')
    return Decimal(value)


#: dates read lately, by their text: a partnership's dates repeat (year ends, contract ends,
#: periods' ends), and each is read again every time an event holding it is decoded (0.50 us a
#: date, 0.09 found here). Emptied when full: bounded whatever the dates.
_DATES: dict[str, date] = {}
DATES_KEPT = 4096


def _parse_date(value: Any) -> date:
    if type(value) is str:
        known = _DATES.get(value)
        if known is not None:
            return known
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError('a date must be an ISO 8601 string "YYYY-MM-DD"')
    try:
        parsed = date.fromisoformat(value)
    except ValueError as e:
        raise ValueError(f'"{value}" is not a calendar date') from e
    if not EARLIEST <= parsed <= LATEST:
        raise ValueError(f'"{value}" is outside {EARLIEST.isoformat()}..{LATEST.isoformat()}')
    if len(_DATES) >= DATES_KEPT:
        _DATES.clear()
    _DATES[value] = parsed
    return parsed


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        if not _TIME.fullmatch(value):
            raise ValueError(
                f'"{value[:40]}" is not an ISO 8601 time with an offset, e.g. 2013-01-01T09:00:00+00:00'
            )
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as e:
            raise ValueError(f'"{value}" is not an ISO 8601 time') from e
    else:
        raise ValueError("a time must be an ISO 8601 string with an offset")
    if parsed.tzinfo is None:
        raise ValueError("a time must carry its offset, e.g. 2013-01-01T09:00:00+00:00")
    return parsed


Money = Annotated[
    Decimal,
    BeforeValidator(_parse_money),
    PlainSerializer(money_str, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": f"^{_MONEY.pattern}$",
            "description": "pounds, at most 2 decimal places",
            "examples": ["41000.00"],
        }
    ),
]
Quantity = Annotated[
    Decimal,
    BeforeValidator(_parse_quantity),
    PlainSerializer(lambda d: str(d), return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": f"^{_QUANTITY.pattern}$", "description": "a number, as a string"}
    ),
]
IsoDate = Annotated[
    date,
    BeforeValidator(_parse_date),
    PlainSerializer(lambda d: d.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date",
            "description": f"ISO 8601 date, {EARLIEST.isoformat()} to {LATEST.isoformat()}",
        }
    ),
]
IsoTime = Annotated[
    datetime,
    BeforeValidator(_parse_time),
    PlainSerializer(lambda t: t.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "ISO 8601 time with an offset"}),
]


def pence(amount: Fraction | Decimal | int) -> int:
    """Exact amount in pounds -> whole pence, half up (away from zero): the one rounding rule."""
    if isinstance(amount, Decimal):  # the common case, money from the wire: already whole pence
        hundredfold = amount * 100
        if hundredfold == hundredfold.to_integral_value():
            return int(hundredfold)
    f = amount if isinstance(amount, Fraction) else Fraction(amount)
    return pence_of(f.numerator, f.denominator)


def pence_of(numerator: int, denominator: int) -> int:
    """`pence` of the pounds numerator / denominator (denominator > 0, not necessarily in
    lowest terms: no Fraction is made, and none reduced)."""
    n, d = numerator * 100, denominator
    whole = (2 * abs(n) + d) // (2 * d)  # floor(|f| * 100 + 1/2), in integers
    return whole if n >= 0 else -whole


def from_pence(p: int) -> Decimal:
    return (Decimal(p) / 100).quantize(PENNY)


def pence_str(p: int) -> str:
    """Whole pence as the contract writes money ("-12.05"): `money_str(from_pence(p))`, in
    integers (a savings update writes some 300 of these: 2.7 us each through Decimal, half
    its time, against 0.3 here)."""
    if type(p) is not int:  # bool and other numbers: the Decimal path
        return money_str(from_pence(p))
    pounds, rest = divmod(-p if p < 0 else p, 100)
    return f"{'-' if p < 0 else ''}{pounds}.{rest:02d}"


def round_money(amount: Fraction | Decimal | int) -> Decimal:
    """Exact (rational) pounds rounded to the penny, half up."""
    return from_pence(pence(amount))


def gbp(amount: Decimal | str, whole: bool = True) -> str:
    """As UK public-sector reports show money: £317,648; negatives as −£1,234."""
    value = Decimal(amount)
    if whole:
        value = value.quantize(Decimal(1), rounding=ROUND_HALF_UP)
        text = f"£{abs(value):,.0f}"
    else:
        value = to_pence(value)  # to the penny, half up: the one rounding rule
        text = f"£{abs(value):,.2f}"
    return f"\u2212{text}" if value < 0 else text
