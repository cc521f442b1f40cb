"""Deals → what each rep is credited with, period by period.

A ``won`` deal credits its owner, or each split rep with ``amount × percent /
100``. A ``cancelled`` deal reversed in the period it closed counts as lost; one
reversed in a later period is credited in its close period (it was paid then)
and leaves a :class:`Reversal` for the clawback rules. Lost and open deals
count for the owner only (KPIs).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from connector.core.commission import Credit
from connector.core.models import Deal, DealStatus
from connector.core.money import HUNDRED, ONE, ZERO
from connector.core.periods import PeriodKind, period_of
from connector.errors import CalculationError

_WON = DealStatus.WON
_LOST = DealStatus.LOST
_OPEN = DealStatus.OPEN
_CANCELLED = DealStatus.CANCELLED


@dataclass(frozen=True, slots=True)
class Reversal:
    """A credited deal cancelled in a later period than it closed in."""

    deal: Deal
    close_period: int
    cancel_period: int


@dataclass(slots=True)
class RepActivity:
    """Everything one rep's statements need from the deals."""

    credits: dict[int, list[Credit]] = field(default_factory=dict)
    lost: dict[int, list[Deal]] = field(default_factory=dict)
    open_deals: dict[int, list[Deal]] = field(default_factory=dict)
    reversals: list[Reversal] = field(default_factory=list)

    def sort(self) -> None:
        """Order credits by (close_date, deal id): the order deals fill the tiers."""
        for credits in self.credits.values():
            credits.sort(key=_credit_order)


def _credit_order(credit: Credit) -> tuple[object, str]:
    return credit.deal.close_date, credit.deal.id


def validate_deals(deals: Sequence[Deal]) -> None:
    """Refuse deals no statement can be computed from, naming the deal."""
    ids = [deal.id for deal in deals]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        for deal_id in ids:
            if deal_id in seen:
                raise CalculationError(f"deal {deal_id}: the id appears twice")
            seen.add(deal_id)
    for deal in deals:
        if deal.cancel_date is None and not deal.splits:
            if deal.status is _CANCELLED:
                raise CalculationError(f"deal {deal.id}: a cancelled deal needs a cancel_date")
            continue  # the common case: nothing more to check
        if deal.cancel_date is not None and deal.cancel_date < deal.close_date:
            raise CalculationError(
                f"deal {deal.id}: cancel_date {deal.cancel_date} is before "
                f"close_date {deal.close_date}"
            )
        if deal.splits:
            reps = [split.rep_id for split in deal.splits]
            if len(set(reps)) != len(reps):
                raise CalculationError(f"deal {deal.id}: a rep is listed twice in its splits")
            total = sum((split.percent for split in deal.splits), ZERO)
            if total != HUNDRED:
                raise CalculationError(f"deal {deal.id}: split percents sum to {total}, not 100")


def activity_by_rep(
    deals: Iterable[Deal], members: Collection[str], kind: PeriodKind
) -> dict[str, RepActivity]:
    """Bucket every deal's effect by rep and period; non-members are ignored."""
    activity: dict[str, RepActivity] = {rep_id: RepActivity() for rep_id in members}
    monthly = kind is PeriodKind.MONTH
    for deal in deals:
        status = deal.status
        close = deal.close_date
        # Inlined period_of for months: this loop runs once per deal of the org.
        period = close.year * 12 + close.month - 1 if monthly else period_of(close, kind)
        if status is _CANCELLED:
            assert deal.cancel_date is not None  # validate_deals guarantees it
            cancel_period = period_of(deal.cancel_date, kind)
            if cancel_period == period:
                status = _LOST
        if status is _WON or status is _CANCELLED:
            if not deal.splits:
                rep = activity.get(deal.owner_id)
                if rep is None:
                    continue
                rep.credits.setdefault(period, []).append(Credit(deal, deal.amount, ONE))
                if status is _CANCELLED:
                    rep.reversals.append(Reversal(deal, period, cancel_period))
                continue
            for rep_id, amount, share in _shares(deal):
                rep = activity.get(rep_id)
                if rep is None:
                    continue
                rep.credits.setdefault(period, []).append(Credit(deal, amount, share))
                if status is _CANCELLED:
                    rep.reversals.append(Reversal(deal, period, cancel_period))
        elif status is _LOST:
            rep = activity.get(deal.owner_id)
            if rep is not None:
                rep.lost.setdefault(period, []).append(deal)
        elif status is _OPEN:
            rep = activity.get(deal.owner_id)
            if rep is not None:
                rep.open_deals.setdefault(period, []).append(deal)
    for rep in activity.values():
        rep.sort()
    return activity


def _shares(deal: Deal) -> list[tuple[str, Decimal, Decimal]]:
    return [
        (split.rep_id, deal.amount * split.percent / HUNDRED, split.percent / HUNDRED)
        for split in deal.splits
    ]
