"""Quarterly and annual true-ups, and gates measured over the quarter or year to date.

A plan with ``true_up: quarter`` pays each month on the month's own attainment,
then in the quarter's closing month (or the rep's last period on the plan)
computes the commission the quarter as a whole earns — its credits in (close
date, deal) order against the sum of its periods' quotas, with the cap times
the number of periods — and pays the difference from what its periods paid as
one ``true-up`` commission line, positive or negative. This is the usual
"cumulative quota" design: a slow month is not lost when the quarter makes up
for it, and accelerators earned in a hot month are earned over the quarter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import Decimal

from connector.core.commission import Credit, Schedule, commission_lines
from connector.core.earning import adjuster, gate_closed
from connector.core.ledgers import Ledger
from connector.core.models import GoalResult, Line, LineKind
from connector.core.money import ZERO, format_money, ratio
from connector.core.periods import PeriodKind, label
from connector.core.plans import Level, Plan

_SIZE = {
    (PeriodKind.MONTH, Level.QUARTER): 3,
    (PeriodKind.MONTH, Level.YEAR): 12,
    (PeriodKind.QUARTER, Level.QUARTER): 1,
    (PeriodKind.QUARTER, Level.YEAR): 4,
}


def window(period: int, kind: PeriodKind, level: Level) -> range:
    """The periods of the quarter or year holding ``period`` (the period alone for PERIOD)."""
    if level is Level.PERIOD:
        return range(period, period + 1)
    size = _SIZE[kind, level]
    start = period - period % size
    return range(start, start + size)


def to_date(ledger: Ledger, period: int, kind: PeriodKind, level: Level) -> range:
    """The ledger's periods of the window holding ``period``, up to ``period``."""
    span = window(period, kind, level)
    return range(max(span.start, ledger.first), period + 1)


def window_attainment(
    ledger: Ledger, period: int, kind: PeriodKind, level: Level, current: GoalResult | None
) -> Decimal | None:
    """A goal's attainment over the window to date: its actuals over its targets.

    ``current`` is the goal's result this period (not yet on the ledger); a period
    without a target leaves the window without one (None).
    """
    if current is None:
        return None
    if level is Level.PERIOD:
        return current.attainment
    actual, target = current.actual, current.target
    if target is None:
        return None
    for earlier in to_date(ledger, period, kind, level)[:-1]:
        found = next((g for g in ledger.periods[earlier].goals if g.goal_id == current.goal_id),
                     None)  # fmt: skip
        if found is None or found.target is None:
            return None
        actual += found.actual
        target += found.target
    return ratio(actual, target) if target else None


def closes(ledger: Ledger, period: int, kind: PeriodKind, level: Level, leaves: bool) -> bool:
    """Whether ``period`` trues up its window: the window's last period, or the
    ledger's last when the rep leaves the plan (or it ends) then."""
    return period == window(period, kind, level)[-1] or (leaves and period == ledger.last)


def true_up(
    ledger: Ledger,
    plan: Plan,
    period: int,
    kind: PeriodKind,
    current: tuple[Sequence[Credit], Sequence[Line], Decimal | None],
) -> Line | None:
    """The true-up line of the window ``period`` closes, or None when it pays nothing more.

    ``current`` is this period's (credits, lines, gate goal result's window
    attainment): the ledger does not hold them yet.
    """
    level = plan.commission.true_up
    assert level is not None  # only plans with a true-up are asked
    credits_now, lines_now, gating = current
    periods = to_date(ledger, period, kind, level)
    earlier = [ledger.periods[p] for p in periods[:-1]]
    credits = [c for work in earlier for c in work.credits] + list(credits_now)
    quotas = [ledger.quotas[p] for p in periods]
    if any(q is None for q in quotas):
        return None  # no quota to compare with: nothing to true up
    quota = sum((q for q in quotas if q is not None), ZERO)
    commission = plan.commission
    schedule = Schedule.build(commission, quota, gate_closed=gate_closed(commission.gate, gating))
    if commission.cap is not None:
        schedule = dataclasses.replace(schedule, cap=commission.cap * len(periods))
    bookings = sum((c.amount for c in credits), ZERO)
    earned = sum(
        (line.amount for line in commission_lines(credits, schedule,
                                                  adjuster(commission, bookings, quota))),
        ZERO,
    )  # fmt: skip
    paid = sum((line.amount for work in earlier for line in work.lines if _paid(line)), ZERO) + sum(
        (line.amount for line in lines_now if _paid(line)), ZERO
    )
    difference = earned - paid
    if not difference:
        return None
    first, last = label(periods[0], kind), label(periods[-1], kind)
    span = first if first == last else f"{first} to {last}"
    return Line(
        LineKind.COMMISSION,
        None,
        difference,
        None,
        f"true-up {span}: {format_money(bookings)} booked against a quota of "
        f"{format_money(quota)} earns {format_money(earned)}; its periods paid "
        f"{format_money(paid)}",
    )


def _paid(line: Line) -> bool:
    """A commission line a period paid (a deal's, or an earlier true-up of the window)."""
    return line.kind is LineKind.COMMISSION
