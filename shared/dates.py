"""Calendar arithmetic shared by the services."""

from __future__ import annotations

from datetime import date, timedelta

DAY = timedelta(days=1)


def add_months(d: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (29 Feb + 12 -> 28 Feb)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - DAY).day
    return date(year, month, min(d.day, last))
