"""What the pages read from the store, gathered for the views to arrange."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from connector.core.closing import PRELIMINARY
from connector.core.models import PeriodKind
from connector.core.periods import first_day, label, parse_label, period_of
from connector.core.plans import Plan
from connector.core.snapshots import engine_deals
from connector.errors import InputError
from connector.store.books import PeriodClose
from connector.store.cursors import AS_OF_PERIOD_CURSOR
from connector.store.inbox import Depth, Inbox
from connector.store.reviews import ACKNOWLEDGED, DISPUTE, OPEN
from connector.store.state import Store
from connector.sync.pay_cycle import ApprovalState, approval_states
from connector.views.explain import Explanation
from connector.views.money import DEFAULT_LOCALE
from connector.views.statement import StatementView, choose, find_rep, team_names, view_of
from connector.views.team import (
    NO_TEAM,
    ActivityRow,
    Figures,
    SyncRow,
    Team,
    activity_rows,
    add_up,
    span_periods,
    sync_rows,
    team_of,
    team_view,
)


def load_view(
    store: Store, currency: str, rep: str, period: str | None, locale: str = DEFAULT_LOCALE
) -> StatementView:
    """The statement ``statement`` and the reports page show: rep by id, email or name."""
    users = store.users.all()
    user = find_rep(users, rep)
    statements = store.statements.of_rep(user.id)
    chosen = choose(statements, period, store.cursors.get(AS_OF_PERIOD_CURSOR))
    deal_ids = {line.deal_id for line in chosen.lines if line.deal_id}
    names = {deal.id: deal.name for deal in store.deals.by_id(deal_ids).values()}
    teams = team_names(users, {g.team_id for g in chosen.goals if g.team_id is not None})
    awards = [(g.title, g.period, g.said) for g in reversed(store.awards.of([user.id]))]
    notes = [(n.author, n.at, n.period, n.body) for n in store.notes.of(user.id)]
    return view_of(user, statements, chosen, currency, names, teams, locale, awards, notes)


@dataclass(frozen=True)
class TeamPage:
    """Everything the reports page shows for one period (and team)."""

    team: Team
    periods: list[str]  # the year's periods that have statements, for the picker
    syncs: list[SyncRow]
    activity: list[ActivityRow]
    depth: Depth
    counts: dict[str, int]


def load_team_page(
    store: Store,
    plans: Sequence[Plan],
    *,
    period: str,
    kind: PeriodKind,
    currency: str,
    today: date,
    team: str | None = None,
    span: str = "period",
) -> TeamPage:
    """The reports page's data: the period's statements and the previous period's (to
    compare), the team names, the last syncs and the latest webhook activity."""
    if span == "period":
        figures: Sequence[Figures] = store.statements.in_period(period)
        before = label(parse_label(period, kind) - 1, kind)
        prior_period: str | None = before
        prior = store.statements.bookings_and_payouts(before)
    else:
        rows = store.statements.figures_in(span_periods(period, kind, span))
        figures, prior_period, prior = add_up(rows, period), None, None
    payouts = store.statements.payouts_by_period(period[:4])
    users = store.users.all()
    by_id = {user.id: user for user in users}
    names = team_names(users, {team_of(user) for user in users} - {NO_TEAM})
    view = team_view(
        figures,
        by_id,
        plans,
        payouts,
        period=period,
        kind=kind,
        currency=currency,
        today=today,
        team=team,
        team_names=names,
        prior=prior,
        prior_period=prior_period,
        span=span,
    )
    inbox = Inbox(store)
    recent = inbox.recent(20)
    deal_ids = {event.record_id for event in recent if event.record == "deal"}
    deal_names = {deal.id: deal.name for deal in store.deals.by_id(deal_ids).values()}
    return TeamPage(
        view,
        sorted(payouts),
        sync_rows(store.runs.recent(limit=10, kind="sync")),
        activity_rows(recent, deal_names),
        inbox.depth(),
        inbox.counts(),
    )


@dataclass(frozen=True)
class DisputeRow:
    id: int
    rep_id: str
    rep_name: str
    plan_id: str
    line: str  # the disputed line as the rep saw it, or "" for the whole statement
    comment: str
    at: str


@dataclass(frozen=True)
class AdjustmentRow:
    id: int
    rep_id: str
    rep_name: str
    amount: Decimal
    reason: str
    author: str
    reverses: int | None
    reversed: bool


@dataclass(frozen=True)
class PayPanel:
    """The pay cycle of one period, as the reports page shows it to the admin."""

    period: str
    status: str  # preliminary | closed | paid
    closed: PeriodClose | None
    ended: bool  # a period closes after its last day
    statements: int
    acknowledged: int  # statements their rep acknowledged
    approvals: list[ApprovalState]
    disputes: list[DisputeRow]  # open ones
    adjustments: list[AdjustmentRow]  # entered by hand for this period
    reps: list[tuple[str, str]]  # (id, name) of the period's reps, for a new adjustment


def load_pay_panel(
    store: Store, period: str, kind: PeriodKind, today: date, steps: Sequence[str]
) -> PayPanel:
    closes = {close.period: close for close in store.pay.closes()}
    closed = closes.get(period)
    statements = store.statements.in_period(period)
    reviews = store.reviews.in_period(period)
    names = {user.id: user.name or user.id for user in store.users.all()}
    by_key = {(s.rep_id, s.plan_id): s for s in statements}
    disputes: list[DisputeRow] = []
    for review in reviews:
        if review.kind != DISPUTE or review.status != OPEN:
            continue
        statement = by_key.get((review.rep_id, review.plan_id))
        line = ""
        if statement is not None and review.line is not None and review.line < len(statement.lines):
            shown = statement.lines[review.line]
            line = f"{shown.deal_id or shown.kind.value}: {shown.amount} ({shown.rule})"
        disputes.append(
            DisputeRow(review.id, review.rep_id, names.get(review.rep_id, review.rep_id),
                       review.plan_id, line, review.comment, review.at)
        )  # fmt: skip
    acknowledged = {(r.rep_id, r.plan_id) for r in reviews if r.kind == ACKNOWLEDGED}
    manual = store.pay.adjustments()
    reversed_ids = {a.reverses for a in manual if a.reverses is not None}
    adjustments = [
        AdjustmentRow(
            a.id,
            a.rep_id,
            names.get(a.rep_id, a.rep_id),
            a.amount,
            a.reason,
            a.author,
            a.reverses,
            a.id in reversed_ids,
        )
        for a in manual
        if a.period == period
    ]
    reps = sorted({(s.rep_id, names.get(s.rep_id, s.rep_id)) for s in statements},
                  key=lambda rep: rep[1].lower())  # fmt: skip
    return PayPanel(
        period=period,
        status=closed.status if closed is not None else PRELIMINARY,
        closed=closed,
        ended=parse_label(period, kind) < period_of(today, kind),
        statements=len(statements),
        acknowledged=len(acknowledged & set(by_key)),
        approvals=approval_states(statements, store.reviews.approvals(period), steps)
        if closed is None
        else [],
        disputes=disputes,
        adjustments=adjustments,
        reps=reps,
    )


def load_explanations(
    store: Store, plans: Sequence[Plan], currency: str, rep: str, period: str, kind: PeriodKind
) -> list[Explanation]:
    """What ``explain`` shows for each of a rep's statements of ``period``."""
    user = find_rep(store.users.all(), rep)
    statements = store.statements.of_rep(user.id, period)
    if not statements:
        known = ", ".join(sorted({s.period for s in store.statements.of_rep(user.id)})) or "none"
        raise InputError(f"--period: {user.id} has no statement for {period} (periods: {known})")
    close = {c.period: c for c in store.pay.closes()}.get(period)
    events = store.pay.events(period)
    closing = [e.detail for e in events if e.action == "close"]
    runs = store.runs.recent(limit=1, kind="sync")
    as_of = str(runs[0].options.get("as_of", "")) if runs else ""
    day = first_day(parse_label(period, kind), kind)
    versions = {plan.id: plan.fingerprint(day) for plan in plans}
    if close is not None and closing:
        as_of = str(closing[-1].get("as_of", as_of))
        versions = dict(closing[-1].get("plans", versions))
    deal_ids = {line.deal_id for s in statements for line in s.lines if line.deal_id}
    if close is not None:
        deals = {k: v for k, v in store.pay.deals_of(period).items() if k in deal_ids}
    else:
        snapshots = store.deals.by_id(deal_ids)
        found, _ = engine_deals(snapshots.values(), store.deals.splits(list(snapshots)), currency)
        deals = {deal.id: deal for deal in found}
    history = [
        f"{e.at} {e.actor}: {e.action} "
        + ", ".join(f"{k}={v}" for k, v in sorted(e.detail.items()) if k != "plans")
        for e in events
        if e.rep_id in (None, user.id)
    ]
    return [
        Explanation(
            statement=s,
            rep_name=user.name,
            status=close.status if close is not None else PRELIMINARY,
            as_of=as_of or "unknown",
            plan_version=versions.get(s.plan_id, "unknown"),
            deals=deals,
            history=history,
        )
        for s in statements
    ]
