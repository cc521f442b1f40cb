"""Assembling statements: the engine's one entry point, :func:`calculate`.

For each plan member the engine keeps one *ledger* per plan (a rep who moves
plans starts a new ledger: ``k`` restarts and the draw balance stays with the
old one). A ledger runs from the period holding the later of the rep's start
and the plan's start to the period holding the earliest of the rep's end, the
plan's end and the as-of date. Each period's statement is built in three
passes over the rep's ledgers, because clawbacks need the lines of earlier
periods and draws need every period's earnings:

1. commission, SPIFF and bonus lines per period, and individual goals;
2. team goals, which need every member's pass 1, and the team bonuses they pay;
3. clawback lines, in the period that holds each cancel date;
4. the draw ledger, KPIs, period by period, and forgiveness after the last period.

With :class:`~connector.core.closing.Books` (the pay cycle), closed periods come
back as they were closed, and what the current data would change in them lands
as adjustment lines in the first open period, before pass 4 (closing.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from connector.core import draws, kpis
from connector.core.closing import NO_BOOKS, Books, late_changes
from connector.core.commission import (
    bonus_lines,
)
from connector.core.credit import RepActivity, activity_by_rep, validate_deals
from connector.core.earning import Schedules, earned_lines
from connector.core.estimates import estimate as estimate_open
from connector.core.goals import (
    Prepared,
    TeamIndex,
    goal_bonuses,
    goal_result,
    measure,
    prepare,
)
from connector.core.holdbacks import held_by_deal, hold, hold_deals, paid_day, releases
from connector.core.ledgers import Ledger, Period, build_ledgers, owner_ledger
from connector.core.models import (
    CalcWarning,
    CrmQuota,
    Deal,
    GoalResult,
    Lead,
    Line,
    LineKind,
    Rep,
    Statement,
    TeamResult,
    TeamSpell,
)
from connector.core.money import CENT, ZERO, format_money, ratio, round_cents
from connector.core.overrides import NO_LINES, ReportingLines, has_overrides, pay_overrides
from connector.core.periods import PeriodKind, first_day, label, parse_label, period_of
from connector.core.plans import Forgive, Holdback, Plan, Release
from connector.core.targets import resolve_targets
from connector.core.team_goals import team_goals
from connector.core.trueups import closes, true_up, window_attainment


@dataclass(frozen=True, slots=True)
class Calculation:
    statements: tuple[Statement, ...]  # sorted by rep id, then period, then plan id
    warnings: tuple[CalcWarning, ...]
    # Team goals by team and period (sorted by plan, period, team, goal): the managers' view.
    teams: tuple[TeamResult, ...] = ()
    # With ``estimate``: what each open deal would pay its reps if it closed on the as-of day.
    estimates: Mapping[str, Decimal] = field(default_factory=dict)


def calculate(
    plans: Sequence[Plan],
    reps: Sequence[Rep],
    deals: Sequence[Deal],
    *,
    period_kind: PeriodKind,
    as_of: date,
    rep_ids: Collection[str] | None = None,
    teams: Sequence[TeamSpell] = (),
    crm_quotas: Sequence[CrmQuota] = (),
    leads: Sequence[Lead] | None = None,
    books: Books = NO_BOOKS,
    estimate: bool = False,
    reporting: ReportingLines = NO_LINES,
) -> Calculation:
    """Every statement of every plan member, from their first period to the as-of period.

    With ``rep_ids``, only those members' statements are computed (an
    incremental sync recomputes the reps whose deals changed), and with team
    goals their teammates' too, since a team's figure needs all of them;
    ``deals`` must then hold at least every deal credited to those reps
    (:func:`reps_to_compute` says who they are).

    ``teams`` are the team memberships, ``crm_quotas`` the quotas the CRM
    holds (for plans with ``quota_source: crm`` or goals with
    ``target_source: crm``), ``leads`` the leads for the lead-to-sale ratio
    (None: not read, the ratio stays empty).

    Raises :class:`connector.errors.CalculationError` naming the record for
    inputs that cannot be computed.
    """
    validate_deals(deals)
    warnings: list[CalcWarning] = []
    ledgers = build_ledgers(plans, reps, as_of, period_kind, warnings)
    index = TeamIndex(teams)
    with_teams = bool(index) and any(plan.team_goals for plan in plans)
    if rep_ids is not None:
        wanted = reps_to_compute(plans, teams, rep_ids, index, reporting)
        ledgers = [ledger for ledger in ledgers if ledger.rep.id in wanted]
    by_rep: dict[str, list[Ledger]] = {}
    for ledger in ledgers:
        by_rep.setdefault(ledger.rep.id, []).append(ledger)
    activity = activity_by_rep(deals, by_rep.keys(), period_kind)
    prepared = {plan.id: prepare(plan) for plan in plans}
    resolve_targets(ledgers, crm_quotas, period_kind, prepared)
    lead_counts = _leads_by_period(leads, by_rep.keys(), period_kind)

    # Most periods share a quota, so tier bounds are resolved once per (plan, quota).
    schedules: Schedules = {}
    ordered = {
        rep_id: sorted(by_rep[rep_id], key=lambda ledger: (ledger.start_day, ledger.plan.id))
        for rep_id in sorted(by_rep)
    }
    for rep_id, rep_ledgers in ordered.items():
        for ledger in rep_ledgers:
            leaves = _leaves(ledger, as_of)
            _earn(ledger, activity[rep_id], rep_ledgers, schedules, prepared, period_kind, leaves)
    if reporting and has_overrides(ledgers):
        pay_overrides(ordered, activity, reporting, period_kind)
    team_results = [
        replace(team, goal=kpis.goal_pace(team.goal, parse_label(team.period, period_kind),
                                          period_kind, as_of))
        for team in (
            team_goals(plans, ordered, index, period_kind, prepared, warnings) if with_teams else []
        )
    ]  # fmt: skip
    estimates = (
        estimate_open(ordered, deals, (as_of, period_kind), schedules, prepared)
        if estimate
        else None
    )
    if estimates is not None:
        as_of_period = period_of(as_of, period_kind)
        for rep_id, rep_ledgers in ordered.items():
            landing = owner_ledger(rep_ledgers, as_of_period, as_of)
            if landing is not None and as_of_period in landing.periods:
                landing.periods[as_of_period].estimated = estimates.by_rep.get(rep_id, ZERO)
    statements: list[Statement] = []
    closed = books.closed(period_kind)
    deals_now = {deal.id: deal for deal in deals} if closed is not None else {}
    for rep_id, rep_ledgers in ordered.items():
        _claw_back(rep_ledgers, activity[rep_id], period_kind, warnings)
        if closed is not None:
            _land_late_changes(
                rep_id, rep_ledgers, books, (closed, period_kind, as_of), deals_now, warnings
            )
        for ledger in rep_ledgers:
            statements.extend(_settle(ledger, period_kind, as_of, lead_counts, books, closed))
    if closed is not None:
        statements += _closed_without_ledger(statements, books, rep_ids, by_rep.keys())
    statements.sort(key=lambda s: (s.rep_id, s.period, s.plan_id))
    return Calculation(
        tuple(statements),
        tuple(warnings),
        tuple(team_results),
        estimates.by_deal if estimates is not None else {},
    )


def reps_to_compute(
    plans: Sequence[Plan],
    teams: Sequence[TeamSpell],
    rep_ids: Collection[str],
    index: TeamIndex | None = None,
    reporting: ReportingLines = NO_LINES,
) -> set[str]:
    """The reps a recomputation of ``rep_ids`` must include: with team goals, their
    teammates; with manager overrides, the managers above them and the reps below those."""
    wanted = set(rep_ids)
    if reporting and any(p.override or any(v.override for v in p.versions) for p in plans):
        wanted = reporting.related(wanted)
    if not any(plan.team_goals for plan in plans):
        return wanted
    return (index or TeamIndex(teams)).teammates(wanted)


def _leads_by_period(
    leads: Sequence[Lead] | None, members: Collection[str], kind: PeriodKind
) -> dict[tuple[str, int], list[Lead]] | None:
    if leads is None:
        return None
    wanted = set(members)
    buckets: dict[tuple[str, int], list[Lead]] = {}
    for lead in leads:
        if lead.owner_id in wanted:
            buckets.setdefault((lead.owner_id, period_of(lead.created_date, kind)), []).append(lead)
    return buckets


def _earn(
    ledger: Ledger,
    activity: RepActivity,
    rep_ledgers: Sequence[Ledger],
    schedules: Schedules,
    prepared: Prepared,
    kind: PeriodKind,
    leaves: bool,
) -> None:
    """Pass 1: commission, SPIFF and bonus lines, and individual goals, for each period
    (with a true-up in the periods that close a quarter or year)."""
    goals = prepared[ledger.plan.id][0]
    targets = ledger.targets
    results_seen: dict[tuple[str, Decimal | None, Decimal], GoalResult] = {}
    for period in range(ledger.first, ledger.last + 1):
        k = period - ledger.first + 1
        plan = ledger.rules(period, kind)  # the version of the plan in force
        quota_bonuses = [bonus for bonus in plan.bonuses if bonus.goal is None]
        quota = ledger.quotas[period]
        credits = activity.credits.get(period, [])
        lost = activity.lost.get(period, [])
        open_deals = activity.open_deals.get(period, [])
        if len(rep_ledgers) > 1:
            credits = [c for c in credits if _counts_in(ledger, rep_ledgers, period, c.deal)]
            lost = [d for d in lost if _counts_in(ledger, rep_ledgers, period, d)]
            open_deals = [d for d in open_deals if _counts_in(ledger, rep_ledgers, period, d)]
        results: list[GoalResult] = []
        for goal in goals:
            target = targets[goal.key, period]
            actual = measure(goal.revenue, credits, goal.matches) if credits else ZERO
            # Count goals repeat a few (target, actual) pairs across thousands of
            # rep-periods: share one immutable result for each.
            known = (goal.key, target, actual)
            result = results_seen.get(known)
            if result is None:
                result = results_seen[known] = goal_result(goal, None, target, actual)
            results.append(result)
        gate, level = plan.commission.gate, plan.commission.true_up
        gated = next((r for r in results if r.goal_id == gate.goal), None) if gate else None
        gating = window_attainment(ledger, period, kind, gate.level, gated) if gate else None
        lines, schedule = earned_lines(plan, quota, credits, gating, schedules)
        if level is not None and closes(ledger, period, kind, level, leaves):
            over_window = window_attainment(ledger, period, kind, level, gated)
            trued = true_up(ledger, plan, period, kind, (credits, lines, over_window))
            lines += [trued] if trued is not None else []
        bookings = sum((credit.amount for credit in credits), ZERO)
        lines += bonus_lines(bookings, quota, quota_bonuses)
        for goal, result in zip(goals, results, strict=True):
            if goal.bonuses and result.target is not None:
                lines += goal_bonuses(goal, result.actual, result.target, None)
        open_pipeline = sum((deal.amount for deal in open_deals), ZERO)
        ledger.periods[period] = Period(
            k,
            quota,
            credits,
            bookings,
            lines,
            len(lost),
            open_pipeline,
            schedule.bounds,
            goals=results,
        )


def _counts_in(ledger: Ledger, rep_ledgers: Sequence[Ledger], period: int, deal: Deal) -> bool:
    return owner_ledger(rep_ledgers, period, deal.close_date) is ledger


def _claw_back(
    rep_ledgers: Sequence[Ledger],
    activity: RepActivity,
    kind: PeriodKind,
    warnings: list[CalcWarning],
) -> None:
    """Pass 2: reverse what a later-cancelled deal was paid, in its cancel period."""
    for reversal in sorted(activity.reversals, key=lambda r: (r.deal.close_date, r.deal.id)):
        deal = reversal.deal
        assert deal.cancel_date is not None  # a Reversal is made only for cancelled deals
        paying = owner_ledger(rep_ledgers, reversal.close_period, deal.close_date)
        if paying is None:
            continue  # never credited: nothing was paid
        window = paying.rules(reversal.close_period, kind).clawback
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
        landing = owner_ledger(rep_ledgers, reversal.cancel_period, deal.cancel_date)
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


def _land_late_changes(
    rep_id: str,
    rep_ledgers: Sequence[Ledger],
    books: Books,
    when: tuple[int, PeriodKind, date],
    deals_now: Mapping[str, Deal],
    warnings: list[CalcWarning],
) -> None:
    """Put the adjustments the rep's closed periods owe into the first open period.

    A rep with no plan in that period (they left, or their plan ended) gets a
    settlement period on their last plan that carries only the adjustments.
    """
    closed, kind, as_of = when
    recomputed: dict[int, list[Line]] = {}
    for ledger in rep_ledgers:
        for period in range(ledger.first, min(ledger.last, closed) + 1):
            work = ledger.periods[period]
            recomputed.setdefault(period, []).extend(work.lines + work.clawbacks)
    lines = late_changes(rep_id, recomputed, books, kind, deals_now)
    if not lines:
        return
    first_open = closed + 1
    if first_open > period_of(as_of, kind):
        total = sum((line.amount for line in lines), ZERO)
        warnings.append(
            CalcWarning(
                f"rep {rep_id}: adjustments of {format_money(total)} wait for "
                f"{label(first_open, kind)}, the first open period, which is after the as-of date"
            )
        )
        return
    landing = owner_ledger(rep_ledgers, first_open, first_day(first_open, kind))
    if landing is None:
        landing = max(rep_ledgers, key=lambda ledger: (ledger.last, ledger.start_day))
        last = landing.periods[landing.last]
        landing.periods[first_open] = Period(
            last.k + first_open - landing.last, None, [], ZERO, [], 0, ZERO, settlement=True
        )
        landing.last = first_open
    landing.periods[first_open].adjustments.extend(lines)


def _closed_without_ledger(
    statements: Sequence[Statement],
    books: Books,
    rep_ids: Collection[str] | None,
    computed: Collection[str],
) -> list[Statement]:
    """Closed statements no ledger gave back (the rep left the plan since): kept as closed."""
    given = {(s.rep_id, s.plan_id, s.period) for s in statements}
    scope = books.reps() if rep_ids is None else (set(computed) | set(rep_ids)) & books.reps()
    return [
        closed
        for rep_id in sorted(scope)
        for closed in books.of_rep(rep_id)
        if (closed.rep_id, closed.plan_id, closed.period) not in given
    ]


def _settle(
    ledger: Ledger,
    kind: PeriodKind,
    as_of: date,
    leads: Mapping[tuple[str, int], list[Lead]] | None,
    books: Books = NO_BOOKS,
    closed: int | None = None,
) -> list[Statement]:
    """Pass 4: totals, the draw ledger, forgiveness and KPIs; one statement per period.

    A closed period is the statement as closed, and its closing draw balance opens
    the next period.
    """
    plan = ledger.plan
    balance = held = ZERO
    held_deals: dict[str, Decimal] = {}  # a payment holdback's, by deal
    credited: dict[str, Deal] | None = None  # the ledger's credited deals, for payments
    statements: list[Statement] = []
    forgive_at_end = _forgives(ledger, as_of)
    leaves = _leaves(ledger, as_of)
    for period in sorted(ledger.periods):
        if closed is not None and period <= closed:
            frozen = books.closed_statement(ledger.rep.id, plan.id, label(period, kind))
            if frozen is not None:
                statements.append(frozen)
                balance, held = frozen.draw_balance, frozen.held_back
                for deal_id, amount in held_by_deal(frozen.lines).items():
                    held_deals[deal_id] = held_deals.get(deal_id, ZERO) + amount
            continue
        work = ledger.periods[period]
        lines = work.lines + work.clawbacks + work.adjustments
        lines += books.manual(ledger.rep.id, plan.id, label(period, kind))
        commission = spiffs = bonuses = clawbacks = adjustments = overrides = ZERO
        for line in lines:
            if line.kind is LineKind.COMMISSION:
                commission += line.amount
            elif line.kind is LineKind.SPIFF:
                spiffs += line.amount
            elif line.kind is LineKind.BONUS:
                bonuses += line.amount
            elif line.kind is LineKind.CLAWBACK:
                clawbacks += line.amount
            elif line.kind is LineKind.OVERRIDE:
                overrides += line.amount
            else:
                adjustments += line.amount
        last = period == ledger.last and leaves
        if plan.holdback is not None and plan.holdback.release is Release.PAYMENT:
            if credited is None:
                credited = {c.deal.id: c.deal for w in ledger.periods.values() for c in w.credits}
            released = _payment_released(credited, plan.holdback, (period, kind, as_of), last)
            held_lines = hold_deals(plan.holdback, lines, held_deals, released)
            held = sum(held_deals.values(), ZERO)
        else:
            release = plan.holdback is not None and (releases(plan.holdback, period, kind) or last)
            held_lines, held = hold(plan.holdback, commission, held, release)
        lines += held_lines
        holdback = sum((line.amount for line in held_lines), ZERO)
        earnings = commission + spiffs + bonuses + overrides + clawbacks + adjustments + holdback
        draw = None if work.settlement else plan.draw
        step = draws.step(draw, work.k, earnings, balance)
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
                sales_cycle_days=kpis.sales_cycle_days(work.credits),
                pipeline_coverage=kpis.pipeline_coverage(work.open_pipeline, bookings, work.quota),
                pace=kpis.pace(bookings, work.quota, period, kind, as_of),
                to_next_tier=kpis.to_next_tier(bookings, work.bounds),
                lead_to_sale=(
                    None if leads is None else kpis.lead_to_sale(leads.get((ledger.rep.id, period)))
                ),
                goals=tuple(kpis.goal_pace(goal, period, kind, as_of) for goal in work.goals),
                adjustments=adjustments,
                estimated_commission=work.estimated,
                holdback=holdback,
                held_back=held,
                overrides=overrides,
            )
        )
    return statements


def _payment_released(
    deals: Mapping[str, Deal], holdback: Holdback, when: tuple[int, PeriodKind, date], last: bool
) -> Callable[[str], str | None]:
    """Why a deal's held share comes back in this period (None: it stays held): the
    customer paid on or before the period's end (and the as-of day), the deal was
    cancelled, or this is the rep's last period on the plan."""
    period, kind, as_of = when
    column = holdback.paid_on or ""

    def released(deal_id: str) -> str | None:
        deal = deals.get(deal_id)
        if deal is not None:
            paid = paid_day(deal, column)
            if paid is not None and paid <= as_of and period_of(paid, kind) <= period:
                return f"deal {deal_id} paid {paid}"
            if deal.cancel_date is not None and period_of(deal.cancel_date, kind) <= period:
                return f"deal {deal_id} cancelled {deal.cancel_date}"
        return "the rep's last period on the plan" if last else None

    return released


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


def _leaves(ledger: Ledger, as_of: date) -> bool:
    """Whether the ledger's last period is the rep's last on the plan (they left, or the
    plan ended): what is held back is released then."""
    plan, rep = ledger.plan, ledger.rep
    left = rep.end_date is not None and plan.covers(rep.end_date) and rep.end_date <= as_of
    return left or (plan.end is not None and plan.end <= as_of)


def _forgives(ledger: Ledger, as_of: date) -> bool:
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
