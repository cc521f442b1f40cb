"""Coaching tasks as the store keeps them: one per (rep, play or module, period).

A task is decided in the store before it is opened in the CRM, and its create
is marked as sent before the call: a pass killed before the CRM answered
leaves a row with ``attempted_at`` and no id, and the next pass looks for the
task in the CRM before opening it again. Notes owed to a task (the play
cleared, or came back) are kept until the CRM took them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from connector.store.db import Database, iso
from connector.store.schema import coaching_tasks_table

OPEN, CLEARED, DONE, GONE = "open", "cleared", "done", "gone"
PLAY, MODULE = "play", "module"


@dataclass(frozen=True)
class CoachingTask:
    rep_id: str
    play: str  # a play's id, or "module:<id>"
    period: str
    kind: str  # play | module
    assignee_id: str
    subject: str
    body: str
    due: str
    state: str
    crm_id: str | None
    attempted_at: str | None
    note_owed: str | None
    figure: str
    before: str | None
    latest: str | None
    opened_on: str
    closed_on: str | None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.rep_id, self.play, self.period

    @property
    def module(self) -> str | None:
        return self.play.removeprefix("module:") if self.kind == MODULE else None


def _where(key: tuple[str, str, str]) -> sa.ColumnElement[bool]:
    t = coaching_tasks_table
    rep_id, play, period = key
    return sa.and_(t.c.rep_id == rep_id, t.c.play == play, t.c.period == period)


class CoachingTasks:
    def __init__(self, db: Database) -> None:
        self._db = db

    def open(self, tasks: Iterable[CoachingTask]) -> int:
        """Keep the tasks not held yet (a held one is left as it is); how many were new."""
        names = [column.name for column in coaching_tasks_table.columns]
        rows = [{name: getattr(task, name) for name in names} for task in tasks]
        return self._db.insert_new(coaching_tasks_table, rows)

    def set_state(self, key: tuple[str, str, str], state: str, *, note: str | None,
                  on: date) -> None:  # fmt: skip
        """Clear or reopen a play's task; ``note`` is owed to its CRM task, if it has one
        (a task never opened in the CRM needs none)."""
        values: dict[str, object] = {
            "state": state,
            "closed_on": on.isoformat() if state != OPEN else None,
        }
        t = coaching_tasks_table
        with self._db.transaction() as connection:
            row = connection.execute(sa.select(t.c.crm_id, t.c.note_owed).where(_where(key))).one()
            if note is not None and (row.crm_id is not None or row.note_owed is not None):
                values["note_owed"] = f"{row.note_owed}\n{note}" if row.note_owed else note
            connection.execute(t.update().where(_where(key)).values(**values))

    def of(self, rep_ids: Collection[str] | None = None) -> list[CoachingTask]:
        """The reps' tasks (everyone's with None), by rep, period and play."""
        t = coaching_tasks_table
        query = sa.select(t).order_by(t.c.rep_id, t.c.period, t.c.play)
        rows = self._db.select_for(query, t.c.rep_id, rep_ids)
        return [CoachingTask(**row._mapping) for row in rows]

    def to_open(self) -> list[CoachingTask]:
        """Open tasks the CRM has not given an id yet."""
        t = coaching_tasks_table
        query = sa.select(t).where(t.c.crm_id.is_(None), t.c.state == OPEN)
        with self._db.reading() as connection:
            return [CoachingTask(**row._mapping) for row in connection.execute(query)]

    def with_notes_owed(self) -> list[CoachingTask]:
        t = coaching_tasks_table
        query = sa.select(t).where(t.c.crm_id.is_not(None), t.c.note_owed.is_not(None))
        with self._db.reading() as connection:
            return [CoachingTask(**row._mapping) for row in connection.execute(query)]

    def in_crm(self, rep_ids: Collection[str] | None = None) -> list[CoachingTask]:
        """Tasks the CRM holds that are not done yet (their status is read back)."""
        return [
            task
            for task in self.of(rep_ids)
            if task.crm_id is not None and task.state in (OPEN, CLEARED)
        ]

    def sending(self, key: tuple[str, str, str], at: datetime) -> None:
        """A create is about to be sent: from now on, the task may exist in the CRM."""
        with self._db.transaction() as connection:
            connection.execute(
                coaching_tasks_table.update().where(_where(key)).values(attempted_at=iso(at))
            )

    def opened(self, key: tuple[str, str, str], crm_id: str) -> None:
        with self._db.transaction() as connection:
            connection.execute(
                coaching_tasks_table.update().where(_where(key)).values(crm_id=crm_id)
            )

    def noted(self, key: tuple[str, str, str], body: str) -> None:
        """The CRM task now says ``body`` (our notes included): nothing more is owed."""
        with self._db.transaction() as connection:
            connection.execute(
                coaching_tasks_table.update().where(_where(key)).values(body=body, note_owed=None)
            )

    def measured(self, figures: Iterable[tuple[tuple[str, str, str], str | None]]) -> None:
        """The figure each task is about, as this pass measured it."""
        with self._db.transaction() as connection:
            for key, value in figures:
                connection.execute(
                    coaching_tasks_table.update().where(_where(key)).values(latest=value)
                )

    def read_back(self, key: tuple[str, str, str], *, state: str | None, body: str,
                  on: date) -> None:  # fmt: skip
        """What the CRM's task says now: done or deleted (``state``), and its text."""
        values: dict[str, object] = {"body": body}
        if state is not None:
            values.update(state=state, closed_on=on.isoformat())
        with self._db.transaction() as connection:
            connection.execute(coaching_tasks_table.update().where(_where(key)).values(**values))
