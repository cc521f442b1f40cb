"""Statements as computed, one row per rep, plan and period (the body is JSON)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from connector.core.models import GoalResult, Line, LineKind, Statement
from connector.store.db import Database, chunks, decimal_of, decimal_text
from connector.store.schema import statements_table


@dataclass(frozen=True)
class Changes:
    stale: list[tuple[str, str, str]]  # (rep, plan, period) rows to delete
    fresh: list[dict[str, Any]]  # rows to insert


class Statements:
    def __init__(self, db: Database) -> None:
        self._db = db

    def replace(self, rep_ids: Collection[str], statements: Sequence[Statement]) -> None:
        """These reps' statements as just computed, in place of what was stored for them."""
        self.apply(self.changes(rep_ids, statements))

    def changes(self, rep_ids: Collection[str], statements: Sequence[Statement]) -> Changes:
        """What replacing these reps' statements changes (read before any write).

        Only what changed is written: a rep recomputed because one deal moved keeps
        most of its statements, and a short write transaction keeps the store free
        for the webhook receiver.
        """
        bodies = {(s.rep_id, s.plan_id, s.period): statement_body(s) for s in statements}
        stored = self._bodies(rep_ids)
        return Changes(
            stale=[key for key, body in stored.items() if bodies.get(key) != body],
            fresh=[
                {"rep_id": rep, "plan_id": plan, "period": period, "body": body}
                for (rep, plan, period), body in bodies.items()
                if stored.get((rep, plan, period)) != body
            ],
        )

    def apply(self, changes: Changes) -> None:
        with self._db.transaction() as connection:
            if changes.stale:
                t = statements_table
                connection.execute(
                    t.delete().where(
                        t.c.rep_id == sa.bindparam("r"),
                        t.c.plan_id == sa.bindparam("p"),
                        t.c.period == sa.bindparam("d"),
                    ),
                    [{"r": rep, "p": plan, "d": period} for rep, plan, period in changes.stale],
                )
            self._db.insert_all(connection, statements_table, changes.fresh)

    def _bodies(self, rep_ids: Collection[str]) -> dict[tuple[str, str, str], str]:
        t = statements_table
        found: dict[tuple[str, str, str], str] = {}
        with self._db.reading() as connection:
            for chunk in chunks(sorted(rep_ids)):
                query = sa.select(t.c.rep_id, t.c.plan_id, t.c.period, t.c.body).where(
                    t.c.rep_id.in_(chunk)
                )
                for rep, plan, period, body in connection.execute(query):
                    found[rep, plan, period] = body
        return found

    def periods(self) -> list[str]:
        """Every period with a statement, oldest first."""
        t = statements_table
        with self._db.reading() as connection:
            return list(
                connection.execute(sa.select(t.c.period).distinct().order_by(t.c.period)).scalars()
            )

    def reps(self) -> set[str]:
        """Every rep with a statement."""
        with self._db.reading() as connection:
            return set(
                connection.execute(sa.select(statements_table.c.rep_id).distinct()).scalars()
            )

    def in_period(self, period: str) -> list[Statement]:
        """Every rep's statements of one period (the reports page's leaderboard)."""
        query = sa.select(statements_table.c.body).where(statements_table.c.period == period)
        with self._db.reading() as connection:
            return [statement_of(json.loads(body)) for body in connection.execute(query).scalars()]

    def payouts_by_period(self, year: str) -> dict[str, Decimal]:
        """The team's payout per period of ``year``: only that figure of each statement.

        The database reads it out of each body (SQLite's json_extract, PostgreSQL's
        ->>), so a year of a thousand reps is not twelve thousand documents parsed here.
        """
        t = statements_table
        payout = self._db.json_text(t.c.body, "payout")
        query = sa.select(t.c.period, payout).where(t.c.period.like(f"{year}-%"))
        totals: dict[str, Decimal] = {}
        with self._db.reading() as connection:
            for period, text in connection.execute(query):
                totals[period] = totals.get(period, Decimal(0)) + Decimal(text)
        return totals

    def bookings_and_payouts(self, period: str) -> dict[str, tuple[Decimal, Decimal]]:
        """Each rep's bookings and payout of ``period`` (summed over plans), read out of
        the bodies by the database: the period a page compares with."""
        t = statements_table
        query = sa.select(
            t.c.rep_id,
            self._db.json_text(t.c.body, "bookings"),
            self._db.json_text(t.c.body, "payout"),
        ).where(t.c.period == period)
        found: dict[str, tuple[Decimal, Decimal]] = {}
        with self._db.reading() as connection:
            for rep_id, bookings, payout in connection.execute(query):
                before = found.get(rep_id, (Decimal(0), Decimal(0)))
                found[rep_id] = (before[0] + Decimal(bookings), before[1] + Decimal(payout))
        return found

    def figures_in(
        self, periods: Collection[str]
    ) -> list[tuple[str, str, str, Decimal, Decimal | None, Decimal, Decimal]]:
        """(rep, plan, period, bookings, quota, payout, draw balance) of every statement of
        ``periods``, read out of the bodies by the database: a quarter or a year of a
        large team without parsing every document."""
        t = statements_table
        fields = [
            self._db.json_text(t.c.body, key)
            for key in ("bookings", "quota", "payout", "draw_balance")
        ]
        query = sa.select(t.c.rep_id, t.c.plan_id, t.c.period, *fields).where(
            t.c.period.in_(sorted(periods))
        )
        with self._db.reading() as connection:
            return [
                (rep, plan, period, Decimal(bookings), decimal_of(quota), Decimal(payout),
                 Decimal(balance))
                for rep, plan, period, bookings, quota, payout, balance in connection.execute(query)
            ]  # fmt: skip

    def of_rep(self, rep_id: str, period: str | None = None) -> list[Statement]:
        """One rep's statements (of one period, if given), by period and plan."""
        query = sa.select(statements_table.c.body).where(statements_table.c.rep_id == rep_id)
        if period is not None:
            query = query.where(statements_table.c.period == period)
        query = query.order_by(statements_table.c.period, statements_table.c.plan_id)
        with self._db.reading() as connection:
            return [statement_of(json.loads(body)) for body in connection.execute(query).scalars()]


# Derived from the model, so a new Decimal field on Statement is stored without edits here.
_DECIMAL_FIELDS = tuple(f.name for f in fields(Statement) if "Decimal" in str(f.type))


def _statement_json(statement: Statement) -> dict[str, Any]:
    body: dict[str, Any] = {
        "rep_id": statement.rep_id,
        "plan_id": statement.plan_id,
        "period": statement.period,
        "won_count": statement.won_count,
        "lost_count": statement.lost_count,
    }
    for name in _DECIMAL_FIELDS:
        body[name] = decimal_text(getattr(statement, name))
    if statement.goals:
        body["goals"] = [
            [
                goal.goal_id,
                goal.metric,
                goal.team_id,
                decimal_text(goal.target),
                str(goal.actual),
                decimal_text(goal.attainment),
                decimal_text(goal.pace),
                goal.deadline.isoformat() if goal.deadline else None,
            ]
            for goal in statement.goals
        ]
    body["lines"] = [
        [
            line.kind.value,
            line.deal_id,
            str(line.amount),
            decimal_text(line.rate),
            line.rule,
            line.paid_period,
            decimal_text(line.credit),
        ]
        for line in statement.lines
    ]
    return body


def _goal_of(row: Sequence[Any]) -> GoalResult:
    # A body stored before goals had a pace has six items: pace and deadline stay empty.
    goal_id, metric, team, target, actual, attainment, *paced = row
    pace, deadline = (*paced, None, None)[:2]
    return GoalResult(
        goal_id, metric, team, decimal_of(target), Decimal(actual), decimal_of(attainment),
        decimal_of(pace), date.fromisoformat(deadline) if deadline else None,
    )  # fmt: skip


def statement_body(statement: Statement) -> str:
    """A statement as the JSON text the store keeps (live and closed alike)."""
    return json.dumps(_statement_json(statement), separators=(",", ":"))


def statement_of(body: Mapping[str, Any]) -> Statement:
    # A body stored before a figure existed lacks it: the figure is empty until recomputed.
    values: dict[str, Any] = {name: decimal_of(body.get(name)) for name in _DECIMAL_FIELDS}
    values["draw_advanced"] = values["draw_advanced"] or Decimal(0)
    values["adjustments"] = values["adjustments"] or Decimal(0)
    values["holdback"] = values["holdback"] or Decimal(0)
    values["held_back"] = values["held_back"] or Decimal(0)
    values["overrides"] = values["overrides"] or Decimal(0)
    lines = tuple(
        Line(
            LineKind(kind),
            deal_id,
            Decimal(amount),
            decimal_of(rate),
            rule,
            paid,
            decimal_of(credit),
        )
        for kind, deal_id, amount, rate, rule, paid, credit in body["lines"]
    )
    return Statement(
        rep_id=body["rep_id"],
        plan_id=body["plan_id"],
        period=body["period"],
        won_count=body["won_count"],
        lost_count=body["lost_count"],
        lines=lines,
        goals=tuple(_goal_of(row) for row in body.get("goals", ())),
        **values,
    )
