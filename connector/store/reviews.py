"""What reps and approvers say about statements: acknowledgements, disputes, approvals.

Each action is one transaction with its entry in the event log. An approval keeps
a fingerprint of the statement it approved: when a recompute changes the
statement, the approval no longer counts (the pay cycle says why).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from connector.core.models import Statement
from connector.store.books import log_event
from connector.store.db import Database, iso
from connector.store.schema import approvals_table, statement_reviews_table
from connector.store.statements import statement_body

ACKNOWLEDGED = "acknowledged"
DISPUTE = "dispute"
OPEN = "open"
RESOLVED = "resolved"
DONE = "done"  # an acknowledgement: nothing to resolve


@dataclass(frozen=True)
class Review:
    id: int
    rep_id: str
    plan_id: str
    period: str
    kind: str
    line: int | None
    comment: str
    at: str
    status: str
    resolved_at: str | None
    resolved_by: str | None
    reply: str | None
    adjustment_id: int | None


@dataclass(frozen=True)
class Approval:
    rep_id: str
    plan_id: str
    period: str
    step: str
    approved_by: str
    at: str
    fingerprint: str
    payout: str


def fingerprint(statement: Statement) -> str:
    """What an approval approved: the statement's stored form, hashed."""
    return hashlib.sha256(statement_body(statement).encode()).hexdigest()


class Reviews:
    def __init__(self, db: Database) -> None:
        self._db = db

    def acknowledge(self, statement: Statement, at: datetime) -> int:
        return self._add(statement, ACKNOWLEDGED, None, "", DONE, at)

    def dispute(self, statement: Statement, line: int | None, comment: str, at: datetime) -> int:
        return self._add(statement, DISPUTE, line, comment, OPEN, at)

    def _add(
        self,
        statement: Statement,
        kind: str,
        line: int | None,
        comment: str,
        status: str,
        at: datetime,
    ) -> int:
        with self._db.transaction() as connection:
            number = self._db.insert_one(
                connection,
                statement_reviews_table,
                rep_id=statement.rep_id,
                plan_id=statement.plan_id,
                period=statement.period,
                kind=kind,
                line=line,
                comment=comment,
                at=iso(at),
                status=status,
            )
            detail = {"review": number, "plan": statement.plan_id, "line": line}
            if comment:
                detail["comment"] = comment
            log_event(connection, at, statement.rep_id, kind, statement.period, statement.rep_id,
                      detail)  # fmt: skip
        return number

    def resolve(
        self, number: int, reply: str, actor: str, at: datetime, adjustment_id: int | None = None
    ) -> None:
        t = statement_reviews_table
        with self._db.transaction() as connection:
            row = connection.execute(sa.select(t).where(t.c.id == number)).one()
            connection.execute(
                t.update()
                .where(t.c.id == number)
                .values(
                    status=RESOLVED,
                    resolved_at=iso(at),
                    resolved_by=actor,
                    reply=reply,
                    adjustment_id=adjustment_id,
                )
            )
            detail = {"review": number, "reply": reply, "adjustment": adjustment_id}
            log_event(connection, at, actor, "resolve", row.period, row.rep_id, detail)

    def get(self, number: int) -> Review | None:
        t = statement_reviews_table
        with self._db.reading() as connection:
            row = connection.execute(sa.select(t).where(t.c.id == number)).one_or_none()
        return None if row is None else Review(*row)

    def of_rep(self, rep_id: str) -> list[Review]:
        return self._where(statement_reviews_table.c.rep_id == rep_id)

    def in_period(self, period: str) -> list[Review]:
        return self._where(statement_reviews_table.c.period == period)

    def _where(self, condition: sa.ColumnElement[bool]) -> list[Review]:
        t = statement_reviews_table
        with self._db.reading() as connection:
            return [
                Review(*row)
                for row in connection.execute(sa.select(t).where(condition).order_by(t.c.id))
            ]

    # -- approvals --------------------------------------------------------------------------

    def approve(self, statements: Sequence[Statement], step: str, actor: str, at: datetime) -> int:
        """Approve these statements at ``step`` (again, if they changed since)."""
        rows = [
            {
                "rep_id": s.rep_id,
                "plan_id": s.plan_id,
                "period": s.period,
                "step": step,
                "approved_by": actor,
                "at": iso(at),
                "fingerprint": fingerprint(s),
                "payout": str(s.payout),
            }
            for s in statements
        ]
        if not rows:
            return 0
        with self._db.transaction() as connection:
            self._db.upsert(
                connection, approvals_table, rows, ["approved_by", "at", "fingerprint", "payout"]
            )
            periods = sorted({s.period for s in statements})
            for period in periods:
                reps = sorted({s.rep_id for s in statements if s.period == period})
                detail = {"step": step, "statements": len(reps), "reps": reps[:50]}
                log_event(connection, at, actor, "approve", period, None, detail)
        return len(rows)

    def approvals(self, period: str) -> list[Approval]:
        t = approvals_table
        with self._db.reading() as connection:
            query = sa.select(t).where(t.c.period == period).order_by(t.c.rep_id, t.c.step)
            return [Approval(*row) for row in connection.execute(query)]
