"""The KPIs managers coach on, for one rep-period: pure arithmetic on its figures.

Each returns None where the figure does not apply (no won deal, no quota, the
last tier reached), which every output shows as empty / JSON ``null``.
Fractions are rounded once, half-up, to 4 places; days to 1 place; money to
the cent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import cache

from connector.core.commission import Credit
from connector.core.models import GoalResult, Lead
from connector.core.money import ratio, round_cents
from connector.core.periods import PeriodKind, first_day

_TENTH = Decimal("0.1")
# The share of a period that must have gone by before its pace means something.
PACE_FROM = Fraction(1, 5)


@cache
def elapsed_days(period: int, kind: PeriodKind, as_of: date) -> tuple[int, int]:
    """(days gone by on ``as_of``, today included; days in the period)."""
    start, end = first_day(period, kind), first_day(period + 1, kind)
    length = (end - start).days
    if as_of < start:
        return 0, length
    return min((as_of - start).days + 1, length), length


def pace(
    bookings: Decimal, quota: Decimal | None, period: int, kind: PeriodKind, as_of: date
) -> Decimal | None:
    """Attainment projected to the period's end at the rate so far: 1.0000 is on pace.

    Empty until a fifth of the period has gone by (:data:`PACE_FROM`): one deal on the
    2nd of the month would otherwise project to thousands of percent. A period
    already over has gone by whole, so its pace is its attainment.
    """
    if quota is None:
        return None
    gone, length = elapsed_days(period, kind, as_of)
    if gone * PACE_FROM.denominator < length * PACE_FROM.numerator:
        return None
    return ratio(bookings * length, quota * gone)


def goal_pace(result: GoalResult, period: int, kind: PeriodKind, as_of: date) -> GoalResult:
    """The goal with its deadline (the period's last day) and its pace on ``as_of``,
    measured like the revenue pace: actual against target × the share gone by."""
    deadline = first_day(period + 1, kind) - timedelta(days=1)
    return result._replace(
        pace=pace(result.actual, result.target, period, kind, as_of), deadline=deadline
    )


def sales_cycle_days(credits: Iterable[Credit]) -> Decimal | None:
    """Mean days from creation to close of the won deals credited, to one place.

    A deal counts once for each rep credited on it, a won deal of 0.00 too; a
    credit note and a deal with no creation date (an old CSV, a CRM that did not
    say) are left out.
    """
    total = count = 0
    for credit in credits:
        deal = credit.deal
        if deal.created_date is None or deal.amount < 0:
            continue
        total += (deal.close_date - deal.created_date).days
        count += 1
    if not count:
        return None
    return (Decimal(total) / count).quantize(_TENTH, rounding=ROUND_HALF_UP)


def pipeline_coverage(
    open_pipeline: Decimal, bookings: Decimal, quota: Decimal | None
) -> Decimal | None:
    """Open pipeline ÷ the quota still to book; none once the quota is met."""
    if quota is None:
        return None
    remaining = quota - bookings
    if remaining <= 0:
        return None
    return ratio(open_pipeline, remaining)


def to_next_tier(bookings: Decimal, bounds: Sequence[Decimal]) -> Decimal | None:
    """Bookings still needed before the next dollar earns the next tier's rate.

    ``bounds`` are the tier bounds in money (resolved against the quota). At a
    bound exactly, the next dollar is already above it, so the gap is to the
    bound after; in the last tier there is none.
    """
    for bound in bounds:
        if bound > bookings:
            return round_cents(bound - bookings)
    return None


def lead_to_sale(leads: Sequence[Lead] | None) -> Decimal | None:
    """Of the leads created in the period, the share converted (to a sale) by the as-of date."""
    if not leads:
        return None
    converted = sum(1 for lead in leads if lead.converted)
    return ratio(Decimal(converted), Decimal(len(leads)))
