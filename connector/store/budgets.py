"""API budgets shared by every process working on one CRM account, kept in the store.

HubSpot limits each portal's calls in a rolling ten-second window (and its
searches per second), whoever makes them: N workers that each pace themselves
alone spend N times the budget and meet 429s. Here the window is cut in twenty
slots; a process takes a call or two at a time, and only while the calls of the
slots that a rolling window can touch (the current one and the twenty before it)
stay within the limit: at most a twentieth of the window's budget is given up
for sharing it. A 429's Retry-After pauses every process on the account.

A take locks the account's head row first (``FOR UPDATE`` on PostgreSQL; the
write that starts it holds SQLite's one writer), so two takes never both see
room that only one of them may use. Each take commits at once, in a transaction
of its own, so a dry run's calls count too and it holds no lock while it runs
(on PostgreSQL; on SQLite a dry run holds the one write lock, so it paces alone).
"""

from __future__ import annotations

import math

import sqlalchemy as sa

from connector.store.db import Database
from connector.store.schema import api_budget_table

SLOTS = 20  # slots per window
_HEAD = -1
_PAUSE = "pause"


class Budgets:
    def __init__(self, db: Database) -> None:
        self._db = db

    def take(
        self, account: str, api: str, want: int, limit: int, window_s: float, now: float
    ) -> tuple[int, float]:
        """Take up to ``want`` calls of ``limit`` per rolling ``window_s``: (calls granted,
        and the moment, in epoch seconds, they must be made by: the end of the slot they
        are counted in), or (0, seconds to wait before asking again)."""
        t = api_budget_table
        slot_s = window_s / SLOTS
        slot = math.floor(now / slot_s)
        if self._db.scratching and self._db.dialect == "sqlite":
            # A dry run holds SQLite's write lock: its calls are paced by this process alone.
            return want, (slot + 1) * slot_s
        with self._db.committing() as connection:
            self._lock(connection, account, api)
            paused = connection.execute(
                sa.select(t.c.used).where(t.c.account == account, t.c.api == _PAUSE)
            ).scalar()
            if paused is not None and paused / 1000 > now:
                return 0, paused / 1000 - now
            rows = dict(
                connection.execute(
                    sa.select(t.c.slot, t.c.used).where(
                        t.c.account == account, t.c.api == api, t.c.slot >= slot - SLOTS
                    )
                ).all()
            )
            used = sum(count for key, count in rows.items() if key != _HEAD)
            granted = max(min(want, limit - used), 0)
            if not granted:
                # Room comes back as the oldest slot still counted leaves the window.
                oldest = min((k for k, c in rows.items() if k != _HEAD and c), default=slot)
                return 0, max((oldest + SLOTS + 1) * slot_s - now, slot_s / 10)
            if slot in rows:
                connection.execute(
                    t.update()
                    .where(t.c.account == account, t.c.api == api, t.c.slot == slot)
                    .values(used=t.c.used + granted)
                )
            else:
                connection.execute(
                    t.insert().values(account=account, api=api, slot=slot, used=granted)
                )
                connection.execute(
                    t.delete().where(
                        t.c.account == account,
                        t.c.api == api,
                        t.c.slot < slot - SLOTS,
                        t.c.slot != _HEAD,
                    )
                )
            return granted, (slot + 1) * slot_s

    def pause(self, account: str, until: float) -> None:
        """No process calls the account's API before ``until`` (a 429's Retry-After)."""
        t = api_budget_table
        ms = math.ceil(until * 1000)
        if self._db.scratching and self._db.dialect == "sqlite":
            return  # a dry run holds SQLite's write lock; the 429 was waited out here
        with self._db.committing() as connection:
            statement = self._db.insert(t).values(account=account, api=_PAUSE, slot=0, used=ms)
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["account", "api", "slot"],
                    set_={"used": sa.func.max(t.c.used, ms)}
                    if self._db.dialect == "sqlite"
                    else {"used": sa.func.greatest(t.c.used, ms)},
                )
            )

    def used(self, account: str, api: str, window_s: float, now: float) -> int:
        """Calls counted in the rolling window now (what /metrics shows)."""
        t = api_budget_table
        slot = math.floor(now / (window_s / SLOTS))
        with self._db.reading() as connection:
            used = connection.execute(
                sa.select(sa.func.coalesce(sa.func.sum(t.c.used), 0)).where(
                    t.c.account == account,
                    t.c.api == api,
                    t.c.slot >= slot - SLOTS,
                    t.c.slot != _HEAD,
                )
            ).scalar()
        return int(used or 0)

    def left(self, account: str, api: str, limit: int, window_s: float, now: float) -> int:
        """Calls still free in the window now."""
        return max(limit - self.used(account, api, window_s, now), 0)

    def paused_until(self, account: str) -> float | None:
        """When the account's pause after a 429 ends (epoch seconds), if one was set."""
        t = api_budget_table
        with self._db.reading() as connection:
            ms = connection.execute(
                sa.select(t.c.used).where(t.c.account == account, t.c.api == _PAUSE)
            ).scalar()
        return None if ms is None else ms / 1000

    def _lock(self, connection: sa.Connection, account: str, api: str) -> None:
        t = api_budget_table
        head = (t.c.account == account, t.c.api == api, t.c.slot == _HEAD)
        connection.execute(
            self._db.insert(t)
            .values(account=account, api=api, slot=_HEAD, used=0)
            .on_conflict_do_nothing(index_elements=["account", "api", "slot"])
        )
        if self._db.dialect == "postgresql":
            connection.execute(sa.select(t.c.used).where(*head).with_for_update())
        else:
            connection.execute(t.update().where(*head).values(used=0))  # SQLite's write lock
