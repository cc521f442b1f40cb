"""The pay cycle's actions: close and reopen a period, adjust a rep, mark a period paid.

Each action that changes figures runs through the engine, under the sync lock,
so the worker and a scheduled sync never see half of it: a close first syncs
(the store must be level with the CRM), then freezes the period's statements
in one transaction; an adjustment is stored with the rep's recompute owed, in
one transaction, and a sync writes the new figures. A process killed between
the two leaves the recompute owed to the next run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from connector.core.closing import PAID
from connector.core.models import Statement
from connector.core.money import ZERO
from connector.core.periods import label, parse_label, period_of
from connector.core.snapshots import engine_deals
from connector.errors import InputError
from connector.store.inbox import Inbox
from connector.store.owed import OWED_REP
from connector.store.state import Store
from connector.sync.engine import SyncEngine
from connector.sync.lease import sync_lock
from connector.sync.run import SyncOptions, SyncSummary
from connector.views.statement import find_rep


@dataclass(frozen=True)
class Closed:
    period: str
    statements: int
    reps: int
    payout: Decimal


def parse_period(engine: SyncEngine, text: str, what: str = "PERIOD") -> str:
    """A period label as the plans count periods, or an error saying the form."""
    try:
        return label(parse_label(text, engine.settings.period_kind), engine.settings.period_kind)
    except ValueError as error:
        raise InputError(f"{what}: {error}") from None


def to_close(
    store: Store, engine: SyncEngine, period: str, today: date, with_earlier: bool
) -> list[str]:
    """The periods a close of ``period`` closes, oldest first, or why it may not."""
    kind = engine.settings.period_kind
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


def close_periods(
    engine: SyncEngine,
    period: str,
    actor: str,
    *,
    today: date,
    with_earlier: bool = False,
    lock_wait_s: float = 600.0,
) -> tuple[SyncSummary, list[Closed]]:
    """Sync, check that nothing is waiting, and freeze each period in one transaction."""
    store = engine.store
    to_close(store, engine, period, today, with_earlier)  # refuse before touching the CRM
    summary = engine.run(SyncOptions(as_of=today, lock_wait_s=lock_wait_s))
    closed: list[Closed] = []
    with sync_lock(store, engine.holder, engine.clock, wait_s=lock_wait_s):
        periods = to_close(store, engine, period, today, with_earlier)
        _refuse_if_behind(store)
        for each in periods:
            statements = store.statements.in_period(each)
            deal_ids = {line.deal_id for s in statements for line in s.lines if line.deal_id}
            snapshots = store.deals.by_id(deal_ids)
            deals, _ = engine_deals(
                snapshots.values(), store.deals.splits(list(snapshots)), engine.settings.currency
            )
            payout = sum((s.payout for s in statements), ZERO)
            reps = len({s.rep_id for s in statements})
            detail = {"statements": len(statements), "reps": reps, "payout": str(payout)}
            store.pay.close(each, statements, deals, actor, engine.clock(), detail)
            closed.append(Closed(each, len(statements), reps, payout))
    return summary, closed


def _refuse_if_behind(store: Store) -> None:
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
    if not reason.strip():
        raise InputError("--reason: say why (it is shown on the rep's statement)")
    if amount == 0 or amount != amount.quantize(Decimal("0.01")):
        raise InputError(f"--amount: {amount} is not a non-zero amount in cents (like -250.00)")
    user = find_rep(store.users.all(), rep)
    with sync_lock(store, engine.holder, engine.clock, wait_s=lock_wait_s):
        _refuse_closed(store, period)
        plan_id = _plan_of(store.statements.of_rep(user.id, period), user.id, period, plan)
        with store.transaction():
            number = store.pay.adjust(
                user.id, plan_id, period, amount, reason.strip(), actor, engine.clock()
            )
            store.owed.add(OWED_REP, [user.id])
    summary = engine.run(SyncOptions(as_of=today, lock_wait_s=lock_wait_s))
    return Adjusted(number, user.id, plan_id, period, amount), summary


def reverse(
    engine: SyncEngine,
    number: int,
    reason: str,
    actor: str,
    *,
    today: date,
    lock_wait_s: float = 600.0,
) -> tuple[Adjusted, SyncSummary]:
    """Reverse an adjustment: the opposite amount, in its period if still open, else in
    the current period."""
    store = engine.store
    if not reason.strip():
        raise InputError("--reason: say why the adjustment is reversed")
    with sync_lock(store, engine.holder, engine.clock, wait_s=lock_wait_s):
        adjustments = {a.id: a for a in store.pay.adjustments()}
        original = adjustments.get(number)
        if original is None:
            raise InputError(f"--reverse: there is no adjustment #{number}")
        if any(a.reverses == number for a in adjustments.values()):
            raise InputError(f"--reverse: adjustment #{number} is already reversed")
        if original.reverses is not None:
            raise InputError(f"--reverse: #{number} is itself a reversal; enter a new adjustment")
        period = original.period
        closed = store.pay.closed_through()
        if closed is not None and period <= closed:
            period = label(
                period_of(today, engine.settings.period_kind), engine.settings.period_kind
            )
        with store.transaction():
            new = store.pay.adjust(
                original.rep_id,
                original.plan_id,
                period,
                -original.amount,
                reason.strip(),
                actor,
                engine.clock(),
                reverses=number,
            )
            store.owed.add(OWED_REP, [original.rep_id])
    summary = engine.run(SyncOptions(as_of=today, lock_wait_s=lock_wait_s))
    return Adjusted(new, original.rep_id, original.plan_id, period, -original.amount), summary


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
