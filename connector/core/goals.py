"""Goals beyond the revenue quota, and the teams that share them: pure rules.

- A goal's *metric* over a rep's credits: ``revenue`` adds the credited
  amounts; ``deals_won`` and ``new_customers`` count the credited deals with a
  positive credit, a split deal by the rep's share (40 % → 0.4), exactly.
- A goal's ``when`` filters the deals like a SPIFF's. A ``new_customers`` goal
  with no ``when`` counts the deals whose type is the CRM's new-business
  marker (Salesforce ``New Customer``, HubSpot ``newbusiness``, or ``New Business``).
- A team is a manager and the reps who report to them (or a CRM team, or a
  team listed in spm.yaml). Memberships are *spells* with dates, and a credit
  counts for the team its rep belonged to on the deal's close date.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise

from connector.core.commission import Credit, deal_matcher, percent_text
from connector.core.models import Deal, GoalResult, Line, LineKind, Rep, TeamSpell
from connector.core.money import ZERO, ratio, round_cents
from connector.core.plans import Bonus, Goal, GoalMetric, Payee, Plan, Team, TeamMember
from connector.errors import CalculationError

# The values CRMs use for a deal that wins a new customer (Opportunity.Type, dealtype).
NEW_BUSINESS_TYPES = frozenset({"New Customer", "New Business", "newbusiness"})

Matcher = Callable[[Deal], bool]


def _new_business(deal: Deal) -> bool:
    return (deal.type or deal.properties.get("type")) in NEW_BUSINESS_TYPES


def goal_matcher(goal: Goal) -> Matcher | None:
    """The goal's deal filter; None when every credited deal counts."""
    if goal.when:
        return deal_matcher(goal.when)
    if goal.metric is GoalMetric.NEW_CUSTOMERS:
        return _new_business
    return None


@dataclass(frozen=True, slots=True)
class PreparedGoal:
    """A plan's goal with what every period needs resolved once (a plan has few goals,
    a large org a hundred thousand rep-periods)."""

    goal: Goal
    key: str
    metric: str  # the metric's name, as statements carry it
    revenue: bool  # sums amounts, rather than counting deals
    matches: Matcher | None
    ramp: tuple[Decimal, ...]
    # The plan's bonuses naming this goal: (threshold, amount, payee, the line's rule).
    bonuses: tuple[tuple[Decimal, Decimal, Payee, str], ...]


def prepare(plan: Plan) -> tuple[tuple[PreparedGoal, ...], tuple[PreparedGoal, ...]]:
    """The plan's (individual, team) goals, prepared."""
    individual: list[PreparedGoal] = []
    team: list[PreparedGoal] = []
    for goal in plan.goals:
        key = goal.key
        bonuses = tuple(
            (
                bonus.at,
                round_cents(bonus.amount),
                bonus.pay or Payee.MEMBERS,
                _bonus_rule(goal, key, bonus),
            )
            for bonus in plan.bonuses
            if bonus.goal == key
        )
        prepared = PreparedGoal(
            goal,
            key,
            goal.metric.value,
            goal.metric is GoalMetric.REVENUE,
            goal_matcher(goal),
            plan.ramp if goal.ramp is None else goal.ramp,
            bonuses,
        )
        (team if goal.team else individual).append(prepared)
    return tuple(individual), tuple(team)


def _bonus_rule(goal: Goal, key: str, bonus: Bonus) -> str:
    who = " (to the manager)" if bonus.pay is Payee.MANAGER else ""
    scope = "team " if goal.team else ""
    return f"{scope}bonus for {key} attainment >= {percent_text(bonus.at)}{who}"


def measure(revenue: bool, credits: Iterable[Credit], matches: Matcher | None) -> Decimal:
    """The metric over ``credits`` (a Decimal, exact): amounts, or deals won by share."""
    total = ZERO
    if revenue:
        for credit in credits:
            if matches is None or matches(credit.deal):
                total += credit.amount
        return total
    for credit in credits:
        # A won deal of 0.00 is a deal won; only a credit note (money back) is not.
        if credit.amount >= 0 and (matches is None or matches(credit.deal)):
            total += credit.share
    return total


# --- teams ---------------------------------------------------------------------------------


History = Mapping[str, Sequence[tuple[date | None, str | None, str | None]]]


def crm_team_spells(reps: Sequence[Rep], history: History | None = None) -> list[TeamSpell]:
    """Teams as the CRM (or reps.csv) has them.

    A rep with a CRM team (HubSpot's primary team, reps.csv ``team_id``) is on
    that team. Otherwise a rep who manages someone leads their own team (their
    own deals count there), and anyone else is on their manager's team.
    ``history`` gives, per rep, the (since, manager_id, team_id) the store saw
    over time; without it each rep's current values hold for all time.
    """
    spans: dict[str, list[tuple[date | None, str | None, str | None]]] = {}
    for rep in reps:
        rows = list(history.get(rep.id, ())) if history else []
        spans[rep.id] = rows or [(None, rep.manager_id, rep.team_id)]
    leaders = {manager for rows in spans.values() for _, manager, _ in rows if manager}
    spells: list[TeamSpell] = []
    for rep_id in sorted(spans):
        rows = sorted(spans[rep_id], key=lambda row: row[0] or date.min)
        for index, (since, manager, team) in enumerate(rows):
            following = rows[index + 1][0] if index + 1 < len(rows) else None
            until = following - timedelta(days=1) if following is not None else None
            if team:
                spells.append(TeamSpell(rep_id, team, None, since, until))
            elif rep_id in leaders:
                spells.append(TeamSpell(rep_id, rep_id, rep_id, since, until))
            elif manager:
                spells.append(TeamSpell(rep_id, manager, manager, since, until))
    return spells


def listed_team_spells(teams: Sequence[Team], reps: Sequence[Rep]) -> list[TeamSpell]:
    """Teams listed in spm.yaml; the manager's own deals count for the team they lead.

    Raises :class:`CalculationError` for a rep on two teams on the same day.
    """
    by_email = {rep.email.lower(): rep.id for rep in reps if rep.email}

    def resolve(member: str) -> str | None:
        return by_email.get(member.lower()) if "@" in member else member

    spells: list[TeamSpell] = []
    for team in teams:
        manager = resolve(team.manager) if team.manager else None
        listed: set[str] = set()
        for entry in team.members:
            member = entry if isinstance(entry, TeamMember) else TeamMember(id=entry)
            rep_id = resolve(member.id)
            if rep_id is None:
                continue  # an email of nobody: the plan members' warning says so
            listed.add(rep_id)
            spells.append(TeamSpell(rep_id, team.id, manager, member.since, member.until))
        if manager is not None and manager not in listed:
            spells.append(TeamSpell(manager, team.id, manager))
    _refuse_overlaps(spells)
    return spells


def _refuse_overlaps(spells: Sequence[TeamSpell]) -> None:
    by_rep: dict[str, list[TeamSpell]] = {}
    for spell in spells:
        by_rep.setdefault(spell.rep_id, []).append(spell)
    for rep_id, own in by_rep.items():
        own.sort(key=lambda s: (s.start or date.min, s.team_id))
        for before, after in pairwise(own):
            if (before.end or date.max) >= (after.start or date.min):
                raise CalculationError(
                    f"teams: rep {rep_id} is on teams {before.team_id} and {after.team_id} "
                    "on the same days; give `from` / `until` dates that do not overlap"
                )


def team_spells(
    setting: str | Sequence[Team] | None, reps: Sequence[Rep], history: History | None = None
) -> list[TeamSpell]:
    """The memberships spm.yaml's ``teams:`` asks for: from the CRM, listed, or none."""
    if setting is None:
        return []
    if isinstance(setting, str):
        return crm_team_spells(reps, history)
    return listed_team_spells(setting, reps)


class TeamIndex:
    """Who is on which team on a given day."""

    def __init__(self, spells: Iterable[TeamSpell]) -> None:
        self._by_rep: dict[str, list[TeamSpell]] = {}
        self.managers: dict[str, str | None] = {}
        for spell in spells:
            self._by_rep.setdefault(spell.rep_id, []).append(spell)
            if spell.manager_id is not None or spell.team_id not in self.managers:
                self.managers[spell.team_id] = spell.manager_id
        # A rep on one team for all time, the common case, needs no date test.
        self._always: dict[str, str] = {}
        for rep_id, own in self._by_rep.items():
            own.sort(key=lambda s: s.start or date.min)
            if len(own) == 1 and own[0].start is None and own[0].end is None:
                self._always[rep_id] = own[0].team_id

    def __bool__(self) -> bool:
        return bool(self._by_rep)

    def always(self, rep_id: str) -> str | None:
        """The rep's team when it is one team for all time, else None."""
        return self._always.get(rep_id)

    def team_of(self, rep_id: str, day: date) -> str | None:
        team = self._always.get(rep_id)
        if team is not None:
            return team
        for spell in self._by_rep.get(rep_id, ()):
            if (spell.start is None or spell.start <= day) and (
                spell.end is None or day <= spell.end
            ):
                return spell.team_id
        return None

    def teammates(self, rep_ids: Collection[str]) -> set[str]:
        """``rep_ids`` and everyone who shares a team with any of them at any time."""
        teams = {s.team_id for rep in rep_ids for s in self._by_rep.get(rep, ())}
        if not teams:
            return set(rep_ids)
        mates = {rep for rep, own in self._by_rep.items() if any(s.team_id in teams for s in own)}
        return mates | set(rep_ids)


Prepared = Mapping[str, tuple[tuple[PreparedGoal, ...], tuple[PreparedGoal, ...]]]


def goal_result(
    goal: PreparedGoal, team_id: str | None, target: Decimal | None, actual: Decimal
) -> GoalResult:
    attainment = None if target is None else _attainment(actual, target)
    return GoalResult(goal.key, goal.metric, team_id, target, actual, attainment)


@lru_cache(maxsize=65536)
def _attainment(actual: Decimal, target: Decimal) -> Decimal:
    # Count goals repeat the same few (deals, target) pairs in every rep-period.
    return ratio(actual, target)


def goal_bonuses(
    goal: PreparedGoal, actual: Decimal, target: Decimal, payee: Payee | None
) -> list[Line]:
    """The bonus lines ``goal`` pays at ``actual`` (only ``payee``'s, for a team goal)."""
    return [
        Line(LineKind.BONUS, None, amount, None, rule)
        for at, amount, paid_to, rule in goal.bonuses
        if (payee is None or paid_to is payee) and actual >= at * target
    ]
