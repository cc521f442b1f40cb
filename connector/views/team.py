"""The team at a glance: what the reports page shows, computed from stored statements.

Pure: statements, users, plans and today's date in; rows and totals out. Pace
is attainment so far against the share of the period gone by; the gap to the
next tier is what a manager coaches on ("3,200 more and the rate goes to 12 %").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from connector.core import kpis
from connector.core.models import CrmUser, PeriodKind, Statement
from connector.core.periods import parse_label
from connector.core.plans import Plan, TiersOn

ZERO = Decimal(0)


@dataclass(frozen=True)
class RepRow:
    rep_id: str
    name: str
    email: str
    plan_id: str
    quota: Decimal | None
    bookings: Decimal
    attainment: Decimal | None
    payout: Decimal
    draw_balance: Decimal
    pace: Decimal | None  # attainment projected to the period's end at this rate
    next_tier_gap: Decimal | None  # bookings still needed to reach the next tier
    next_rate: Decimal | None


@dataclass(frozen=True)
class Team:
    period: str
    currency: str
    elapsed: Decimal  # share of the period gone by, 0..1
    rows: tuple[RepRow, ...]  # by attainment, highest first
    payouts_by_period: tuple[tuple[str, Decimal], ...]

    @property
    def total_bookings(self) -> Decimal:
        return sum((r.bookings for r in self.rows), ZERO)

    @property
    def total_quota(self) -> Decimal:
        return sum((r.quota or ZERO for r in self.rows), ZERO)

    @property
    def total_payout(self) -> Decimal:
        return sum((r.payout for r in self.rows), ZERO)

    @property
    def draws_outstanding(self) -> tuple[RepRow, ...]:
        return tuple(
            sorted(
                (r for r in self.rows if r.draw_balance > 0),
                key=lambda r: r.draw_balance,
                reverse=True,
            )
        )


def elapsed_share(period: str, kind: PeriodKind, today: date) -> Decimal:
    """How much of ``period`` has gone by on ``today`` (whole days, today included)."""
    gone, length = kpis.elapsed_days(parse_label(period, kind), kind, today)
    return Decimal(gone) / Decimal(length) if gone < length else Decimal(1)


def _next_tier(plan: Plan | None, statement: Statement) -> tuple[Decimal | None, Decimal | None]:
    """(bookings still needed, the rate there) for the tier above the rep's current one."""
    if plan is None:
        return None, None
    commission = plan.commission
    if commission.tiers_on is TiersOn.ATTAINMENT:
        if statement.quota is None or statement.quota <= 0:
            return None, None
        scale = statement.quota
    else:
        scale = Decimal(1)
    tiers = commission.tiers
    bounds = [tier.up_to * scale for tier in tiers[:-1] if tier.up_to is not None]
    gap = kpis.to_next_tier(statement.bookings, bounds)
    if gap is None:
        return None, None
    above = next(i for i, bound in enumerate(bounds) if bound > statement.bookings)
    return gap, tiers[above + 1].rate


def team_view(
    statements: Sequence[Statement],
    users: Mapping[str, CrmUser],
    plans: Sequence[Plan],
    payouts: Mapping[str, Decimal],
    *,
    period: str,
    kind: PeriodKind,
    currency: str,
    today: date,
) -> Team:
    by_plan = {plan.id: plan for plan in plans}
    elapsed = elapsed_share(period, kind, today)
    rows: list[RepRow] = []
    for s in statements:
        if s.period != period:
            continue
        user = users.get(s.rep_id)
        # As of today, as the page says (the statement's own pace is as of the last sync).
        pace = kpis.pace(s.bookings, s.quota, parse_label(s.period, kind), kind, today)
        gap, rate = _next_tier(by_plan.get(s.plan_id), s)
        rows.append(
            RepRow(
                s.rep_id,
                (user.name if user else "") or s.rep_id,
                user.email if user else "",
                s.plan_id,
                s.quota,
                s.bookings,
                s.attainment,
                s.payout,
                s.draw_balance,
                pace,
                gap,
                rate,
            )
        )
    rows.sort(key=lambda r: (-(r.attainment or Decimal(-1)), r.name, r.rep_id))
    return Team(
        period,
        currency,
        elapsed,
        tuple(rows),
        tuple(sorted(payouts.items())),
    )
