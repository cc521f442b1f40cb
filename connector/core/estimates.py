"""What an open deal would pay if it closed today at its amount.

For each open deal and each rep it would credit (its split reps, else its
owner), the deal is added, won today, to the rep's credits of today's period on
the plan in force, and the period's commission and SPIFF lines are computed
again with it: the estimate is the sum of the lines that deal earns. Tier
position, caps, SPIFF filters and plan versions are those the real close
would meet, because it is the same computation; a deal that then closes today
with nothing else changed earns exactly its last estimate (tests hold this).

Bonuses are not per deal and are left out: a deal that tips the rep over a
bonus threshold earns the bonus as the period's line, not the deal's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from connector.core.commission import Credit, Schedule, commission_lines, spiff_lines
from connector.core.ledgers import Ledger, owner_ledger
from connector.core.models import Deal, DealStatus, LineKind
from connector.core.money import HUNDRED, ONE, ZERO
from connector.core.periods import PeriodKind, period_of

_EARNING = frozenset({LineKind.COMMISSION, LineKind.SPIFF})


@dataclass(frozen=True, slots=True)
class Estimates:
    by_deal: Mapping[str, Decimal]  # all its reps together
    by_rep: Mapping[str, Decimal]  # each rep's open pipeline, deal by deal


def estimate(
    ordered: Mapping[str, Sequence[Ledger]],
    deals: Iterable[Deal],
    as_of: date,
    kind: PeriodKind,
    schedules: dict[tuple[int, Decimal | None], Schedule],
) -> Estimates:
    """Estimates for every open deal credited to a rep in ``ordered`` (after pass 1)."""
    period = period_of(as_of, kind)
    by_deal: dict[str, Decimal] = {}
    by_rep: dict[str, Decimal] = {}
    for deal in deals:
        if deal.status is not DealStatus.OPEN:
            continue
        if deal.splits:
            shares = [(s.rep_id, deal.amount * s.percent / HUNDRED, s.percent / HUNDRED)
                      for s in deal.splits]  # fmt: skip
        else:
            shares = [(deal.owner_id, deal.amount, ONE)]
        won = deal._replace(status=DealStatus.WON, close_date=as_of)
        for rep_id, amount, share in shares:
            ledger = owner_ledger(ordered.get(rep_id, ()), period, as_of)
            if ledger is None or period not in ledger.periods:
                continue
            value = _earned(ledger, period, kind, Credit(won, amount, share), schedules)
            by_deal[deal.id] = by_deal.get(deal.id, ZERO) + value
            by_rep[rep_id] = by_rep.get(rep_id, ZERO) + value
    return Estimates(by_deal, by_rep)


def _earned(
    ledger: Ledger,
    period: int,
    kind: PeriodKind,
    credit: Credit,
    schedules: dict[tuple[int, Decimal | None], Schedule],
) -> Decimal:
    work = ledger.periods[period]
    plan = ledger.rules(period, kind)
    schedule = schedules.get((id(plan), work.quota))
    if schedule is None:
        schedule = schedules[id(plan), work.quota] = Schedule.build(plan.commission, work.quota)
    credits = sorted([*work.credits, credit], key=lambda c: (c.deal.close_date, c.deal.id))
    lines = commission_lines(credits, schedule) + spiff_lines([credit], plan.spiffs)
    deal_id = credit.deal.id
    return sum(
        (line.amount for line in lines if line.deal_id == deal_id and line.kind in _EARNING),
        ZERO,
    )
