"""The pay cycle's records: closed periods, frozen statements, adjustments, the event log.

These are financial records: ``sync --rebuild`` keeps them, nothing edits a
closed statement, and the event log is only ever appended to. Each state change
(close, reopen, paid, an adjustment) is one transaction with its event, so a
process killed in the middle leaves either all of it or none.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from connector.core.closing import CLOSED, PAID, Books, ManualAdjustment
from connector.core.models import Deal, DealStatus, Split, Statement
from connector.store.db import Database, chunks, iso
from connector.store.schema import (
    adjustments_table,
    closed_deals_table,
    closed_statements_table,
    pay_events_table,
    period_closes_table,
)
from connector.store.statements import statement_body, statement_of


@dataclass(frozen=True)
class PeriodClose:
    period: str
    status: str  # closed | paid
    closed_at: str
    closed_by: str
    paid_at: str | None
    paid_by: str | None


@dataclass(frozen=True)
class PayEvent:
    id: int
    at: str
    actor: str
    action: str
    period: str | None
    rep_id: str | None
    detail: dict[str, Any]


class PayCycle:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- periods ----------------------------------------------------------------------------

    def closes(self) -> list[PeriodClose]:
        """Every closed or paid period, oldest first."""
        t = period_closes_table
        with self._db.reading() as connection:
            rows = connection.execute(sa.select(t).order_by(t.c.period))
            return [PeriodClose(*row) for row in rows]

    def statuses(self) -> dict[str, str]:
        """closed / paid by period (a period not here is preliminary)."""
        return {close.period: close.status for close in self.closes()}

    def close_details(self) -> dict[str, dict[str, Any]]:
        """What each period still closed was closed with (its latest close entry)."""
        closed = set(self.statuses())
        return {
            e.period: e.detail for e in self.events() if e.action == "close" and e.period in closed
        }

    def closed_through(self) -> str | None:
        t = period_closes_table
        with self._db.reading() as connection:
            latest: str | None = connection.execute(sa.select(sa.func.max(t.c.period))).scalar()
            return latest

    def close(
        self,
        period: str,
        statements: Sequence[Statement],
        deals: Iterable[Deal],
        actor: str,
        at: datetime,
        detail: Mapping[str, Any],
    ) -> None:
        """Freeze ``statements`` as the period's, with the deals they paid: one commit."""
        with self._db.transaction() as connection:
            connection.execute(
                period_closes_table.insert().values(
                    period=period, status=CLOSED, closed_at=iso(at), closed_by=actor
                )
            )
            self._db.insert_all(
                connection,
                closed_statements_table,
                [
                    {
                        "rep_id": s.rep_id,
                        "plan_id": s.plan_id,
                        "period": s.period,
                        "body": statement_body(s),
                    }
                    for s in statements
                ],
            )
            self._db.insert_all(
                connection,
                closed_deals_table,
                [{"period": period, "deal_id": d.id, "body": _deal_body(d)} for d in deals],
            )
            log_event(connection, at, actor, "close", period, None, detail)

    def reopen(self, period: str, actor: str, at: datetime, reason: str) -> None:
        """Forget the period's frozen statements (the event log keeps the close)."""
        with self._db.transaction() as connection:
            for table in (period_closes_table, closed_statements_table, closed_deals_table):
                connection.execute(table.delete().where(table.c.period == period))
            log_event(connection, at, actor, "reopen", period, None, {"reason": reason})

    def mark_paid(self, period: str, actor: str, at: datetime, detail: Mapping[str, Any]) -> None:
        t = period_closes_table
        with self._db.transaction() as connection:
            connection.execute(
                t.update()
                .where(t.c.period == period)
                .values(status=PAID, paid_at=iso(at), paid_by=actor)
            )
            log_event(connection, at, actor, "paid", period, None, detail)

    # -- what the calculation needs ---------------------------------------------------------

    def books(self, rep_ids: Collection[str] | None = None) -> Books:
        """The closed statements of these reps (all with None), the deals behind them as
        last closed, and every manual adjustment."""
        closed_through = self.closed_through()
        statements: list[Statement] = []
        if closed_through is not None:
            t = closed_statements_table
            for row in self._db.rows_of(t, t.c.rep_id, rep_ids):
                statements.append(statement_of(json.loads(row.body)))
        # The deals as closed are read only when an adjustment needs its reason.
        return Books(closed_through, statements, self._closed_deals, self.adjustments())

    def statements_of(self, period: str) -> list[Statement]:
        """Every statement of a closed period, as closed."""
        t = closed_statements_table
        query = sa.select(t.c.body).where(t.c.period == period).order_by(t.c.rep_id, t.c.plan_id)
        with self._db.reading() as connection:
            return [statement_of(json.loads(body)) for body in connection.execute(query).scalars()]

    def deals_of(self, period: str) -> dict[str, Deal]:
        """The deals a closed period paid, as they were when it closed."""
        t = closed_deals_table
        with self._db.reading() as connection:
            rows = connection.execute(sa.select(t.c.body).where(t.c.period == period)).scalars()
            deals = [_deal_of(json.loads(body)) for body in rows]
        return {deal.id: deal for deal in deals}

    def _closed_deals(self, deal_ids: Collection[str]) -> dict[str, Deal]:
        """Each deal as the latest close that paid it saw it."""
        t = closed_deals_table
        latest: dict[str, tuple[str, str]] = {}
        base = sa.select(t.c.deal_id, t.c.period, t.c.body)
        with self._db.reading() as connection:
            for chunk in chunks(sorted(deal_ids)):
                for deal_id, period, body in connection.execute(base.where(t.c.deal_id.in_(chunk))):
                    if deal_id not in latest or latest[deal_id][0] < period:
                        latest[deal_id] = (period, body)
        return {deal_id: _deal_of(json.loads(body)) for deal_id, (_, body) in latest.items()}

    # -- adjustments ------------------------------------------------------------------------

    def adjust(
        self,
        rep_id: str,
        plan_id: str,
        period: str,
        amount: Decimal,
        reason: str,
        actor: str,
        at: datetime,
        reverses: int | None = None,
    ) -> int:
        """Add a manual adjustment (never edited or deleted: a reversal is another one)."""
        with self._db.transaction() as connection:
            number = self._db.insert_one(
                connection,
                adjustments_table,
                rep_id=rep_id,
                plan_id=plan_id,
                period=period,
                amount=str(amount),
                reason=reason,
                author=actor,
                created_at=iso(at),
                reverses=reverses,
            )
            detail = {"id": number, "plan": plan_id, "amount": str(amount), "reason": reason}
            if reverses is not None:
                detail["reverses"] = reverses
            log_event(connection, at, actor, "adjust", period, rep_id, detail)
        return number

    def adjustments(self) -> list[ManualAdjustment]:
        t = adjustments_table
        with self._db.reading() as connection:
            rows = connection.execute(sa.select(t).order_by(t.c.id))
            return [
                ManualAdjustment(
                    row.id,
                    row.rep_id,
                    row.plan_id,
                    row.period,
                    Decimal(row.amount),
                    row.reason,
                    row.author,
                    row.reverses,
                    row.created_at,
                )
                for row in rows
            ]

    # -- the event log ----------------------------------------------------------------------

    def record(
        self,
        at: datetime,
        actor: str,
        action: str,
        period: str | None,
        detail: Mapping[str, Any],
        rep_id: str | None = None,
    ) -> None:
        with self._db.transaction() as connection:
            log_event(connection, at, actor, action, period, rep_id, detail)

    def events(self, period: str | None = None) -> list[PayEvent]:
        t = pay_events_table
        query = sa.select(t).order_by(t.c.id)
        if period is not None:
            query = query.where(t.c.period == period)
        with self._db.reading() as connection:
            return [
                PayEvent(r.id, r.at, r.actor, r.action, r.period, r.rep_id, json.loads(r.detail))
                for r in connection.execute(query)
            ]


def log_event(
    connection: sa.Connection,
    at: datetime,
    actor: str,
    action: str,
    period: str | None,
    rep_id: str | None,
    detail: Mapping[str, Any],
) -> None:
    """Append one entry to the event log, inside the caller's transaction."""
    connection.execute(
        pay_events_table.insert().values(
            at=iso(at),
            actor=actor,
            action=action,
            period=period,
            rep_id=rep_id,
            detail=json.dumps(detail, sort_keys=True, default=str),
        )
    )


def _deal_body(deal: Deal) -> str:
    return json.dumps(
        {
            "id": deal.id,
            "owner_id": deal.owner_id,
            "amount": str(deal.amount),
            "close_date": deal.close_date.isoformat(),
            "status": deal.status.value,
            "currency": deal.currency,
            "cancel_date": deal.cancel_date.isoformat() if deal.cancel_date else None,
            "type": deal.type,
            "splits": [[split.rep_id, str(split.percent)] for split in deal.splits],
        },
        separators=(",", ":"),
    )


def _deal_of(body: Mapping[str, Any]) -> Deal:
    cancel = body.get("cancel_date")
    return Deal(
        body["id"],
        body["owner_id"],
        Decimal(body["amount"]),
        date.fromisoformat(body["close_date"]),
        DealStatus(body["status"]),
        currency=body.get("currency"),
        cancel_date=date.fromisoformat(cancel) if cancel else None,
        type=body.get("type"),
        splits=tuple(Split(rep, Decimal(percent)) for rep, percent in body.get("splits", ())),
    )
