"""Ledgers: one per plan member and plan, the periods a statement is built for.

A rep who moves plans starts a new ledger (``k`` restarts, the draw balance stays
with the old one). A ledger runs from the period holding the later of the rep's
start and the plan's start to the period holding the earliest of the rep's end,
the plan's end and the as-of date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cache

from connector.core.commission import Credit
from connector.core.models import CalcWarning, GoalResult, Line, Rep
from connector.core.periods import PeriodKind, first_day, period_of
from connector.core.plans import Plan, member_key
from connector.errors import CalculationError


@dataclass(slots=True)
class Period:
    """A statement under construction."""

    k: int
    quota: Decimal | None
    credits: list[Credit]
    bookings: Decimal
    lines: list[Line]
    lost_count: int
    open_pipeline: Decimal
    bounds: tuple[Decimal, ...] = ()  # tier bounds in money, for the gap to the next tier
    clawbacks: list[Line] = field(default_factory=list)
    goals: list[GoalResult] = field(default_factory=list)
    # Late changes to closed periods that land here (closing.py).
    adjustments: list[Line] = field(default_factory=list)
    # A period added after the ledger's end only to carry adjustments: no draw is paid.
    settlement: bool = False
    # What the rep's open deals would pay if each closed on the as-of day (estimates.py).
    estimated: Decimal | None = None


@dataclass(slots=True)
class Ledger:
    plan: Plan
    rep: Rep
    first: int
    last: int
    start_day: date
    end_day: date
    quota: Decimal | None
    member: str  # as the plan lists it (id or email), for overrides
    overridden: bool = False  # the quota is the member's own (quota_overrides), in every version
    periods: dict[int, Period] = field(default_factory=dict)
    quotas: dict[int, Decimal | None] = field(default_factory=dict)
    targets: dict[tuple[str, int], Decimal | None] = field(default_factory=dict)

    def rules(self, period: int, kind: PeriodKind) -> Plan:
        """The plan's rules in force in ``period`` (its version from the period's first day)."""
        if not self.plan.versions:
            return self.plan
        return self.plan.in_force(first_day(period, kind))

    def reference_day(self, period: int, kind: PeriodKind) -> date:
        """The day whose team counts for a period: its last day on this ledger."""
        return min(last_day(period, kind), self.end_day)


@cache
def last_day(period: int, kind: PeriodKind) -> date:
    return first_day(period + 1, kind) - timedelta(days=1)


def build_ledgers(
    plans: Sequence[Plan],
    reps: Sequence[Rep],
    as_of: date,
    kind: PeriodKind,
    warnings: list[CalcWarning],
) -> list[Ledger]:
    reps_by_id = {rep.id: rep for rep in reps}
    reps_by_email = {rep.email.lower(): rep for rep in reps if rep.email}
    ledgers: list[Ledger] = []
    membership: dict[str, list[Plan]] = {}
    for plan in sorted(plans, key=lambda p: (p.start, p.id)):
        quota_by_member = {
            member_key(member): quota for member, quota in plan.quota_overrides.items()
        }
        for member in plan.members:
            if "@" in member:
                found = reps_by_email.get(member.lower())
                if found is None:
                    warnings.append(
                        CalcWarning(f"plan {plan.id}: member {member} matches no rep; skipped")
                    )
                    continue
                rep = found
                key = member_key(member)
            else:
                rep = reps_by_id.get(member) or Rep(id=member)
                key = member
            for other in membership.get(rep.id, []):
                if plans_overlap(plan, other):
                    raise CalculationError(
                        f"rep {rep.id} is in plans {other.id} and {plan.id}, "
                        "which cover the same days"
                    )
            membership.setdefault(rep.id, []).append(plan)
            start_day = max(rep.start_date or plan.start, plan.start)
            end_day = min(d for d in (rep.end_date, plan.end, as_of) if d is not None)
            if end_day < start_day:
                continue  # never on the plan before the as-of date
            quota = quota_by_member.get(key, plan.quota)
            overridden = key in quota_by_member
            ledgers.append(
                Ledger(
                    plan=plan,
                    rep=rep,
                    first=period_of(start_day, kind),
                    last=period_of(end_day, kind),
                    start_day=start_day,
                    end_day=end_day,
                    quota=quota,
                    member=key,
                    overridden=overridden,
                )
            )
    return ledgers


def plans_overlap(a: Plan, b: Plan) -> bool:
    return a.start <= (b.end or date.max) and b.start <= (a.end or date.max)


def owner_ledger(ledgers: Sequence[Ledger], period: int, day: date) -> Ledger | None:
    """The ledger that counts something dated ``day`` in ``period``.

    Two ledgers can share a period when a rep changes plans mid-period; the
    plan covering the day wins, else the earlier plan.
    """
    candidates = [ledger for ledger in ledgers if ledger.first <= period <= ledger.last]
    if len(candidates) > 1:
        covering = [ledger for ledger in candidates if ledger.plan.covers(day)]
        return (covering or candidates)[0]
    return candidates[0] if candidates else None
