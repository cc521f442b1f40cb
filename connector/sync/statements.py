"""Assembling statements: the engine's one entry point, :func:`calculate`.

For each plan member the engine keeps one *ledger* per plan (a rep who moves
plans starts a new ledger: ``k`` restarts and the draw balance stays with the
old one). A ledger runs from the period holding the later of the rep's start
and the plan's start to the period holding the earliest of the rep's end, the
plan's end and the as-of date. Each period's statement is built in three
passes over the rep's ledgers, because clawbacks need the lines of earlier
periods and draws need every period's earnings:

1. commission, SPIFF and bonus lines per period;
2. clawback lines, in the period that holds each cancel date;
3. the draw ledger, period by period, and forgiveness after the last period.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from connector.errors import CalculationError
from connector.models import CalcWarning, Deal, Line, LineKind, Rep, Statement
from connector.money import CENT, ZERO, format_money, ratio, round_cents
from connector.plans import Forgive, Plan
from connector.sync import draws
from connector.sync.commission import (
    Credit,
    Schedule,
    bonus_lines,
    commission_lines,
    spiff_lines,
)
from connector.sync.credit import RepActivity, activity_by_rep, validate_deals
from connector.sync.periods import PeriodKind, label, period_of


@dataclass(frozen=True, slots=True)
class Calculation:
    statements: tuple[Statement, ...]  # sorted by rep id, then period, then plan id
    warnings: tuple[CalcWarning, ...]


@dataclass(slots=True)
class _Period:
    """A statement under construction."""

    period: int
    k: int
    quota: Decimal | None
    credits: list[Credit]
    bookings: Decimal
    lines: list[Line]
    lost_count: int
    open_pipeline: Decimal
    clawbacks: list[Line] = field(default_factory=list)


@dataclass(slots=True)
class _Ledger:
    plan: Plan
    rep: Rep
    first: int
    last: int
    start_day: date
    end_day: date
    quota: Decimal | None
    periods: dict[int, _Period] = field(default_factory=dict)


def calculate(
    plans: Sequence[Plan],
    reps: Sequence[Rep],
    deals: Sequence[Deal],
    *,
    period_kind: PeriodKind,
    as_of: date,
    rep_ids: Collection[str] | None = None,
) -> Calculation:
    """Every statement of every plan member, from their first period to the as-of period.

    With ``rep_ids``, only those members' statements are computed (an
    incremental sync recomputes the reps whose deals changed); ``deals`` must
    then hold at least every deal credited to them.

    Raises :class:`connector.errors.CalculationError` naming the record for
    inputs that cannot be computed.
    """
    validate_deals(deals)
    warnings: list[CalcWarning] = []
    ledgers = _ledgers(plans, reps, as_of, period_kind, warnings)
    if rep_ids is not None:
        wanted = set(rep_ids)
        ledgers = [ledger for ledger in ledgers if ledger.rep.id in wanted]
    by_rep: dict[str, list[_Ledger]] = {}
    for ledger in ledgers:
        by_rep.setdefault(ledger.rep.id, []).append(ledger)
    activity = activity_by_rep(deals, by_rep.keys(), period_kind)

    statements: list[Statement] = []
    # Most periods share a quota, so tier bounds are resolved once per (plan, quota).
    schedules: dict[tuple[int, Decimal | None], Schedule] = {}
    for rep_id in sorted(by_rep):
        rep_ledgers = sorted(by_rep[rep_id], key=lambda ledger: (ledger.start_day, ledger.plan.id))
        rep_activity = activity[rep_id]
        for ledger in rep_ledgers:
            _earn(ledger, rep_activity, rep_ledgers, period_kind, schedules)
        _claw_back(rep_ledgers, rep_activity, period_kind, warnings)
        for ledger in rep_ledgers:
            statements.extend(_settle(ledger, period_kind, as_of))
    statements.sort(key=lambda s: (s.rep_id, s.period, s.plan_id))
    return Calculation(tuple(statements), tuple(warnings))


def _ledgers(
    plans: Sequence[Plan],
    reps: Sequence[Rep],
    as_of: date,
    kind: PeriodKind,
    warnings: list[CalcWarning],
) -> list[_Ledger]:
    reps_by_id = {rep.id: rep for rep in reps}
    reps_by_email = {rep.email.lower(): rep for rep in reps if rep.email}
    ledgers: list[_Ledger] = []
    membership: dict[str, list[Plan]] = {}
    for plan in sorted(plans, key=lambda p: (p.start, p.id)):
        quota_by_member = {
            member.lower() if "@" in member else member: quota
            for member, quota in plan.quota_overrides.items()
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
                key = member.lower()
            else:
                rep = reps_by_id.get(member) or Rep(id=member)
                key = member
            for other in membership.get(rep.id, []):
                if _plans_overlap(plan, other):
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
            ledgers.append(
                _Ledger(
                    plan=plan,
                    rep=rep,
                    first=period_of(start_day, kind),
                    last=period_of(end_day, kind),
                    start_day=start_day,
                    end_day=end_day,
                    quota=quota,
                )
            )
    return ledgers


def _plans_overlap(a: Plan, b: Plan) -> bool:
    return a.start <= (b.end or date.max) and b.start <= (a.end or date.max)


def _owner_ledger(ledgers: Sequence[_Ledger], period: int, day: date) -> _Ledger | None:
    """The ledger that counts something dated ``day`` in ``period``.

    Two ledgers can share a period when a rep changes plans mid-period; the
    plan covering the day wins, else the earlier plan.
    """
    candidates = [ledger for ledger in ledgers if ledger.first <= period <= ledger.last]
    if len(candidates) > 1:
        covering = [ledger for ledger in candidates if ledger.plan.covers(day)]
        return (covering or candidates)[0]
    return candidates[0] if candidates else None


def _quota(ledger: _Ledger, k: int, period: int, kind: PeriodKind) -> Decimal | None:
    if ledger.quota is None:
        return None
    ramp = ledger.plan.ramp
    quota = ledger.quota * ramp[k - 1] if k <= len(ramp) else ledger.quota
    if quota <= 0:
        raise CalculationError(
            f"plan {ledger.plan.id}: rep {ledger.rep.id} has a quota of {quota} "
            f"in {label(period, kind)}; a quota must be greater than 0"
        )
    return quota


def _earn(
    ledger: _Ledger,
    activity: RepActivity,
    rep_ledgers: Sequence[_Ledger],
    kind: PeriodKind,
    schedules: dict[tuple[int, Decimal | None], Schedule],
) -> None:
    """Pass 1: commission, SPIFF and bonus lines for each of the ledger's periods."""
    plan = ledger.plan
    for period in range(ledger.first, ledger.last + 1):
        k = period - ledger.first + 1
        quota = _quota(ledger, k, period, kind)
        credits = activity.credits.get(period, [])
        lost = activity.lost.get(period, [])
        open_deals = activity.open_deals.get(period, [])
        if len(rep_ledgers) > 1:
            credits = [c for c in credits if _counts_in(ledger, rep_ledgers, period, c.deal)]
            lost = [d for d in lost if _counts_in(ledger, rep_ledgers, period, d)]
            open_deals = [d for d in open_deals if _counts_in(ledger, rep_ledgers, period, d)]
        schedule = schedules.get((id(plan), quota))
        if schedule is None:
            schedule = schedules[id(plan), quota] = Schedule.build(plan.commission, quota)
        lines = commission_lines(credits, schedule)
        lines += spiff_lines(credits, plan.spiffs)
        bookings = sum((credit.amount for credit in credits), ZERO)
        lines += bonus_lines(bookings, quota, plan.bonuses)
        open_pipeline = sum((deal.amount for deal in open_deals), ZERO)
        ledger.periods[period] = _Period(
            period, k, quota, credits, bookings, lines, len(lost), open_pipeline
        )


def _counts_in(ledger: _Ledger, rep_ledgers: Sequence[_Ledger], period: int, deal: Deal) -> bool:
    return _owner_ledger(rep_ledgers, period, deal.close_date) is ledger


def _claw_back(
    rep_ledgers: Sequence[_Ledger],
    activity: RepActivity,
    kind: PeriodKind,
    warnings: list[CalcWarning],
) -> None:
    """Pass 2: reverse what a later-cancelled deal was paid, in its cancel period."""
    for reversal in sorted(activity.reversals, key=lambda r: (r.deal.close_date, r.deal.id)):
        deal = reversal.deal
        assert deal.cancel_date is not None  # a Reversal is made only for cancelled deals
        paying = _owner_ledger(rep_ledgers, reversal.close_period, deal.close_date)
        if paying is None:
            continue  # never credited: nothing was paid
        window = paying.plan.clawback
        if window is None or (deal.cancel_date - deal.close_date).days > window.window_days:
            continue
        paid_in = paying.periods[reversal.close_period]
        paid = sum(
            (
                line.amount
                for line in paid_in.lines
                if line.deal_id == deal.id and line.kind in (LineKind.COMMISSION, LineKind.SPIFF)
            ),
            ZERO,
        )
        landing = _owner_ledger(rep_ledgers, reversal.cancel_period, deal.cancel_date)
        paid_label = label(reversal.close_period, kind)
        if landing is None:
            rep_id = rep_ledgers[0].rep.id
            warnings.append(
                CalcWarning(
                    f"rep {rep_id}: clawback of {format_money(-paid)} for deal {deal.id} "
                    f"dropped: no statement in {label(reversal.cancel_period, kind)}"
                )
            )
            continue
        landing.periods[reversal.cancel_period].clawbacks.append(
            Line(
                LineKind.CLAWBACK,
                deal.id,
                round_cents(-paid),
                None,
                f"deal cancelled {deal.cancel_date}, {(deal.cancel_date - deal.close_date).days} "
                f"days after closing; reverses what it earned in {paid_label}",
                paid_period=paid_label,
            )
        )


def _settle(ledger: _Ledger, kind: PeriodKind, as_of: date) -> list[Statement]:
    """Pass 3: totals, the draw ledger, forgiveness and KPIs; one statement per period."""
    plan = ledger.plan
    balance = ZERO
    statements: list[Statement] = []
    forgive_at_end = _forgives(ledger, as_of)
    for period in range(ledger.first, ledger.last + 1):
        work = ledger.periods[period]
        lines = work.lines + work.clawbacks
        commission = spiffs = bonuses = clawbacks = ZERO
        for line in lines:
            if line.kind is LineKind.COMMISSION:
                commission += line.amount
            elif line.kind is LineKind.SPIFF:
                spiffs += line.amount
            elif line.kind is LineKind.BONUS:
                bonuses += line.amount
            else:
                clawbacks += line.amount
        earnings = commission + spiffs + bonuses + clawbacks
        step = draws.step(plan.draw, work.k, earnings, balance)
        balance = step.balance
        forgiven = ZERO
        if period == ledger.last and forgive_at_end:
            forgiven, balance = balance, ZERO
        bookings = work.bookings
        won = len(work.credits)
        lost = work.lost_count
        statements.append(
            Statement(
                rep_id=ledger.rep.id,
                plan_id=plan.id,
                period=label(period, kind),
                quota=work.quota,
                bookings=bookings,
                # Shown to 4 places; thresholds compared exact bookings in pass 1.
                attainment=ratio(bookings, work.quota) if work.quota is not None else None,
                commission=commission,
                spiffs=spiffs,
                bonuses=bonuses,
                clawbacks=clawbacks,
                earnings=earnings,
                draw=step.draw,
                draw_paid=step.paid,
                draw_recovered=step.recovered,
                draw_balance=balance,
                draw_forgiven=forgiven,
                payout=step.payout,
                won_count=won,
                lost_count=lost,
                win_rate=_win_rate(won, lost),
                average_deal_size=_average(bookings, won) if won else None,
                open_pipeline=work.open_pipeline,
                lines=tuple(lines),
                draw_advanced=step.advanced,
            )
        )
    return statements


@cache
def _win_rate(won: int, lost: int) -> Decimal | None:
    return ratio(Decimal(won), Decimal(won + lost)) if won + lost else None


def _average(bookings: Decimal, count: int) -> Decimal:
    """``bookings / count`` to the cent, rounded once.

    One Decimal division then a quantize rounds once in effect: a quotient of a
    d-decimal amount by a count c that is not exactly a half cent lies at least
    10^-max(d, 3) / c away from one, far more than the 28-digit division's
    error for any amount with a dozen decimals or fewer (split credits have 6).
    """
    return (bookings / count).quantize(CENT, rounding=ROUND_HALF_UP)


def _forgives(ledger: _Ledger, as_of: date) -> bool:
    """Whether the balance left after the ledger's last period is written off."""
    draw = ledger.plan.draw
    if draw is None or draw.forgive is Forgive.NEVER:
        return False
    plan, rep = ledger.plan, ledger.rep
    if draw.forgive is Forgive.ON_TERMINATION:
        return rep.end_date is not None and plan.covers(rep.end_date) and rep.end_date <= as_of
    # at_plan_end: only once the plan is over, and not for a rep who left before its end.
    return (
        plan.end is not None
        and plan.end <= as_of
        and (rep.end_date is None or rep.end_date >= plan.end)
    )
