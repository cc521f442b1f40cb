"""The run log: one row per sync or worker pass, with its options and summary."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connector.store.db import Database, iso, this_process
from connector.store.schema import runs_table


@dataclass(frozen=True)
class RunRecord:
    id: int
    kind: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    options: dict[str, Any]
    summary: dict[str, Any]


class Runs:
    def __init__(self, db: Database) -> None:
        self._db = db

    def start(
        self, kind: str, started_at: datetime, options: Mapping[str, Any], holder: str = ""
    ) -> int:
        with self._db.transaction() as connection:
            return self._db.insert_one(
                connection,
                runs_table,
                kind=kind,
                started_at=iso(started_at),
                status="running",
                options=json.dumps(options, sort_keys=True),
                summary="{}",
                holder=holder or this_process(),
            )

    def finish(
        self, run_id: int, finished_at: datetime, status: str, summary: Mapping[str, Any]
    ) -> None:
        with self._db.transaction() as connection:
            connection.execute(
                runs_table.update()
                .where(runs_table.c.id == run_id)
                .values(
                    finished_at=iso(finished_at),
                    status=status,
                    summary=json.dumps(summary, sort_keys=True, default=str),
                )
            )

    def close_interrupted(self, now: datetime, left_owed: Callable[[], Mapping[str, int]]) -> int:
        """Runs still marked running when we hold the lock died: close them as interrupted.

        Called by the lock's holder only, so no live run is among them. Each is
        closed with what it left owed (``left_owed``, counted only when there is
        such a run), which the caller is about to finish.
        """
        with self._db.reading() as connection:
            dead = connection.execute(
                sa.select(sa.func.count()).where(runs_table.c.status == "running")
            ).scalar_one()
        if not dead:
            return 0  # the usual case: skip counting what is owed
        left = dict(left_owed())
        with self._db.transaction() as connection:
            result = connection.execute(
                runs_table.update()
                .where(runs_table.c.status == "running")
                .values(
                    finished_at=iso(now),
                    status="interrupted",
                    summary=json.dumps({"left_owed": left}, sort_keys=True),
                )
            )
            return int(result.rowcount or 0)

    def forget(self, kind: str, before: datetime) -> int:
        """Delete finished runs of ``kind`` started before ``before`` (the worker's many)."""
        with self._db.transaction() as connection:
            result = connection.execute(
                runs_table.delete().where(
                    runs_table.c.kind == kind,
                    runs_table.c.status != "running",
                    runs_table.c.started_at < iso(before),
                )
            )
            return int(result.rowcount or 0)

    def recent(self, limit: int = 20, kind: str | None = None) -> list[RunRecord]:
        """The last ``limit`` runs (of ``kind`` only, if given), newest first."""
        query = sa.select(runs_table).order_by(runs_table.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(runs_table.c.kind == kind)
        with self._db.reading() as connection:
            rows = connection.execute(query).all()
        return [
            RunRecord(
                id=row.id,
                kind=row.kind,
                started_at=datetime.fromisoformat(row.started_at),
                finished_at=datetime.fromisoformat(row.finished_at) if row.finished_at else None,
                status=row.status,
                options=json.loads(row.options),
                summary=json.loads(row.summary),
            )
            for row in rows
        ]
