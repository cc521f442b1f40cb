"""Users (CRM users or owners) with their team history, and the CRM's quotas and leads."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from connector.core.models import CrmQuota, CrmUser, Lead
from connector.store.cursors import USERS_FETCHED_CURSOR
from connector.store.db import Database, decimal_of, decimal_text, iso
from connector.store.schema import (
    cursors_table,
    leads_table,
    quotas_table,
    team_history_table,
    users_table,
)

TeamHistory = dict[str, list[tuple[date | None, str | None, str | None]]]


class Users:
    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(
        self,
        users: Iterable[CrmUser],
        fetched_at: datetime | None = None,
        seen_on: date | None = None,
    ) -> None:
        """Users as read; with ``seen_on``, a manager or team that changed is recorded
        in the team history from that day (a user seen for the first time: since ever)."""
        users = list(users)
        rows = [
            {
                "id": u.id,
                "name": u.name,
                "email": u.email,
                "active": u.active,
                "manager_id": u.manager_id,
                "record_id": u.record_id,
                "team_id": u.team_id,
                "payroll_id": u.payroll_id,
            }
            for u in users
        ]
        columns = ["name", "email", "active", "manager_id", "record_id", "team_id", "payroll_id"]
        moves = []
        history = self.team_history() if seen_on is not None else {}
        for user in users:
            if seen_on is None:
                break
            past = history.get(user.id)
            if past and (past[-1][1], past[-1][2]) == (user.manager_id, user.team_id):
                continue
            since = "" if not past else seen_on.isoformat()
            moves.append(
                {
                    "user_id": user.id,
                    "since": since,
                    "manager_id": user.manager_id,
                    "team_id": user.team_id,
                }
            )
        with self._db.transaction() as connection:
            self._db.upsert(connection, users_table, rows, columns)
            self._db.upsert(connection, team_history_table, moves, ["manager_id", "team_id"])
            if fetched_at is not None:
                self._db.upsert(
                    connection,
                    cursors_table,
                    [{"name": USERS_FETCHED_CURSOR, "value": iso(fetched_at)}],
                    ["value"],
                )

    def all(self) -> list[CrmUser]:
        with self._db.reading() as connection:
            rows = connection.execute(sa.select(users_table).order_by(users_table.c.id)).all()
        return [
            CrmUser(
                id=r.id,
                name=r.name or "",
                email=r.email or "",
                active=bool(r.active),
                manager_id=r.manager_id,
                record_id=r.record_id,
                team_id=r.team_id,
                payroll_id=r.payroll_id,
            )
            for r in rows
        ]

    def team_history(self) -> TeamHistory:
        """Per user, (since, manager_id, team_id) in order; since None: since ever."""
        history: TeamHistory = {}
        t = team_history_table
        with self._db.reading() as connection:
            for row in connection.execute(sa.select(t).order_by(t.c.user_id, t.c.since)):
                since = date.fromisoformat(row.since) if row.since else None
                history.setdefault(row.user_id, []).append((since, row.manager_id, row.team_id))
        return history


def _replace(db: Database, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """The table's rows as just read from the CRM, in place of the last read's."""
    with db.transaction() as connection:
        connection.execute(table.delete())
        db.insert_all(connection, table, rows)


class Quotas:
    """The CRM's own quotas (Salesforce forecasting quotas, HubSpot goal targets)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def replace(self, quotas: Iterable[CrmQuota]) -> None:
        rows = [
            {
                "id": f"{number}",
                "rep_id": quota.rep_id,
                "start_date": quota.start_date,
                "amount": decimal_text(quota.amount),
                "quantity": decimal_text(quota.quantity),
            }
            for number, quota in enumerate(quotas)
        ]
        _replace(self._db, quotas_table, rows)

    def of(self, rep_ids: Collection[str] | None = None) -> list[CrmQuota]:
        """The stored CRM quotas (of ``rep_ids`` only, if given), by rep and start date."""
        t = quotas_table
        rows = self._db.rows_of(t, t.c.rep_id, rep_ids)
        rows.sort(key=lambda r: (r.rep_id, r.start_date, int(r.id)))
        return [
            CrmQuota(r.rep_id, r.start_date, decimal_of(r.amount), decimal_of(r.quantity))
            for r in rows
        ]


class Leads:
    """Leads (Salesforce) or contacts (HubSpot), for the lead-to-sale ratio."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def replace(self, leads: Iterable[Lead]) -> None:
        rows = [
            {
                "id": lead.id,
                "owner_id": lead.owner_id,
                "created_date": lead.created_date,
                "converted": lead.converted,
            }
            for lead in leads
        ]
        _replace(self._db, leads_table, rows)

    def of(self, owner_ids: Collection[str] | None = None) -> list[Lead]:
        """The stored leads (of ``owner_ids`` only, if given), by id."""
        rows = self._db.rows_of(leads_table, leads_table.c.owner_id, owner_ids)
        rows.sort(key=lambda r: r.id)
        return [Lead(r.id, r.owner_id, r.created_date, bool(r.converted)) for r in rows]
