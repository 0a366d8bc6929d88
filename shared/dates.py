"""Calendar arithmetic shared by the services."""

from __future__ import annotations

from datetime import date, timedelta

DAY = timedelta(days=1)
#: months of notice before a contract's annual review (seed 004 §4.28: three months)
REVIEW_NOTICE_MONTHS = 3


def add_months(d: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (29 Feb + 12 -> 28 Feb)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - DAY).day
    return date(year, month, min(d.day, last))


def anniversaries(start: date, end: date) -> list[date]:
    """The anniversaries of `start` before `end`: the dates of a contract's annual reviews."""
    out = []
    while (day := add_months(start, 12 * (len(out) + 1))) < end:
        out.append(day)
    return out
