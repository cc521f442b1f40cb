"""Owed work: what a run still has to do, committed with the step that made it owed.

A run killed at any point leaves exactly the work the next run must finish:
reps to recompute, deals whose splits to read, deals to read again.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa

from connector.store.db import Database, chunks
from connector.store.schema import owed_table

OWED_REP, OWED_SPLITS = "rep", "splits"
OWED_DEAL = "deal"  # a changed deal whose own values must be recomputed


class Owed:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, kind: str, ids: Collection[str]) -> None:
        with self._db.transaction() as connection:
            rows = [{"kind": kind, "id": item} for item in sorted(set(ids)) if item]
            self._db.upsert(connection, owed_table, rows, [])

    def pay(self, kind: str, ids: Collection[str]) -> None:
        """Mark this work done (inside the transaction that did it, to commit together)."""
        with self._db.transaction() as connection:
            for chunk in chunks(sorted(ids)):
                connection.execute(
                    owed_table.delete().where(owed_table.c.kind == kind, owed_table.c.id.in_(chunk))
                )

    def of(self, kind: str) -> set[str]:
        with self._db.reading() as connection:
            return set(
                connection.execute(
                    sa.select(owed_table.c.id).where(owed_table.c.kind == kind)
                ).scalars()
            )

    def all(self) -> dict[str, set[str]]:
        with self._db.reading() as connection:
            result: dict[str, set[str]] = {}
            for kind, item in connection.execute(sa.select(owed_table.c.kind, owed_table.c.id)):
                result.setdefault(kind, set()).add(item)
            return result
