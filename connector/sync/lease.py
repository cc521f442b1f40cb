"""The one sync lock: a lease in the store, renewed while its holder works.

Two syncs (or a sync and the worker) never run the engine over one store at
once. The lease is a row in ``sync_lock`` rather than a database lock, so it
works the same on SQLite and PostgreSQL, survives a dropped connection, and a
holder that died stops blocking when its lease runs out (on SQLite, whose file
one host holds, at once when it was a process of this host's PID namespace that
no longer exists).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from connector.errors import LeaseLostError, StoreBusyError, StoreError, SyncLockedError
from connector.store.db import Database, iso, may_be_alive
from connector.store.schema import lock_table

LEASE = timedelta(seconds=24)  # renewed at a third: a dead holder stops blocking within it


@contextmanager
def sync_lock(
    db: Database,
    holder: str,
    clock: Callable[[], datetime],
    *,
    lease: timedelta = LEASE,
    wait_s: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the one sync lock of ``db``'s store, as a lease renewed while the holder works.

    A second holder gets :class:`SyncLockedError` after waiting up to ``wait_s``;
    ``on_wait`` hears once, when the wait begins, who holds the lock.
    The lock is taken and released in transactions of its own, so a dry run (whose
    writes are all rolled back) still keeps a real sync out while it lasts.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            generation = _take(db, holder, clock(), lease)
            break
        except SyncLockedError as error:
            if time.monotonic() >= deadline:
                raise
            if on_wait is not None:
                on_wait(str(error).split(";")[0])
                on_wait = None
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew,
        args=(db, holder, clock, lease, stop),
        name="spm-lock-lease",
        daemon=True,
    )
    renewer.start()
    db.fence(_fence(db, holder, generation))
    try:
        yield
    finally:
        db.fence(None)
        stop.set()
        renewer.join()
        with db.committing() as connection:
            connection.execute(
                lock_table.delete().where(
                    lock_table.c.name == "sync", lock_table.c.holder == holder
                )
            )


def _take(db: Database, holder: str, now: datetime, lease: timedelta) -> int:
    """Take the lock; the generation this take holds it as."""
    values = {"holder": holder, "acquired_at": iso(now), "expires_at": iso(now + lease)}
    try:
        with db.committing() as connection:
            row = connection.execute(
                sa.select(lock_table).where(lock_table.c.name == "sync")
            ).one_or_none()
            if row is None:
                connection.execute(lock_table.insert().values(name="sync", generation=1, **values))
                return 1
            expires = datetime.fromisoformat(row.expires_at) if row.expires_at else None
            # A server store may be shared by hosts of one name and PID namespace (the
            # initial one is alike everywhere): there, only the lease says a holder died.
            alive = db.dialect != "sqlite" or may_be_alive(row.holder)
            if row.holder != holder and alive and (expires is None or expires > now):
                since = datetime.fromisoformat(row.acquired_at)
                raise SyncLockedError(
                    f"another sync ({row.holder}) has held store {db.url_for_display} "
                    f"since {since:%Y-%m-%d %H:%M:%S} UTC; try again when it is done "
                    f"(a holder that died stops blocking within {lease.total_seconds():.0f} s)"
                )
            taken = connection.execute(
                lock_table.update()
                .where(
                    lock_table.c.name == "sync",
                    lock_table.c.holder == row.holder,
                    lock_table.c.generation == row.generation,
                )
                .values(generation=row.generation + 1, **values)
            )
            if taken.rowcount != 1:
                raise SyncLockedError(
                    f"another sync took store {db.url_for_display} at the same moment; "
                    "try again when it is done"
                )
            return int(row.generation) + 1
    except IntegrityError:
        raise SyncLockedError(
            f"another sync took store {db.url_for_display} at the same moment; "
            "try again when it is done"
        ) from None


def _fence(db: Database, holder: str, generation: int) -> Callable[[sa.Connection], None]:
    """The check every commit of the holder's pass makes: the lock is still this take of
    it. On PostgreSQL the row is read FOR SHARE, so a takeover waits for the commit in
    hand and cannot slip in between the check and the commit."""

    def check(connection: sa.Connection) -> None:
        query = sa.select(lock_table.c.holder, lock_table.c.generation).where(
            lock_table.c.name == "sync"
        )
        if db.dialect == "postgresql":
            query = query.with_for_update(read=True)
        row = connection.execute(query).one_or_none()
        if row is None or row.holder != holder or row.generation != generation:
            raise LeaseLostError(
                f"this sync lost the lock of store {db.url_for_display}: its lease ran out "
                "(the process was paused or cut off) and another holder took over; its "
                "commit is refused, nothing of it was written"
            )

    return check


def _renew(
    db: Database,
    holder: str,
    clock: Callable[[], datetime],
    lease: timedelta,
    stop: threading.Event,
) -> None:
    while not stop.wait(lease.total_seconds() / 3):
        # A renewal that fails now is tried again in a third of a lease.
        with (
            contextlib.suppress(StoreError, StoreBusyError, SQLAlchemyError),
            db.committing() as connection,
        ):
            connection.execute(
                lock_table.update()
                .where(lock_table.c.name == "sync", lock_table.c.holder == holder)
                .values(expires_at=iso(clock() + lease))
            )


@dataclass(frozen=True)
class LockState:
    """Who holds the sync lock now, as /healthz and /metrics show it."""

    holder: str
    acquired_at: datetime
    expires_at: datetime | None
    generation: int


def lock_state(db: Database) -> LockState | None:
    """The sync lock's holder, or None when nobody holds it."""
    with db.reading() as connection:
        row = connection.execute(
            sa.select(lock_table).where(lock_table.c.name == "sync")
        ).one_or_none()
    if row is None:
        return None
    expires = datetime.fromisoformat(row.expires_at) if row.expires_at else None
    return LockState(row.holder, datetime.fromisoformat(row.acquired_at), expires, row.generation)
