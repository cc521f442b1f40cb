"""The team at a glance: what the reports page shows, computed from stored statements.

Pure: statements, users, plans and today's date in; rows and totals out. Pace
is attainment so far against the share of the period gone by; the gap to the
next tier is what a manager coaches on ("3,200 more and the rate goes to 12 %").
Teams are the CRM's: a rep's team is the one the CRM puts them on (HubSpot's
primary team), else their manager's; commission cost of sales is payout ÷
bookings, the share of what was sold that went to pay for selling it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from connector.core import kpis
from connector.core.models import CrmUser, PeriodKind
from connector.core.money import ratio
from connector.core.periods import label, parse_label
from connector.core.plans import Plan, TiersOn

ZERO = Decimal(0)
NO_TEAM = ""  # the team id of reps whom the CRM puts on no team and under no manager


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
    team_id: str = NO_TEAM
    # What the rep's open deals would pay if each closed today (the period's figure only).
    estimated: Decimal | None = None


@dataclass(frozen=True)
class TeamRow:
    """One team's period: what a second-line manager compares."""

    team_id: str
    name: str
    reps: int
    bookings: Decimal
    quota: Decimal
    payout: Decimal

    @property
    def attainment(self) -> Decimal | None:
        return ratio(self.bookings, self.quota) if self.quota > 0 else None

    @property
    def cost_of_sales(self) -> Decimal | None:
        return ratio(self.payout, self.bookings) if self.bookings > 0 else None


@dataclass(frozen=True)
class Team:
    period: str
    currency: str
    elapsed: Decimal  # share of the period gone by, 0..1
    rows: tuple[RepRow, ...]  # by attainment, highest first (one team's, when filtered)
    payouts_by_period: tuple[tuple[str, Decimal], ...]
    teams: tuple[TeamRow, ...] = ()  # every team, by name
    team_filter: str | None = None  # the team the rows are limited to
    span: str = "period"  # or "quarter", "ytd": the rows add up the span's periods
    prior_period: str | None = None
    prior_bookings: Decimal | None = None  # of the same reps' team(s), the period before
    prior_payout: Decimal | None = None

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
    def cost_of_sales(self) -> Decimal | None:
        """Commission cost of sales: payout ÷ bookings."""
        bookings = self.total_bookings
        return ratio(self.total_payout, bookings) if bookings > 0 else None

    @property
    def draws_outstanding(self) -> tuple[RepRow, ...]:
        return tuple(
            sorted(
                (r for r in self.rows if r.draw_balance > 0),
                key=lambda r: r.draw_balance,
                reverse=True,
            )
        )

    @property
    def draws_outstanding_total(self) -> Decimal:
        return sum((r.draw_balance for r in self.draws_outstanding), ZERO)

    @property
    def distribution(self) -> tuple[tuple[str, int], ...]:
        """How many reps stand under 50 %, at 50-100 % and at 100 % or more."""
        shown = [r.attainment for r in self.rows if r.attainment is not None]
        half, whole = Decimal("0.5"), Decimal(1)
        return (
            ("under 50%", sum(1 for a in shown if a < half)),
            ("50% to 100%", sum(1 for a in shown if half <= a < whole)),
            ("100% or more", sum(1 for a in shown if a >= whole)),
        )


def team_of(user: CrmUser | None) -> str:
    """The rep's team: the CRM's (HubSpot's primary team), else their manager's."""
    if user is None:
        return NO_TEAM
    return user.team_id or user.manager_id or NO_TEAM


def elapsed_share(period: str, kind: PeriodKind, today: date) -> Decimal:
    """How much of ``period`` has gone by on ``today`` (whole days, today included)."""
    gone, length = kpis.elapsed_days(parse_label(period, kind), kind, today)
    return Decimal(gone) / Decimal(length) if gone < length else Decimal(1)


def _next_tier(plan: Plan | None, statement: Figures) -> tuple[Decimal | None, Decimal | None]:
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
    statements: Sequence[Figures],
    users: Mapping[str, CrmUser],
    plans: Sequence[Plan],
    payouts: Mapping[str, Decimal],
    *,
    period: str,
    kind: PeriodKind,
    currency: str,
    today: date,
    team: str | None = None,
    team_names: Mapping[str, str] | None = None,
    prior: Mapping[str, tuple[Decimal, Decimal]] | None = None,
    prior_period: str | None = None,
    span: str = "period",
) -> Team:
    """The period's rows (of ``team`` only, if given), every team's totals, and the same
    reps' figures of ``prior_period`` to compare with (``prior``: each rep's bookings and
    payout then)."""
    by_plan = {plan.id: plan for plan in plans}
    elapsed = elapsed_share(period, kind, today)
    names = team_names or {}
    rows: list[RepRow] = []
    for s in statements:
        if s.period != period:
            continue
        user = users.get(s.rep_id)
        pace = gap = rate = None
        if span == "period":  # a pace and a next tier belong to one period
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
                team_of(user),
                s.estimated_commission if span == "period" else None,
            )
        )
    rows.sort(key=lambda r: (-(r.attainment or Decimal(-1)), r.name, r.rep_id))
    teams = _teams(rows, names)
    if team is not None:
        rows = [r for r in rows if r.team_id == team]
    earlier = [(prior or {}).get(r.rep_id, (ZERO, ZERO)) for r in rows]
    return Team(
        period,
        currency,
        elapsed,
        tuple(rows),
        tuple(sorted(payouts.items())),
        teams,
        team,
        span,
        prior_period,
        sum((b for b, _ in earlier), ZERO) if prior is not None else None,
        sum((p for _, p in earlier), ZERO) if prior is not None else None,
    )


def _teams(rows: Sequence[RepRow], names: Mapping[str, str]) -> tuple[TeamRow, ...]:
    grouped: dict[str, list[RepRow]] = {}
    for row in rows:
        grouped.setdefault(row.team_id, []).append(row)
    teams = [
        TeamRow(
            team_id,
            names.get(team_id) or (f"team {team_id}" if team_id else "No team"),
            len(members),
            sum((r.bookings for r in members), ZERO),
            sum((r.quota or ZERO for r in members), ZERO),
            sum((r.payout for r in members), ZERO),
        )
        for team_id, members in grouped.items()
    ]
    return tuple(sorted(teams, key=lambda t: (t.team_id == NO_TEAM, t.name, t.team_id)))


class Figures(Protocol):
    """What the page reads of a statement (or of a span of them added up)."""

    @property
    def rep_id(self) -> str: ...
    @property
    def plan_id(self) -> str: ...
    @property
    def period(self) -> str: ...
    @property
    def quota(self) -> Decimal | None: ...
    @property
    def bookings(self) -> Decimal: ...
    @property
    def attainment(self) -> Decimal | None: ...
    @property
    def payout(self) -> Decimal: ...
    @property
    def draw_balance(self) -> Decimal: ...
    @property
    def estimated_commission(self) -> Decimal | None: ...


@dataclass(frozen=True)
class SpanFigures:
    """One rep's figures on one plan over a span of periods (a quarter, the year so far)."""

    rep_id: str
    plan_id: str
    period: str  # the span's last period: the one the page was asked for
    quota: Decimal | None
    bookings: Decimal
    payout: Decimal
    draw_balance: Decimal  # at the end of the span
    estimated_commission: Decimal | None = None  # a figure of one period, not of a span

    @property
    def attainment(self) -> Decimal | None:
        return ratio(self.bookings, self.quota) if self.quota else None


SPANS = {"period": "the period", "quarter": "the quarter to date", "ytd": "the year to date"}


def span_periods(period: str, kind: PeriodKind, span: str) -> list[str]:
    """The periods a span covers, ending with ``period``: itself, its quarter so far, or
    its year so far."""
    number = parse_label(period, kind)
    if span == "period":
        return [period]
    first = number
    while first > 0 and label(first - 1, kind)[:4] == period[:4]:
        if span == "quarter" and (
            kind is PeriodKind.QUARTER
            or (int(label(first - 1, kind)[5:7]) - 1) // 3 != (int(period[5:7]) - 1) // 3
        ):
            break
        first -= 1
    return [label(n, kind) for n in range(first, number + 1)]


def add_up(rows: Sequence[SpanRow], period: str) -> list[SpanFigures]:
    """Each rep and plan's figures over a span, from one row per period."""
    by_rep: dict[tuple[str, str], list[SpanRow]] = {}
    for row in sorted(rows, key=lambda row: row[2]):  # by period: the last balance is last
        by_rep.setdefault((row[0], row[1]), []).append(row)
    added = []
    for (rep_id, plan_id), own in sorted(by_rep.items()):
        quota: Decimal | None = None
        bookings = payout = ZERO
        for _rep, _plan, _period, booked, quota_then, paid, _balance in own:
            bookings += booked
            payout += paid
            if quota_then is not None:
                quota = (quota or ZERO) + quota_then
        balance = own[-1][6]  # at the end of the span
        added.append(SpanFigures(rep_id, plan_id, period, quota, bookings, payout, balance))
    return added


# (rep id, plan id, period, bookings, quota, payout, draw balance): one statement's figures
SpanRow = tuple[str, str, str, Decimal, Decimal | None, Decimal, Decimal]


class RunLike(Protocol):
    """A run of the store's run log, as far as the page reads it."""

    @property
    def started_at(self) -> datetime: ...
    @property
    def status(self) -> str: ...
    @property
    def summary(self) -> dict[str, Any]: ...


class EventLike(Protocol):
    """An inbox event, as far as the page reads it."""

    @property
    def source(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def record(self) -> str: ...
    @property
    def record_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def received_ms(self) -> int: ...
    @property
    def error(self) -> str: ...


@dataclass(frozen=True)
class SyncRow:
    started_at: datetime
    status: str
    fields_written: int | None
    reason: str  # why it failed or was partial; "" when it was ok


def sync_rows(runs: Sequence[RunLike]) -> list[SyncRow]:
    rows = []
    for run in runs:
        summary = run.summary
        reason = ""
        if run.status == "failed":
            reason = str(summary.get("error") or "")
        elif run.status == "partial":
            failures = summary.get("failures") or []
            first = failures[0] if failures and isinstance(failures[0], dict) else {}
            reason = f"{len(failures)} record(s) not written" + (
                f", first {first.get('record_id')}: {first.get('code')} {first.get('message')}"
                if first
                else ""
            )
        elif run.status == "interrupted":
            reason = "the process stopped mid-run; the next run finished its work"
        written = summary.get("fields_written")
        rows.append(
            SyncRow(
                run.started_at, run.status, written if isinstance(written, int) else None, reason
            )
        )
    return rows


@dataclass(frozen=True)
class ActivityRow:
    received_ms: int
    source: str
    event: str
    record: str  # "deal Acme - Platform #12 (006…)", "user 005…"
    status: str  # applied, skipped: our own write-back, waiting, parked: <why>, …


# What the worker notes on an event it skips (connector.sync.worker): not an error.
OWN_WRITE_BACK = "our own write-back"


def activity_rows(recent: Sequence[EventLike], deal_names: Mapping[str, str]) -> list[ActivityRow]:
    rows = []
    for event in recent:
        name = deal_names.get(event.record_id, "") if event.record == "deal" else ""
        record = (
            f"{event.record} {name} ({event.record_id})"
            if name
            else (f"{event.record} {event.record_id}")
        )
        if event.status == "done":
            status = "skipped: our own write-back" if event.error == OWN_WRITE_BACK else "applied"
        elif event.status == "parked":
            status = f"parked: {event.error}" if event.error else "parked"
        elif event.status == "claimed":
            status = "being applied"
        else:
            status = f"waiting to retry: {event.error}" if event.error else "waiting"
        rows.append(ActivityRow(event.received_ms, event.source, event.kind, record, status))
    return rows
