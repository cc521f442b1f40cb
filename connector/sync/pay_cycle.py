"""The pay cycle's actions: close, reopen and approve a period, adjust a rep.

Each action that changes figures runs under the sync lock,
so the worker and a scheduled sync never see half of it: a close first syncs
(the store must be level with the CRM), then freezes the period's statements
in one transaction; an adjustment is stored with the rep's recompute owed, in
one transaction, and a sync writes the new figures. A process killed between
the two leaves the recompute owed to the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from connector.core.closing import PAID
from connector.core.models import Statement
from connector.core.money import ZERO
from connector.core.periods import PeriodKind, first_day, label, parse_label, period_of
from connector.core.snapshots import engine_deals
from connector.errors import InputError
from connector.store.inbox import Event, Inbox
from connector.store.owed import OWED_REP
from connector.store.reviews import DISPUTE, OPEN, Approval, fingerprint
from connector.store.state import Store
from connector.sync.engine import SyncEngine
from connector.sync.lease import sync_lock
from connector.sync.run import SyncOptions, SyncSettings, SyncSummary
from connector.views.statement import find_rep


@dataclass(frozen=True)
class Closed:
    period: str
    statements: int
    reps: int
    payout: Decimal


def parse_period(kind: PeriodKind, text: str, what: str = "PERIOD") -> str:
    """A period label as the plans count periods, or an error saying the form."""
    try:
        return label(parse_label(text, kind), kind)
    except ValueError as error:
        raise InputError(f"{what}: {error}") from None


def to_close(
    store: Store, settings: SyncSettings, period: str, today: date, with_earlier: bool
) -> list[str]:
    """The periods a close of ``period`` closes, oldest first, or why it may not."""
    kind = settings.period_kind
    if parse_label(period, kind) >= period_of(today, kind):
        raise InputError(
            f"{period} has not ended (today is {today}): a period closes after its last day"
        )
    closes = {close.period: close for close in store.pay.closes()}
    if period in closes:
        close = closes[period]
        raise InputError(
            f"{period} is already {close.status} (closed {close.closed_at} by {close.closed_by})"
        )
    latest = max(closes, default=None)
    if latest is not None and period < latest:
        raise InputError(
            f"{period} is before {latest}, which is closed: periods close oldest first"
        )
    earlier = [
        p for p in store.statements.periods() if p < period and (latest is None or p > latest)
    ]
    if earlier and not with_earlier:
        listed = ", ".join(earlier)
        raise InputError(
            f"close the earlier open periods first ({listed}), or close them together with "
            f"`spm-connector periods close {period} --with-earlier`"
        )
    return [*earlier, period]


@dataclass(frozen=True)
class CloseRules:
    """What must hold before a period closes, from spm.yaml's ``pay_cycle:``."""

    approvals: tuple[str, ...] = ()  # every statement approved at each step
    disputes_block: bool = False  # no dispute open


def close_periods(
    engine: SyncEngine,
    period: str,
    actor: str,
    *,
    today: date,
    with_earlier: bool = False,
    lock_wait_s: float = 600.0,
    rules: CloseRules = CloseRules(),
) -> tuple[SyncSummary, list[Closed]]:
    """Sync, then freeze (:func:`freeze`): the store is level with the CRM when it closes."""
    to_close(engine.store, engine.settings, period, today, with_earlier)  # refuse before syncing
    summary = engine.run(SyncOptions(as_of=today, lock_wait_s=lock_wait_s))
    closed = freeze(
        engine.store, engine.settings, period, actor,
        today=today, holder=engine.holder, clock=engine.clock, with_earlier=with_earlier,
        lock_wait_s=lock_wait_s, rules=rules,
    )  # fmt: skip
    return summary, closed


def freeze(
    store: Store,
    settings: SyncSettings,
    period: str,
    actor: str,
    *,
    today: date,
    holder: str,
    clock: Callable[[], datetime],
    with_earlier: bool = False,
    lock_wait_s: float = 600.0,
    rules: CloseRules = CloseRules(),
) -> list[Closed]:
    """Check that nothing is waiting or unapproved, then freeze each period in one
    transaction, under the sync lock (the worker waits)."""
    closed: list[Closed] = []
    kind = settings.period_kind
    with sync_lock(store, holder, clock, wait_s=lock_wait_s):
        periods = to_close(store, settings, period, today, with_earlier)
        _refuse_if_behind(store, settings, periods[-1])
        for each in periods:
            statements = store.statements.in_period(each)
            _refuse_unsettled(store, each, statements, rules)
            deal_ids = {line.deal_id for s in statements for line in s.lines if line.deal_id}
            snapshots = store.deals.by_id(deal_ids)
            deals, _ = engine_deals(
                snapshots.values(), store.deals.splits(list(snapshots)), settings.currency,
                settings.rates,
            )  # fmt: skip
            payout = sum((s.payout for s in statements), ZERO)
            reps = len({s.rep_id for s in statements})
            detail = {
                "statements": len(statements),
                "reps": reps,
                "payout": str(payout),
                "as_of": today.isoformat(),
                "plans": {
                    plan.id: plan.fingerprint(first_day(parse_label(each, kind), kind))
                    for plan in settings.plans
                },
            }
            store.pay.close(each, statements, deals, actor, clock(), detail)
            closed.append(Closed(each, len(statements), reps, payout))
    return closed


def _refuse_if_behind(store: Store, settings: SyncSettings, period: str) -> None:
    depth = Inbox(store).depth()
    if depth.queued:
        raise InputError(
            f"{depth.queued} webhook event(s) are waiting to be applied: let the worker "
            "finish (`spm-connector worker`, or `serve`), then close again"
        )
    owed = {kind: len(ids) for kind, ids in store.owed.all().items() if ids}
    if owed:
        listed = ", ".join(f"{n} {kind}" for kind, n in sorted(owed.items()))
        raise InputError(
            f"the store still owes work ({listed}): run `spm-connector sync`, then close again"
        )
    ended = first_day(parse_label(period, settings.period_kind) + 1, settings.period_kind)
    synced = [
        run.finished_at.astimezone(settings.timezone).date()
        for run in store.runs.recent(limit=20, kind="sync")
        if run.status in ("ok", "partial") and run.finished_at is not None
    ]
    if not synced or max(synced) < ended:
        raise InputError(
            f"the store may be behind the CRM: no sync has finished since {period} ended; "
            "run `spm-connector sync` (or close from the command line, which syncs first)"
        )


def _refuse_unsettled(
    store: Store, period: str, statements: Sequence[Statement], rules: CloseRules
) -> None:
    if rules.approvals:
        states = approval_states(statements, store.reviews.approvals(period), rules.approvals)
        waiting = [f"{len(state.waiting)} at {state.step}" for state in states if state.waiting]
        if waiting:
            raise InputError(
                f"{period}: statements still wait for approval ({', '.join(waiting)}): "
                "approve them on the reports page or with `spm-connector periods approve`"
            )
    if rules.disputes_block:
        disputes = [
            r for r in store.reviews.in_period(period) if r.kind == DISPUTE and r.status == OPEN
        ]
        if disputes:
            raise InputError(
                f"{period}: {len(disputes)} dispute(s) are open, and pay_cycle."
                "disputes_block_close is set: resolve them on the reports page first"
            )


@dataclass(frozen=True)
class ApprovalState:
    step: str
    approved: list[str]  # "rep/plan" keys approved as they stand
    waiting: list[str]  # not approved at this step, or changed since
    reset: list[str]  # why an approval no longer counts


def approval_states(
    statements: Sequence[Statement], approvals: Sequence[Approval], steps: Sequence[str]
) -> list[ApprovalState]:
    """Where each step of the chain stands for these statements. An approval of a
    statement that changed since no longer counts, and says why."""
    given = {(a.rep_id, a.plan_id, a.step): a for a in approvals}
    states: list[ApprovalState] = []
    for step in steps:
        approved: list[str] = []
        waiting: list[str] = []
        reset: list[str] = []
        for statement in statements:
            key = f"{statement.rep_id}/{statement.plan_id}"
            approval = given.get((statement.rep_id, statement.plan_id, step))
            if approval is not None and approval.fingerprint == fingerprint(statement):
                approved.append(key)
                continue
            waiting.append(key)
            if approval is not None:
                reset.append(
                    f"{key}: approved by {approval.approved_by} at {approval.at} with payout "
                    f"{approval.payout}; the statement changed since (payout now "
                    f"{statement.payout})"
                )
        states.append(ApprovalState(step, approved, waiting, reset))
    return states


def approve(
    store: Store,
    period: str,
    step: str,
    actor: str,
    clock: Callable[[], datetime],
    *,
    steps: Sequence[str],
    rep_ids: Collection[str] | None = None,
) -> tuple[int, int]:
    """Approve the period's statements (these reps' only, if given) at ``step``: only
    those the steps before it approved as they stand. Returns (approved, not ready)."""
    if step not in steps:
        listed = ", ".join(steps) or "none: pay_cycle.approvals is empty"
        raise InputError(f"step: {step!r} is not an approval step (steps: {listed})")
    closed = store.pay.closed_through()
    if closed is not None and period <= closed:
        raise InputError(f"{period} is closed: approvals are given before the close")
    statements = [
        s for s in store.statements.in_period(period) if rep_ids is None or s.rep_id in rep_ids
    ]
    earlier = steps[: steps.index(step)]
    states = approval_states(statements, store.reviews.approvals(period), earlier)
    not_ready = {key for state in states for key in state.waiting}
    ready = [s for s in statements if f"{s.rep_id}/{s.plan_id}" not in not_ready]
    return store.reviews.approve(ready, step, actor, clock()), len(not_ready)


def reopen_period(
    engine: SyncEngine,
    period: str,
    actor: str,
    reason: str,
    *,
    today: date,
    lock_wait_s: float = 600.0,
) -> SyncSummary:
    """Unfreeze the latest closed period; every rep is recomputed by the sync that follows."""
    store = engine.store
    if not reason.strip():
        raise InputError("--reason: say why the period is reopened (it goes into the event log)")
    with sync_lock(store, engine.holder, engine.clock, wait_s=lock_wait_s):
        closes = {close.period: close for close in store.pay.closes()}
        if period not in closes:
            raise InputError(f"{period} is not closed")
        if closes[period].status == PAID:
            raise InputError(
                f"{period} is paid: it cannot be reopened; enter an adjustment in an open "
                "period instead (`spm-connector adjust`)"
            )
        latest = max(closes)
        if period != latest:
            raise InputError(f"reopen {latest} first: periods reopen newest first")
        with store.transaction():
            store.pay.reopen(period, actor, engine.clock(), reason.strip())
            store.owed.add(OWED_REP, store.statements.reps())
    return engine.run(SyncOptions(as_of=today, lock_wait_s=lock_wait_s))


@dataclass(frozen=True)
class Adjusted:
    id: int
    rep_id: str
    plan_id: str
    period: str
    amount: Decimal


def adjust(
    engine: SyncEngine,
    rep: str,
    period: str,
    amount: Decimal,
    reason: str,
    actor: str,
    *,
    today: date,
    plan: str | None = None,
    lock_wait_s: float = 600.0,
) -> tuple[Adjusted, SyncSummary]:
    """Add a manual adjustment to an open period, then sync so the CRM shows it."""
    store = engine.store
    user = find_rep(store.users.all(), rep)
    with sync_lock(store, engine.holder, engine.clock, wait_s=lock_wait_s):
        number = record_adjustment(
            store, engine.settings, user.id, amount, reason, actor, engine.clock,
            today=today, period=period, plan=plan, notify=False,
        )  # fmt: skip
    summary = engine.run(SyncOptions(as_of=today, lock_wait_s=lock_wait_s))
    adjustment = next(a for a in store.pay.adjustments() if a.id == number)
    return Adjusted(number, user.id, adjustment.plan_id, period, amount), summary


def record_adjustment(
    store: Store,
    settings: SyncSettings,
    rep_id: str,
    amount: Decimal,
    reason: str,
    actor: str,
    clock: Callable[[], datetime],
    *,
    today: date,
    period: str | None = None,
    plan: str | None = None,
    notify: bool = True,
) -> int:
    """Store a manual adjustment (by default in the current period) with the rep's
    recompute owed, in one transaction. With ``notify``, an inbox event too, so a
    webhook worker applies it at once (the page that made it cannot sync). The
    caller holds the sync lock, or a pass in flight could pay off the recompute."""
    if not reason.strip():
        raise InputError("--reason: say why (it is shown on the rep's statement)")
    if not amount.is_finite() or amount == 0 or amount != amount.quantize(Decimal("0.01")):
        raise InputError(f"--amount: {amount} is not a non-zero amount in cents (like -250.00)")
    kind = settings.period_kind
    period = period or label(period_of(today, kind), kind)
    _refuse_closed(store, period)
    plan_id = _plan_of(store.statements.of_rep(rep_id, period), rep_id, period, plan)
    at = clock()
    with store.transaction():
        number = store.pay.adjust(rep_id, plan_id, period, amount, reason.strip(), actor, at)
        store.owed.add(OWED_REP, [rep_id])
        if notify:
            event = Event("events", f"spm-adjustment-{number}", "user", rep_id, "spm.adjustment")
            Inbox(store).add([event], at)
    return number


def reverse(
    engine: SyncEngine,
    number: int,
    reason: str,
    actor: str,
    *,
    today: date,
    lock_wait_s: float = 600.0,
) -> tuple[Adjusted, SyncSummary]:
    """Reverse an adjustment (:func:`record_reversal`), then sync so the CRM shows it."""
    store = engine.store
    with sync_lock(store, engine.holder, engine.clock, wait_s=lock_wait_s):
        done = record_reversal(
            store, engine.settings, number, reason, actor, engine.clock, today=today, notify=False
        )
    return done, engine.run(SyncOptions(as_of=today, lock_wait_s=lock_wait_s))


def record_reversal(
    store: Store,
    settings: SyncSettings,
    number: int,
    reason: str,
    actor: str,
    clock: Callable[[], datetime],
    *,
    today: date,
    notify: bool = True,
) -> Adjusted:
    """The opposite of adjustment ``number``, in its period if still open, else in the
    current period; at most once. The caller holds the sync lock."""
    if not reason.strip():
        raise InputError("--reason: say why the adjustment is reversed")
    adjustments = {a.id: a for a in store.pay.adjustments()}
    original = adjustments.get(number)
    if original is None:
        raise InputError(f"--reverse: there is no adjustment #{number}")
    if any(a.reverses == number for a in adjustments.values()):
        raise InputError(f"--reverse: adjustment #{number} is already reversed")
    if original.reverses is not None:
        raise InputError(f"--reverse: #{number} is itself a reversal; enter a new adjustment")
    period, plan = original.period, original.plan_id
    closed = store.pay.closed_through()
    if closed is not None and period <= closed:
        period = label(period_of(today, settings.period_kind), settings.period_kind)
        statements = store.statements.of_rep(original.rep_id, period)
        in_plan = any(s.plan_id == plan for s in statements)
        plan = _plan_of(statements, original.rep_id, period, plan if in_plan else None)
    at = clock()
    with store.transaction():
        new = store.pay.adjust(
            original.rep_id, plan, period, -original.amount, reason.strip(), actor, at,
            reverses=number,
        )  # fmt: skip
        store.owed.add(OWED_REP, [original.rep_id])
        if notify:
            event = Event("events", f"spm-adjustment-{new}", "user", original.rep_id,
                          "spm.adjustment")  # fmt: skip
            Inbox(store).add([event], at)
    return Adjusted(new, original.rep_id, plan, period, -original.amount)


def _refuse_closed(store: Store, period: str) -> None:
    closed = store.pay.closed_through()
    if closed is not None and period <= closed:
        raise InputError(
            f"--period: {period} is closed (through {closed}); adjust the first open period, "
            "where it is paid"
        )


def _plan_of(statements: Sequence[Statement], rep_id: str, period: str, plan: str | None) -> str:
    plans = sorted({s.plan_id for s in statements})
    if plan is not None:
        if plan not in plans:
            raise InputError(
                f"--plan: rep {rep_id} has no statement on plan {plan!r} in {period}"
                + (f" (plans: {', '.join(plans)})" if plans else "")
            )
        return plan
    if not plans:
        raise InputError(f"rep {rep_id} has no statement in {period}: is the rep on a plan then?")
    if len(plans) > 1:
        raise InputError(
            f"rep {rep_id} is on {', '.join(plans)} in {period}: choose one with --plan"
        )
    return plans[0]
