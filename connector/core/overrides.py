"""Manager overrides: a manager's share of the credited bookings of the reps below them.

Who is below whom is the *reporting line* on each deal's close date: the
manager a team listed in spm.yaml names for its members, else the manager of
the rep's CRM team (``team_managers`` in spm.yaml, for HubSpot teams), else
the CRM's own ``ManagerId`` (reps.csv ``manager_id``), as the store saw them
over time. A rep who moves mid-period is credited to the manager they had on
the deal's close date.

A manager on a plan with ``override`` earns, in each period, one line per credit
of a plan member below them within ``depth`` levels: the credits in (close
date, deal, rep) order fill the override's tiers (marginal, on the period's team
bookings). The lines name the rep and the deal. A credit reversed by a
cancelled deal within the manager's clawback window reverses its override in
the cancel period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal

from connector.core.commission import Credit, Schedule, commission_lines
from connector.core.credit import RepActivity
from connector.core.goals import History
from connector.core.ledgers import Ledger, owner_ledger
from connector.core.models import Deal, DealStatus, Line, LineKind, Rep, TeamSpell
from connector.core.money import ZERO, round_cents
from connector.core.periods import PeriodKind, label, period_of

# (from, until, manager): who a rep reported to between two days (None: open-ended).
Span = tuple[date | None, date | None, str | None]


class ReportingLines:
    """Who each rep reported to, day by day."""

    def __init__(self, spans: Mapping[str, Sequence[Span]]) -> None:
        self._spans = {
            rep: sorted(rows, key=lambda s: s[0] or date.min) for rep, rows in spans.items()
        }
        self._up: dict[str, set[str]] = {}
        self._down: dict[str, set[str]] = {}
        for rep_id, rows in self._spans.items():
            for _, _, manager in rows:
                if manager is not None and manager != rep_id:
                    self._up.setdefault(rep_id, set()).add(manager)
                    self._down.setdefault(manager, set()).add(rep_id)

    def __bool__(self) -> bool:
        return bool(self._up)

    def manager_of(self, rep_id: str, day: date) -> str | None:
        for start, end, manager in self._spans.get(rep_id, ()):
            if (start is None or start <= day) and (end is None or day <= end):
                return manager if manager != rep_id else None
        return None

    def above(self, rep_id: str, day: date) -> list[str]:
        """The rep's managers on ``day``, nearest first (a loop in the CRM's data ends it)."""
        chain: list[str] = []
        seen = {rep_id}
        current = self.manager_of(rep_id, day)
        while current is not None and current not in seen:
            chain.append(current)
            seen.add(current)
            current = self.manager_of(current, day)
        return chain

    def related(self, rep_ids: Iterable[str]) -> set[str]:
        """``rep_ids``, everyone who was ever above them, and everyone ever below those:
        the reps whose statements a change to ``rep_ids`` can move through overrides."""
        above = _reach(set(rep_ids), self._up)
        return _reach(above, self._down)


def _reach(start: set[str], edges: Mapping[str, set[str]]) -> set[str]:
    found = set(start)
    frontier = list(start)
    while frontier:
        for nxt in edges.get(frontier.pop(), ()):
            if nxt not in found:
                found.add(nxt)
                frontier.append(nxt)
    return found


def reporting_lines(
    reps: Sequence[Rep],
    history: History | None = None,
    listed: Sequence[TeamSpell] = (),
    team_managers: Mapping[str, str] | None = None,
    emails: Mapping[str, str] | None = None,
) -> ReportingLines:
    """The reporting lines from the CRM (``history`` of (since, manager, team) per user,
    or each rep's current values), with listed teams' managers taking precedence.

    ``team_managers`` names the manager of CRM teams (HubSpot teams name none) by team
    id, as a user id or an email (``emails``: lower-case email → user id; the reps'
    own by default).
    """
    known = dict(emails) if emails is not None else {}
    known.update({rep.email.lower(): rep.id for rep in reps if rep.email})
    managers = {
        team: known.get(who.lower(), who) if "@" in who else who
        for team, who in (team_managers or {}).items()
    }
    spans: dict[str, list[Span]] = {}
    for spell in listed:
        if spell.manager_id is not None and spell.manager_id != spell.rep_id:
            spans.setdefault(spell.rep_id, []).append((spell.start, spell.end, spell.manager_id))
    current = {rep.id: [(None, rep.manager_id, rep.team_id)] for rep in reps}
    seen = history or {}
    for user_id in sorted(current.keys() | seen.keys()):
        if user_id in spans:
            continue  # on a listed team: its manager
        rows = sorted(seen.get(user_id) or current[user_id], key=lambda row: row[0] or date.min)
        own: list[Span] = []
        for index, (since, manager, team) in enumerate(rows):
            following = rows[index + 1][0] if index + 1 < len(rows) else None
            until = following - timedelta(days=1) if following is not None else None
            lead = managers.get(team) if team is not None else None
            own.append((since, until, lead if lead is not None and lead != user_id else manager))
        spans[user_id] = own
    return ReportingLines(spans)


NO_LINES = ReportingLines({})


def has_overrides(ledgers: Iterable[Ledger]) -> bool:
    return any(
        ledger.plan.override is not None or any(v.override for v in ledger.plan.versions)
        for ledger in ledgers
    )


def pay_overrides(
    ordered: Mapping[str, Sequence[Ledger]],
    activity: Mapping[str, RepActivity],
    lines: ReportingLines,
    kind: PeriodKind,
) -> None:
    """Pass 1b: each manager's override lines, and the reversals of cancelled credits,
    into their ledgers' periods (after every member's pass 1)."""
    paid_to: dict[tuple[int, int], tuple[Ledger, int, list[tuple[Credit, str, int]]]] = {}
    for rep_id in sorted(activity):
        for period, credits in activity[rep_id].credits.items():
            for credit in credits:
                for ledger, level in _payers(ordered, lines, rep_id, period, credit, kind):
                    slot = paid_to.setdefault((id(ledger), period), (ledger, period, []))
                    slot[2].append((credit, rep_id, level))
    schedules: dict[tuple[int, Decimal | None], Schedule] = {}
    # A cancelled deal's overrides, by (manager's ledger, period, deal, rep): to reverse.
    cancelled: dict[tuple[int, int, str, str], tuple[Ledger, int, Deal, str, Decimal]] = {}
    for ledger, period, owed in paid_to.values():
        override = ledger.rules(period, kind).override
        assert override is not None  # only override plans' ledgers are collected
        work = ledger.periods[period]
        key = (id(override), work.quota)
        schedule = schedules.get(key)
        if schedule is None:
            schedule = schedules[key] = Schedule.build(override.commission(), work.quota)
        owed.sort(key=lambda o: (o[0].deal.close_date, o[0].deal.id, o[1]))
        computed = commission_lines([credit for credit, _, _ in owed], schedule)
        for (credit, rep_id, level), line in zip(owed, computed, strict=True):
            below = "a direct report" if level == 1 else f"{level} levels below"
            deal = credit.deal
            work.lines.append(
                Line(
                    LineKind.OVERRIDE,
                    deal.id,
                    line.amount,
                    line.rate,
                    f"override {line.rule.removeprefix('tier 1 (all) ')} on rep {rep_id}'s "
                    f"credit for deal {deal.id} ({below})",
                    None,
                    credit.amount,
                )
            )
            if deal.status is DealStatus.CANCELLED:  # credited, and cancelled in a later period
                which = (id(ledger), period, deal.id, rep_id)
                before = cancelled[which][4] if which in cancelled else ZERO
                cancelled[which] = (ledger, period, deal, rep_id, before + line.amount)
    for ledger, period, deal, rep_id, amount in cancelled.values():
        _reverse(ordered[ledger.rep.id], (ledger, period), deal, rep_id, (amount, kind))


def _payers(
    ordered: Mapping[str, Sequence[Ledger]],
    lines: ReportingLines,
    rep_id: str,
    period: int,
    credit: Credit,
    kind: PeriodKind,
) -> list[tuple[Ledger, int]]:
    """The override ledgers a credit pays into, with how many levels below each it is."""
    day = credit.deal.close_date
    found: list[tuple[Ledger, int]] = []
    for level, manager in enumerate(lines.above(rep_id, day), start=1):
        own = ordered.get(manager)
        if not own:
            continue
        ledger = owner_ledger(own, period, day)
        if ledger is None or period not in ledger.periods:
            continue
        override = ledger.rules(period, kind).override
        if override is None or (override.depth is not None and level > override.depth):
            continue
        found.append((ledger, level))
    return found


def _reverse(
    own: Sequence[Ledger],
    paid: tuple[Ledger, int],
    deal: Deal,
    rep_id: str,
    what: tuple[Decimal, PeriodKind],
) -> None:
    """Reverse what a cancelled deal's credit paid a manager (on ``own`` ledgers) in the
    paying ledger and period, in the manager's cancel period, when the paying plan's
    clawback window covers the cancel."""
    (paying, period), (amount, kind) = paid, what
    cancel = deal.cancel_date
    assert cancel is not None  # only cancelled deals' overrides are reversed
    window = paying.rules(period, kind).clawback
    if not amount or window is None or (cancel - deal.close_date).days > window.window_days:
        return
    cancel_period = period_of(cancel, kind)
    landing = owner_ledger(own, cancel_period, cancel)
    if landing is None or cancel_period not in landing.periods:
        return
    paid_in = label(period, kind)
    landing.periods[cancel_period].clawbacks.append(
        Line(
            LineKind.OVERRIDE,
            deal.id,
            round_cents(-amount),
            None,
            f"override reversed: deal {deal.id} (rep {rep_id}) cancelled {cancel}; "
            f"reverses what it paid in {paid_in}",
            paid_period=paid_in,
        )
    )
