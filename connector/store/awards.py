"""Awards given to reps (recognition): each (rep, award, key) once, with when it was given.

Giving is idempotent: the rules find the same awards on every pass, and an award
already held is left as it was (its first day kept). An award is never taken
back, even when a later change to the data would not earn it again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from connector.core.recognition import Award
from connector.store.db import Database
from connector.store.schema import awards_table


@dataclass(frozen=True)
class Given:
    """An award as the store keeps it."""

    rep_id: str
    award: str
    key: str
    period: str
    title: str
    said: str
    given_at: str

    def text(self) -> str:
        """As the rep's latest-award field shows it."""
        return f"{self.title} ({self.period}): {self.said}"[:255]


class Awards:
    def __init__(self, db: Database) -> None:
        self._db = db

    def give(self, awards: Iterable[Award], on: date) -> int:
        """Keep the awards not held yet; how many were new."""
        rows = {
            (a.rep_id, a.award, a.key): {
                "rep_id": a.rep_id, "award": a.award, "award_key": a.key, "period": a.period,
                "title": a.title, "said": a.said, "given_at": on.isoformat(),
            }
            for a in awards
        }  # fmt: skip
        # As the inbox does: what is held already is skipped, what is new is counted.
        return self._db.insert_new(awards_table, list(rows.values()))

    def of(self, rep_ids: Collection[str] | None = None) -> list[Given]:
        """The reps' awards (everyone's with None), oldest period first."""
        t = awards_table
        query = sa.select(t).order_by(t.c.rep_id, t.c.period, t.c.given_at, t.c.award)
        rows = self._db.select_for(query, t.c.rep_id, rep_ids)
        return [
            Given(r.rep_id, r.award, r.award_key, r.period, r.title, r.said, r.given_at)
            for r in rows
        ]

    def summary(self, rep_ids: Collection[str] | None = None) -> dict[str, tuple[int, Given]]:
        """Per rep with awards: how many, and the latest (by period, then when given)."""
        found: dict[str, tuple[int, Given]] = {}
        for given in self.of(rep_ids):
            count, latest = found.get(given.rep_id, (0, given))
            if (given.period, given.given_at) >= (latest.period, latest.given_at):
                latest = given
            found[given.rep_id] = (count + 1, latest)
        return found
