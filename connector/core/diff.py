"""Statements → the values our CRM fields should hold, and the minimal writes.

Values are compared as canonical text (:mod:`connector.core.values`), the form
adapters turn what they read from the CRM into, so a second sync with nothing
new writes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from connector.core.closing import PRELIMINARY
from connector.core.fields import CATALOGUE, GOAL_FIELDS, GOAL_PACE_FIELDS, RecordKind
from connector.core.models import STATEMENT_FIGURES, GoalResult, LineKind, Statement, TeamResult
from connector.core.money import ZERO, format_money
from connector.core.values import canonical, canonical_fraction

Values = dict[str, str | None]

DEAL_KEYS = tuple(spec.key for spec in CATALOGUE if spec.record is RecordKind.DEAL)
REP_KEYS = tuple(spec.key for spec in CATALOGUE if spec.record is RecordKind.REP)
# Rep fields that hold one figure of the current statement, under the figure's own name.
_FIGURE_KEYS = tuple(key for key in REP_KEYS if key in dict(STATEMENT_FIGURES))


def deal_values(
    statements: Iterable[Statement],
    deal_ids: Collection[str],
    estimates: Mapping[str, Decimal] | None = None,
) -> dict[str, Values]:
    """Desired deal fields for ``deal_ids``, from every statement that credits them.

    A deal with no commission line (open, lost, not a member's) gets empty
    fields, so values written while it was won are cleared. Adjustments for a
    late change to a closed period count in the deal's commission (not its
    rate, which stays that of its commission lines). An open deal's
    ``estimated_commission`` comes from ``estimates`` (empty on every other deal).
    """
    commission: dict[str, Decimal] = {}
    paid: dict[str, Decimal] = {}  # commission lines only: the rate's numerator
    adjusted: dict[str, Decimal] = {}
    credit: dict[str, Decimal] = {}
    period: dict[str, str] = {}
    clawback: dict[str, Decimal] = {}
    wanted = set(deal_ids)
    for statement in statements:
        for line in statement.lines:
            deal_id = line.deal_id
            if deal_id is None or deal_id not in wanted:
                continue
            if line.kind is LineKind.COMMISSION:
                commission[deal_id] = commission.get(deal_id, ZERO) + line.amount
                paid[deal_id] = paid.get(deal_id, ZERO) + line.amount
                credit[deal_id] = credit.get(deal_id, ZERO) + (line.credit or ZERO)
                period[deal_id] = statement.period
            elif line.kind is LineKind.ADJUSTMENT:
                # A late change to a closed period: the deal now pays what it was paid
                # then plus this.
                adjusted[deal_id] = adjusted.get(deal_id, ZERO) + line.amount
                period.setdefault(deal_id, line.paid_period or statement.period)
            elif line.kind is LineKind.CLAWBACK:
                clawback[deal_id] = clawback.get(deal_id, ZERO) + line.amount
    for deal_id, amount in adjusted.items():
        commission[deal_id] = commission.get(deal_id, ZERO) + amount
    result: dict[str, Values] = {}
    for deal_id in wanted:
        if deal_id not in commission:
            result[deal_id] = dict.fromkeys(DEAL_KEYS)
            estimated = (estimates or {}).get(deal_id)
            if estimated is not None:
                result[deal_id]["estimated_commission"] = format_money(estimated)
            continue
        total_credit = credit.get(deal_id, ZERO)
        rate = (
            canonical_fraction("commission_rate", paid[deal_id] / total_credit)
            if total_credit
            else None
        )
        result[deal_id] = {
            "commission": format_money(commission[deal_id]),
            "commission_rate": rate,
            "commission_period": period[deal_id],
            "clawback": format_money(clawback.get(deal_id, ZERO)),
            "estimated_commission": None,
        }
    return result


def rep_values(
    statements: Sequence[Statement],
    as_of_period: str,
    teams: Sequence[TeamResult] = (),
    statuses: Mapping[str, str] | None = None,
) -> dict[str, Values]:
    """Desired rep fields: the as-of period's statement (or the rep's last) and year to date.

    ``statuses`` holds the closed and paid periods (pay-cycle.md); any other
    period is ``preliminary``.

    Each goal's attainment goes to the field of its metric (``GOAL_FIELDS``);
    a team goal's also to the team manager's record, even when the manager is
    on no plan (then only those fields). ``updated_at`` is left out: it is
    stamped only on reps whose other values change, or every sync would
    rewrite every rep.
    """
    by_rep: dict[str, list[Statement]] = {}
    for statement in statements:
        by_rep.setdefault(statement.rep_id, []).append(statement)
    result: dict[str, Values] = {}
    for rep_id, history in by_rep.items():
        history.sort(key=lambda s: (s.period, s.plan_id))
        current_candidates = [s for s in history if s.period <= as_of_period]
        current = (current_candidates or history)[-1]
        year = current.period[:4]
        this_year = [s for s in history if s.period[:4] == year and s.period <= current.period]
        ytd = sum((s.payout for s in this_year), ZERO)
        values: Values = {
            "period": current.period,
            "period_status": (statuses or {}).get(current.period, PRELIMINARY),
        }
        for key in _FIGURE_KEYS:
            values[key] = canonical(key, getattr(current, key))
        values["payout_ytd"] = format_money(ytd)
        values.update(dict.fromkeys(GOAL_FIELDS.values()))
        values.update(dict.fromkeys(GOAL_PACE_FIELDS.values()))
        values.update(_goal_values(current.goals))
        result[rep_id] = values
    for rep_id, goals in _managed(teams, as_of_period).items():
        # The team they lead, whatever their own statement shows (a manager may be
        # on another plan, or on none).
        result.setdefault(rep_id, {}).update(_goal_values(goals))
    return result


def _goal_values(goals: Iterable[GoalResult]) -> Values:
    values: Values = {}
    for goal in goals:
        key = GOAL_FIELDS[goal.metric, goal.team_id is not None]
        values.setdefault(key, canonical(key, goal.attainment))
        paced = GOAL_PACE_FIELDS[goal.metric, goal.team_id is not None]
        values.setdefault(paced, canonical(paced, goal.pace))
    return values


def _managed(teams: Sequence[TeamResult], as_of_period: str) -> dict[str, list[GoalResult]]:
    """Per manager, the team goals of the latest period up to the as-of period."""
    latest: dict[str, str] = {}
    for team in teams:
        if team.manager_id is not None and team.period <= as_of_period:
            latest[team.manager_id] = max(latest.get(team.manager_id, ""), team.period)
    managed: dict[str, list[GoalResult]] = {}
    for team in sorted(teams, key=lambda t: (t.plan_id, t.team_id, t.goal.goal_id)):
        manager = team.manager_id
        if manager is not None and latest.get(manager) == team.period:
            managed.setdefault(manager, []).append(team.goal)
    return managed


@dataclass(frozen=True)
class PlannedWrite:
    """One field to change on one record, for dry-run output and the summary."""

    record: RecordKind
    record_id: str
    key: str
    before: str | None
    after: str | None


def changes(
    record: RecordKind,
    pending: Mapping[str, Mapping[str, str | None]],
    current: Mapping[tuple[str, str], str | None],
) -> list[PlannedWrite]:
    """Pending desired values as a sorted list of before → after changes."""
    return [
        PlannedWrite(record, record_id, key, current.get((record_id, key)), value)
        for record_id in sorted(pending)
        for key, value in sorted(pending[record_id].items())
    ]
