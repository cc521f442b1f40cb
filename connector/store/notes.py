"""Managers' notes to reps (feedback): each kept with its author and time, never edited.

A note is added in one transaction with its entry in the event log.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from connector.store.books import log_event
from connector.store.db import Database, iso
from connector.store.schema import feedback_notes_table

MAX_NOTE = 2000  # characters: a note, not a document
MAX_AUTHOR = 120  # a name (up to 80) and the role that signed in


@dataclass(frozen=True)
class Note:
    id: int
    rep_id: str
    period: str
    author: str
    body: str
    at: str


class Notes:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, rep_id: str, period: str, author: str, body: str, at: datetime) -> int:
        """Keep a note for the rep about ``period``; its number. Raises ValueError for an
        empty or over-long note or author (the page says which)."""
        body, author = body.strip(), author.strip()
        if not body or len(body) > MAX_NOTE:
            raise ValueError(f"note: write between 1 and {MAX_NOTE} characters")
        if not author or len(author) > MAX_AUTHOR:
            raise ValueError(f"by: say who you are (up to {MAX_AUTHOR} characters)")
        with self._db.transaction() as connection:
            number = self._db.insert_one(
                connection, feedback_notes_table,
                rep_id=rep_id, period=period, author=author, body=body, at=iso(at),
            )  # fmt: skip
            log_event(connection, at, author, "note", period, rep_id, {"note": number})
        return number

    def recent(self, rep_ids: Collection[str], limit: int) -> list[Note]:
        """The newest notes for these reps, newest first."""
        t = feedback_notes_table
        query = sa.select(t).order_by(t.c.at.desc(), t.c.id.desc()).limit(limit)
        rows = self._db.select_for(query, t.c.rep_id, rep_ids)
        rows.sort(key=lambda r: (r.at, r.id), reverse=True)
        return [Note(r.id, r.rep_id, r.period, r.author, r.body, r.at) for r in rows[:limit]]

    def of(self, rep_id: str) -> list[Note]:
        """The rep's notes, newest first."""
        t = feedback_notes_table
        query = sa.select(t).where(t.c.rep_id == rep_id).order_by(t.c.at.desc(), t.c.id.desc())
        with self._db.reading() as connection:
            rows = connection.execute(query).all()
        return [Note(r.id, r.rep_id, r.period, r.author, r.body, r.at) for r in rows]
