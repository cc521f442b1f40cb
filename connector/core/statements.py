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
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache, lru_cache

from connector.core import draws, kpis
from connector.core.commission import (
    Credit,
    Schedule,
    bonus_lines,
    commission_lines,
    spiff_lines,
)
from connector.core.credit import RepActivity, activity_by_rep, validate_deals
from connector.core.goals import Matcher, PreparedGoal, TeamIndex, measure, prepare
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
from connector.core.periods import PeriodKind, first_day, label, period_of
from connector.core.plans import Forgive, Payee, Plan, TargetSource
from connector.errors import CalculationError


@dataclass(frozen=True, slots=True)
class Calculation:
    statements: tuple[Statement, ...]  # sorted by rep id, then period, then plan id
    warnings: tuple[CalcWarning, ...]
    # Team goals by team and period (sorted by plan, period, team, goal): the managers' view.
    teams: tuple[TeamResult, ...] = ()


@dataclass(slots=True)
class _Period:
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


@dataclass(slots=True)
class _Ledger:
    plan: Plan
    rep: Rep
    first: int
    last: int
    start_day: date
    end_day: date
    quota: Decimal | None
    member: str  # as the plan lists it (id or email), for overrides
    periods: dict[int, _Period] = field(default_factory=dict)
    quotas: dict[int, Decimal | None] = field(default_factory=dict)
    targets: dict[tuple[str, int], Decimal | None] = field(default_factory=dict)

    def reference_day(self, period: int, kind: PeriodKind) -> date:
        """The day whose team counts for a period: its last day on this ledger."""
        return min(_last_day(period, kind), self.end_day)


@cache
def _last_day(period: int, kind: PeriodKind) -> date:
    return first_day(period + 1, kind) - timedelta(days=1)


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
    ledgers = _ledgers(plans, reps, as_of, period_kind, warnings)
    index = TeamIndex(teams)
    team_goals = bool(index) and any(plan.team_goals for plan in plans)
    if rep_ids is not None:
        wanted = reps_to_compute(plans, teams, rep_ids, index)
        ledgers = [ledger for ledger in ledgers if ledger.rep.id in wanted]
    by_rep: dict[str, list[_Ledger]] = {}
    for ledger in ledgers:
        by_rep.setdefault(ledger.rep.id, []).append(ledger)
    activity = activity_by_rep(deals, by_rep.keys(), period_kind)
    prepared = {plan.id: prepare(plan) for plan in plans}
    _resolve_targets(ledgers, crm_quotas, period_kind, prepared)
    lead_counts = _leads_by_period(leads, by_rep.keys(), period_kind)

    # Most periods share a quota, so tier bounds are resolved once per (plan, quota).
    schedules: dict[tuple[int, Decimal | None], Schedule] = {}
    ordered = {
        rep_id: sorted(by_rep[rep_id], key=lambda ledger: (ledger.start_day, ledger.plan.id))
        for rep_id in sorted(by_rep)
    }
    for rep_id, rep_ledgers in ordered.items():
        for ledger in rep_ledgers:
            _earn(ledger, activity[rep_id], rep_ledgers, schedules, prepared)
    team_results = (
        _team_goals(plans, ordered, index, period_kind, prepared, warnings) if team_goals else []
    )
    statements: list[Statement] = []
    for rep_id, rep_ledgers in ordered.items():
        _claw_back(rep_ledgers, activity[rep_id], period_kind, warnings)
        for ledger in rep_ledgers:
            statements.extend(_settle(ledger, period_kind, as_of, lead_counts))
    statements.sort(key=lambda s: (s.rep_id, s.period, s.plan_id))
    return Calculation(tuple(statements), tuple(warnings), tuple(team_results))


def reps_to_compute(
    plans: Sequence[Plan],
    teams: Sequence[TeamSpell],
    rep_ids: Collection[str],
    index: TeamIndex | None = None,
) -> set[str]:
    """The reps a recomputation of ``rep_ids`` must include: with team goals, their teammates."""
    if not any(plan.team_goals for plan in plans):
        return set(rep_ids)
    return (index or TeamIndex(teams)).teammates(rep_ids)


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
                    member=key,
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


def _ramped(base: Decimal, ramp: Sequence[Decimal], k: int) -> Decimal:
    return base * ramp[k - 1] if k <= len(ramp) else base


Prepared = Mapping[str, tuple[tuple[PreparedGoal, ...], tuple[PreparedGoal, ...]]]


def _resolve_targets(
    ledgers: Sequence[_Ledger], crm_quotas: Sequence[CrmQuota], kind: PeriodKind, goals: Prepared
) -> None:
    """Each ledger period's quota and individual goal targets, from the plan or the CRM.

    A CRM figure counts in the period holding its start date (monthly CRM quotas
    add up in a quarter); a CRM figure of 0 is no quota. A rep-period the CRM has
    no figure for takes the plan's (the fallback), else it is an error that names
    every such rep-period at once.
    """
    amounts: dict[tuple[str, int], Decimal] = {}
    quantities: dict[tuple[str, int], Decimal] = {}
    for crm_quota in crm_quotas:
        key = (crm_quota.rep_id, period_of(crm_quota.start_date, kind))
        if crm_quota.amount is not None:
            amounts[key] = amounts.get(key, ZERO) + crm_quota.amount
        if crm_quota.quantity is not None:
            quantities[key] = quantities.get(key, ZERO) + crm_quota.quantity
    missing: dict[tuple[str, str], dict[str, list[int]]] = {}
    for ledger in ledgers:
        plan, rep_id = ledger.plan, ledger.rep.id
        bases = [
            (prepared, prepared.goal.target_for(ledger.member)) for prepared in goals[plan.id][0]
        ]
        for period in range(ledger.first, ledger.last + 1):
            k = period - ledger.first + 1
            fallback = None if ledger.quota is None else _ramped(ledger.quota, plan.ramp, k)
            quota = fallback
            if plan.quota_source is TargetSource.CRM:
                quota = amounts.get((rep_id, period)) or fallback
                if quota is None:
                    missing.setdefault((plan.id, "quota"), {}).setdefault(rep_id, []).append(period)
            if quota is not None and quota <= 0:
                raise CalculationError(
                    f"plan {plan.id}: rep {rep_id} has a quota of {quota} "
                    f"in {label(period, kind)}; a quota must be greater than 0"
                )
            ledger.quotas[period] = quota
            for prepared, base in bases:
                goal = prepared.goal
                target = None if base is None else _ramped(base, prepared.ramp, k)
                if goal.target_source is TargetSource.CRM:
                    target = quantities.get((rep_id, period)) or target
                    if target is None:
                        what = (plan.id, f"{prepared.key} target")
                        missing.setdefault(what, {}).setdefault(rep_id, []).append(period)
                ledger.targets[prepared.key, period] = target
    if missing:
        raise CalculationError(
            "; ".join(
                f"plan {plan_id}: the CRM has no {what} for {_listing(by_rep, kind)}: enter "
                f"them in the CRM, or set {_fallback(what)} in spm.yaml to fall back on"
                for (plan_id, what), by_rep in sorted(missing.items())
            )
        )


def _fallback(what: str) -> str:
    """The spm.yaml setting that stands in for a missing CRM figure (``what`` of the error)."""
    if what == "quota":
        return "the plan's quota"
    return f"the {what.removesuffix(' target')} goal's target"


def _listing(by_rep: Mapping[str, list[int]], kind: PeriodKind, shown: int = 10) -> str:
    """``r1 2026-03; r2 2026-01 to 2026-12``: each rep's missing periods, runs as ranges."""
    parts: list[str] = []
    for rep_id in sorted(by_rep):
        periods = sorted(by_rep[rep_id])
        runs: list[list[int]] = []
        for period in periods:
            if runs and period == runs[-1][-1] + 1:
                runs[-1].append(period)
            else:
                runs.append([period])
        text = ", ".join(
            label(run[0], kind)
            if len(run) == 1
            else f"{label(run[0], kind)} to {label(run[-1], kind)}"
            for run in runs
        )
        parts.append(f"rep {rep_id} {text}")
    listed = ", ".join(parts[:shown])
    return f"{listed} and {len(parts) - shown} more reps" if len(parts) > shown else listed


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
    ledger: _Ledger,
    activity: RepActivity,
    rep_ledgers: Sequence[_Ledger],
    schedules: dict[tuple[int, Decimal | None], Schedule],
    prepared: Prepared,
) -> None:
    """Pass 1: commission, SPIFF and bonus lines, and individual goals, for each period."""
    plan = ledger.plan
    goals = prepared[plan.id][0]
    targets = ledger.targets
    quota_bonuses = [bonus for bonus in plan.bonuses if bonus.goal is None]
    results_seen: dict[tuple[str, Decimal | None, Decimal], GoalResult] = {}
    for period in range(ledger.first, ledger.last + 1):
        k = period - ledger.first + 1
        quota = ledger.quotas[period]
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
        lines += bonus_lines(bookings, quota, quota_bonuses)
        results: list[GoalResult] = []
        for goal in goals:
            target = targets[goal.key, period]
            actual = measure(goal.revenue, credits, goal.matches) if credits else ZERO
            # Count goals repeat a few (target, actual) pairs across thousands of
            # rep-periods: share one immutable result for each.
            known = (goal.key, target, actual)
            result = results_seen.get(known)
            if result is None:
                result = results_seen[known] = _result(goal, None, target, actual)
            results.append(result)
            if goal.bonuses and target is not None:
                lines += _goal_bonuses(goal, actual, target, None)
        open_pipeline = sum((deal.amount for deal in open_deals), ZERO)
        ledger.periods[period] = _Period(
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


def _result(
    goal: PreparedGoal, team_id: str | None, target: Decimal | None, actual: Decimal
) -> GoalResult:
    attainment = None if target is None else _attainment(actual, target)
    return GoalResult(goal.key, goal.metric, team_id, target, actual, attainment)


@lru_cache(maxsize=65536)
def _attainment(actual: Decimal, target: Decimal) -> Decimal:
    # Count goals repeat the same few (deals, target) pairs in every rep-period.
    return ratio(actual, target)


def _goal_bonuses(
    goal: PreparedGoal, actual: Decimal, target: Decimal, payee: Payee | None
) -> list[Line]:
    """The bonus lines ``goal`` pays at ``actual`` (only ``payee``'s, for a team goal)."""
    return [
        Line(LineKind.BONUS, None, amount, None, rule)
        for at, amount, paid_to, rule in goal.bonuses
        if (payee is None or paid_to is payee) and actual >= at * target
    ]


def _team_goals(
    plans: Sequence[Plan],
    ledgers: Mapping[str, Sequence[_Ledger]],
    index: TeamIndex,
    kind: PeriodKind,
    prepared: Prepared,
    warnings: list[CalcWarning],
) -> list[TeamResult]:
    """Pass 2: each team's metric, its members' team goal results, and team bonuses.

    A team's metric adds every credit of every rep computed (on any plan) whose
    team on the deal's close date is that team: a credit counts once, for one
    team. The team goal of plan P is shown to, and pays, the P members on the
    team on the period's last day (their last day, if they left).
    """
    goals = [
        (plan, goal) for plan in sorted(plans, key=lambda p: p.id) for goal in prepared[plan.id][1]
    ]
    # Goals with the same metric and filter share one sum.
    signatures: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    measures: list[tuple[bool, Matcher | None]] = []
    for _, goal in goals:
        signature = _signature(goal)
        if signature not in signatures:
            signatures[signature] = len(measures)
            measures.append((goal.revenue, goal.matches))
    totals = _team_totals(ledgers, index, measures)
    results: list[TeamResult] = []
    members_of: dict[str, dict[tuple[int, str], list[_Ledger]]] = {}
    for plan, goal in goals:
        number = signatures[_signature(goal)]
        if plan.id not in members_of:
            members_of[plan.id] = _team_members(plan, ledgers, index, kind)
        for (period, team), team_ledgers in sorted(members_of[plan.id].items()):
            target = goal.goal.target_for(team)
            assert target is not None  # team goals always have a target in spm.yaml
            actual = totals.get((number, team, period), ZERO)
            result = _result(goal, team, target, actual)
            manager = index.managers.get(team)
            results.append(
                TeamResult(
                    plan.id,
                    label(period, kind),
                    team,
                    manager,
                    tuple(sorted(ledger.rep.id for ledger in team_ledgers)),
                    result,
                )
            )
            for ledger in team_ledgers:
                work = ledger.periods[period]
                work.goals.append(result)
                if goal.bonuses:
                    work.lines += _goal_bonuses(goal, actual, target, Payee.MEMBERS)
            manager_lines = _goal_bonuses(goal, actual, target, Payee.MANAGER)
            if manager_lines:
                _pay_manager(manager, team, period, manager_lines, ledgers, kind, warnings)
    results.sort(key=lambda r: (r.plan_id, r.period, r.team_id, r.goal.goal_id))
    return results


def _team_totals(
    ledgers: Mapping[str, Sequence[_Ledger]],
    index: TeamIndex,
    measures: Sequence[tuple[bool, Matcher | None]],
) -> dict[tuple[int, str, int], Decimal]:
    """(measure, team, period) → the sum over every computed credit of that team."""
    totals: dict[tuple[int, str, int], Decimal] = {}
    get = totals.get
    for rep_id, rep_ledgers in ledgers.items():
        always = index.always(rep_id)
        for ledger in rep_ledgers:
            for period, work in ledger.periods.items():
                if not work.credits:
                    continue
                if always is not None:
                    # One team all along (the common case): sum the period at once.
                    for number, (revenue, matches) in enumerate(measures):
                        if revenue and matches is None:
                            value = work.bookings
                        else:
                            value = measure(revenue, work.credits, matches)
                        key = (number, always, period)
                        totals[key] = get(key, ZERO) + value
                    continue
                for credit in work.credits:
                    team = index.team_of(rep_id, credit.deal.close_date)
                    if team is None:
                        continue
                    for number, (revenue, matches) in enumerate(measures):
                        value = measure(revenue, (credit,), matches)
                        key = (number, team, period)
                        totals[key] = get(key, ZERO) + value
    return totals


def _team_members(
    plan: Plan, ledgers: Mapping[str, Sequence[_Ledger]], index: TeamIndex, kind: PeriodKind
) -> dict[tuple[int, str], list[_Ledger]]:
    """(period, team) → the plan's ledgers on that team on the period's reference day."""
    members: dict[tuple[int, str], list[_Ledger]] = {}
    for rep_ledgers in ledgers.values():
        for ledger in rep_ledgers:
            if ledger.plan is not plan:
                continue
            always = index.always(ledger.rep.id)
            for period in ledger.periods:
                team = always or index.team_of(ledger.rep.id, ledger.reference_day(period, kind))
                if team is not None:
                    members.setdefault((period, team), []).append(ledger)
    return members


def _signature(goal: PreparedGoal) -> tuple[str, tuple[tuple[str, str], ...]]:
    return goal.metric, tuple(sorted(goal.goal.when.items()))


def _pay_manager(
    manager: str | None,
    team: str,
    period: int,
    lines: list[Line],
    ledgers: Mapping[str, Sequence[_Ledger]],
    kind: PeriodKind,
    warnings: list[CalcWarning],
) -> None:
    own = ledgers.get(manager, ()) if manager is not None else ()
    candidates = [ledger for ledger in own if ledger.first <= period <= ledger.last]
    if not candidates:
        why = (
            f"manager {manager} has no statement in {label(period, kind)}"
            if manager
            else "has no manager (list it under teams: with a manager)"
        )
        warnings.append(CalcWarning(f"team {team}: {why}; the manager's team bonus is not paid"))
        return
    candidates[0].periods[period].lines.extend(lines)


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


def _settle(
    ledger: _Ledger,
    kind: PeriodKind,
    as_of: date,
    leads: Mapping[tuple[str, int], list[Lead]] | None,
) -> list[Statement]:
    """Pass 4: totals, the draw ledger, forgiveness and KPIs; one statement per period."""
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
                sales_cycle_days=kpis.sales_cycle_days(work.credits),
                pipeline_coverage=kpis.pipeline_coverage(work.open_pipeline, bookings, work.quota),
                pace=kpis.pace(bookings, work.quota, period, kind, as_of),
                to_next_tier=kpis.to_next_tier(bookings, work.bounds),
                lead_to_sale=(
                    None if leads is None else kpis.lead_to_sale(leads.get((ledger.rep.id, period)))
                ),
                goals=tuple(work.goals),
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
