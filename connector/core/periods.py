"""Period arithmetic: calendar months (``2026-03``) and quarters (``2026-Q1``).

A period is an ordinal (months or quarters since year 0) so that ordering,
ranges and "the k-th period" are integer arithmetic; labels are made only
for output.
"""

from __future__ import annotations

import re
from datetime import date

from connector.core.models import PeriodKind

__all__ = ["PeriodKind", "first_day", "label", "parse_label", "period_of"]


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")


def period_of(day: date, kind: PeriodKind) -> int:
    if kind is PeriodKind.MONTH:
        return day.year * 12 + day.month - 1
    return day.year * 4 + (day.month - 1) // 3


def label(period: int, kind: PeriodKind) -> str:
    if kind is PeriodKind.MONTH:
        year, month = divmod(period, 12)
        return f"{year:04d}-{month + 1:02d}"
    year, quarter = divmod(period, 4)
    return f"{year:04d}-Q{quarter + 1}"


def parse_label(text: str, kind: PeriodKind) -> int:
    """The period named ``text`` (``2026-03`` or ``2026-Q1``, whichever ``kind`` uses)."""
    if kind is PeriodKind.MONTH:
        match = _MONTH.match(text)
        if match and 1 <= int(match.group(2)) <= 12:
            return int(match.group(1)) * 12 + int(match.group(2)) - 1
        raise ValueError(f"{text!r} is not a month like 2026-03")
    match = _QUARTER.match(text)
    if match:
        return int(match.group(1)) * 4 + int(match.group(2)) - 1
    raise ValueError(f"{text!r} is not a quarter like 2026-Q1")


def first_day(period: int, kind: PeriodKind) -> date:
    if kind is PeriodKind.MONTH:
        year, month = divmod(period, 12)
        return date(year, month + 1, 1)
    year, quarter = divmod(period, 4)
    return date(year, quarter * 3 + 1, 1)
