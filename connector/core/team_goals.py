"""Pass 2 of a calculation: team goals, which need every member's pass 1, and the
team bonuses they pay (to the members, or to the team's manager)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from connector.core.goals import (
    Matcher,
    Prepared,
    PreparedGoal,
    TeamIndex,
    goal_bonuses,
    goal_result,
    measure,
)
from connector.core.ledgers import Ledger
from connector.core.models import CalcWarning, Line, TeamResult
from connector.core.money import ZERO
from connector.core.periods import PeriodKind, label
from connector.core.plans import Payee, Plan


def team_goals(
    plans: Sequence[Plan],
    ledgers: Mapping[str, Sequence[Ledger]],
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
    members_of: dict[str, dict[tuple[int, str], list[Ledger]]] = {}
    for plan, goal in goals:
        number = signatures[_signature(goal)]
        if plan.id not in members_of:
            members_of[plan.id] = _team_members(plan, ledgers, index, kind)
        for (period, team), team_ledgers in sorted(members_of[plan.id].items()):
            target = goal.goal.target_for(team)
            assert target is not None  # team goals always have a target in spm.yaml
            actual = totals.get((number, team, period), ZERO)
            result = goal_result(goal, team, target, actual)
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
                    work.lines += goal_bonuses(goal, actual, target, Payee.MEMBERS)
            manager_lines = goal_bonuses(goal, actual, target, Payee.MANAGER)
            if manager_lines:
                _pay_manager(manager, team, period, manager_lines, ledgers, kind, warnings)
    results.sort(key=lambda r: (r.plan_id, r.period, r.team_id, r.goal.goal_id))
    return results


def _team_totals(
    ledgers: Mapping[str, Sequence[Ledger]],
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
    plan: Plan, ledgers: Mapping[str, Sequence[Ledger]], index: TeamIndex, kind: PeriodKind
) -> dict[tuple[int, str], list[Ledger]]:
    """(period, team) → the plan's ledgers on that team on the period's reference day."""
    members: dict[tuple[int, str], list[Ledger]] = {}
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
    ledgers: Mapping[str, Sequence[Ledger]],
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
