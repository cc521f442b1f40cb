"""What an open deal would pay if it closed today at its amount.

For each open deal and each rep it would credit (its split reps, else its
owner), the deal is added, won today, to the rep's credits of today's period on
the plan in force, and the period's commission and SPIFF lines are computed
again with it: the estimate is the sum of the lines that deal earns. Tier
position, caps, SPIFF filters and plan versions are those the real close
would meet, because it is the same computation; a deal that then closes today
with nothing else changed earns exactly its last estimate (tests hold this).

Bonuses are not per deal and are left out: a deal that tips the rep over a
bonus threshold earns the bonus as the period's line, not the deal's. A gate
is measured with the deal in: a new customer can open the gate it counts for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from connector.core.commission import Credit
from connector.core.earning import Schedules, earned_lines
from connector.core.goals import Prepared, goal_result, measure
from connector.core.ledgers import Ledger, owner_ledger
from connector.core.models import Deal, DealStatus, LineKind
from connector.core.money import HUNDRED, ONE, ZERO
from connector.core.periods import PeriodKind, period_of
from connector.core.plans import Plan
from connector.core.trueups import window_attainment

_EARNING = frozenset({LineKind.COMMISSION, LineKind.SPIFF})


@dataclass(frozen=True, slots=True)
class Estimates:
    by_deal: Mapping[str, Decimal]  # all its reps together
    by_rep: Mapping[str, Decimal]  # each rep's open pipeline, deal by deal


def estimate(
    ordered: Mapping[str, Sequence[Ledger]],
    deals: Iterable[Deal],
    when: tuple[date, PeriodKind],
    schedules: Schedules,
    prepared: Prepared,
) -> Estimates:
    """Estimates for every open deal credited to a rep in ``ordered`` (after pass 1)."""
    as_of, kind = when
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
            credit = Credit(won, amount, share)
            value = _earned(ledger, (period, kind), credit, schedules, prepared)
            by_deal[deal.id] = by_deal.get(deal.id, ZERO) + value
            by_rep[rep_id] = by_rep.get(rep_id, ZERO) + value
    return Estimates(by_deal, by_rep)


def _earned(
    ledger: Ledger,
    when: tuple[int, PeriodKind],
    credit: Credit,
    schedules: Schedules,
    prepared: Prepared,
) -> Decimal:
    period, kind = when
    work = ledger.periods[period]
    plan = ledger.rules(period, kind)
    credits = sorted([*work.credits, credit], key=lambda c: (c.deal.close_date, c.deal.id))
    lines, _ = earned_lines(
        plan, work.quota, credits, _gate_attainment(ledger, plan, when, credits, prepared),
        schedules,
    )  # fmt: skip
    deal_id = credit.deal.id
    return sum(
        (line.amount for line in lines if line.deal_id == deal_id and line.kind in _EARNING),
        ZERO,
    )


def _gate_attainment(
    ledger: Ledger,
    plan: Plan,
    when: tuple[int, PeriodKind],
    credits: Sequence[Credit],
    prepared: Prepared,
) -> Decimal | None:
    """The gate's goal with the deal in: a deal can open the gate it is measured against
    (over the period, or the quarter or year to date)."""
    gate = plan.commission.gate
    if gate is None:
        return None
    period, kind = when
    goal = next(g for g in prepared[ledger.plan.id][0] if g.key == gate.goal)
    target = ledger.targets[goal.key, period]
    if target is None:
        return None
    result = goal_result(goal, None, target, measure(goal.revenue, credits, goal.matches))
    return window_attainment(ledger, period, kind, gate.level, result)
