"""Deal history: what the CRM says now + what we saw before → the deal the engine computes.

Pure functions beside the calculation core. The CRM only knows a deal's current
stage; that a won deal was later reversed (lost, reopened or deleted) is history
only we remember, and it is what turns into a clawback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from connector.core.currency import Rates, convert
from connector.core.models import (
    CalcWarning,
    CrmDeal,
    CrmUser,
    Deal,
    DealSnapshot,
    DealStatus,
    Outcome,
    Rep,
    Split,
)
from connector.core.money import HUNDRED, ZERO

# A deal amount past this is no sale (Salesforce's Currency(16,2) stops at 10^14).
MAX_AMOUNT = Decimal(10) ** 14


def snapshot_of(deal: CrmDeal, previous: DealSnapshot | None, zone: ZoneInfo) -> DealSnapshot:
    """The deal as the engine sees it, with the history only we remember.

    A deal seen won before that is now lost, reopened or deleted has been
    reversed: it becomes ``cancelled`` on the day the CRM stamped that change
    (kept from the first time we saw it). Reversed before its close date, it
    counts as cancelled on the close date, that is as lost.
    """
    seen_on = deal.modified_at.astimezone(zone).date()
    first_won_on = previous.first_won_on if previous is not None else None
    cancel_date: date | None = None
    if deal.outcome is Outcome.WON and not deal.deleted:
        status = DealStatus.WON
        first_won_on = first_won_on or seen_on
    elif first_won_on is not None:
        status = DealStatus.CANCELLED
        already = previous is not None and previous.status is DealStatus.CANCELLED
        cancel_date = previous.cancel_date if already and previous is not None else seen_on
        if (
            deal.close_date is not None
            and cancel_date is not None
            and cancel_date < deal.close_date
        ):
            cancel_date = deal.close_date
    else:
        status = DealStatus.LOST if deal.outcome is Outcome.LOST else DealStatus.OPEN
    return DealSnapshot(
        id=deal.id,
        owner_id=deal.owner_id,
        amount=deal.amount,
        currency=deal.currency,
        close_date=deal.close_date,
        outcome=deal.outcome,
        status=status,
        first_won_on=first_won_on,
        cancel_date=cancel_date,
        type=deal.type,
        name=deal.name,
        properties=dict(deal.properties),
        modified_at=deal.modified_at,
        deleted=deal.deleted,
        created_date=deal.created_date,
    )


def business_key(snapshot: DealSnapshot) -> tuple[object, ...]:
    """What the calculation reads from a deal: a change elsewhere touches no statement."""
    return (
        snapshot.owner_id,
        snapshot.amount,
        snapshot.currency,
        snapshot.close_date,
        snapshot.status,
        snapshot.cancel_date,
        snapshot.type,
        tuple(sorted(snapshot.properties.items())),
        snapshot.deleted,
        snapshot.created_date,
    )


def touched_reps(previous: DealSnapshot | None, current: DealSnapshot) -> set[str]:
    """The owners whose statements a change of this deal can move (none when nothing did)."""
    if previous is not None and business_key(previous) == business_key(current):
        return set()
    reps = {current.owner_id}
    if previous is not None:
        reps.add(previous.owner_id)
    return reps


def carries_credit(snapshot: DealSnapshot) -> bool:
    """Won now or once, or open: only such a deal credits anyone (an open one, in its
    estimate), so only its splits matter."""
    return snapshot.first_won_on is not None or snapshot.outcome is not Outcome.LOST


def as_deleted(snapshot: DealSnapshot) -> CrmDeal:
    """A deal the CRM no longer knows at all (purged), as a deletion of what we last saw."""
    return CrmDeal(
        id=snapshot.id,
        owner_id=snapshot.owner_id,
        amount=snapshot.amount,
        close_date=snapshot.close_date,
        outcome=snapshot.outcome,
        modified_at=snapshot.modified_at,
        currency=snapshot.currency,
        type=snapshot.type,
        name=snapshot.name,
        deleted=True,
        properties=snapshot.properties,
        created_date=snapshot.created_date,
    )


def rep_of(user: CrmUser) -> Rep:
    return Rep(
        id=user.id,
        name=user.name,
        email=user.email,
        active=user.active,
        manager_id=user.manager_id,
        team_id=user.team_id,
    )


def credited(deal: Deal) -> list[str]:
    """Who a deal credits: its split reps, else its owner."""
    return [split.rep_id for split in deal.splits] or [deal.owner_id]


def currency_warning(snapshot: DealSnapshot, currency: str) -> str | None:
    if snapshot.currency and snapshot.currency != currency:
        return (
            f"deal {snapshot.id} is in {snapshot.currency}, not the plan currency "
            f"{currency}: left out of the calculation"
        )
    return None


def engine_deals(
    snapshots: Iterable[DealSnapshot],
    splits: Mapping[str, Sequence[tuple[str, Decimal]]],
    currency: str,
    rates: Rates | None = None,
) -> tuple[list[Deal], list[CalcWarning]]:
    """Snapshots the engine can compute; the rest are reported, never silently mixed in.

    Left out: deleted deals never won, deals in another currency when there are no
    ``rates`` (reported when pulled; with rates they are converted), won deals
    without an amount or close date, absurd amounts. Splits
    that do not sum to 100 or name a rep twice are reported and the deal is
    credited to its owner.
    """
    deals: list[Deal] = []
    warnings: list[CalcWarning] = []
    for snap in sorted(snapshots, key=lambda s: s.id):
        if snap.deleted and snap.status is not DealStatus.CANCELLED:
            continue
        if snap.currency and snap.currency != currency and rates is None:
            continue
        credit_bearing = snap.status in (DealStatus.WON, DealStatus.CANCELLED)
        if snap.close_date is None or snap.amount is None:
            if credit_bearing:
                missing = "amount" if snap.amount is None else "close date"
                warnings.append(
                    CalcWarning(
                        f"deal {snap.id} is won but has no {missing}: left out of the calculation"
                    )
                )
            continue
        if abs(snap.amount) >= MAX_AMOUNT:
            warnings.append(
                CalcWarning(
                    f"deal {snap.id}: amount {snap.amount} is beyond any plausible deal "
                    f"(10^14 or more): left out of the calculation"
                )
            )
            continue
        rows = splits.get(snap.id, [])
        total = sum((percent for _, percent in rows), ZERO)
        deal_splits: tuple[Split, ...] = ()
        if rows and total == HUNDRED and len({rep for rep, _ in rows}) == len(rows):
            deal_splits = tuple(Split(rep, percent) for rep, percent in rows)
        elif rows:
            warnings.append(
                CalcWarning(
                    f"deal {snap.id}: splits sum to {total}, not 100 (or name a rep twice); "
                    "credited to the owner"
                )
            )
        deals.append(
            Deal(
                id=snap.id,
                owner_id=snap.owner_id,
                amount=snap.amount,
                close_date=snap.close_date,
                status=snap.status,
                currency=snap.currency,
                cancel_date=snap.cancel_date,
                type=snap.type,
                properties=snap.properties,
                splits=deal_splits,
                created_date=snap.created_date,
            )
        )
    if rates is not None:
        deals = convert(deals, rates, currency)
    return deals, warnings
