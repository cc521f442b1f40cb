"""The durable inbox: CRM events kept in the store from receipt until they are applied.

The receiver commits events here before it answers the CRM, so an
acknowledged event survives any crash. Workers claim events with a lease; a
worker that dies leaves its lease to expire, and the events return to the
queue. An event that keeps failing is parked with its error after
:data:`MAX_ATTEMPTS` tries, where ``/healthz`` and the logs show it; nothing
is dropped. Applying an event is idempotent (the worker re-reads the record
and writes only what differs), so an event applied twice after a crash
writes nothing the second time.

Duplicates, a CRM's retries of one event, share ``(source, event_id)`` and are
stored once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from connector.store.db import Database, chunks, may_be_alive, this_process
from connector.store.schema import inbox_table
from connector.store.wakeups import notify

MAX_ATTEMPTS = 8
DEFAULT_LEASE = timedelta(seconds=24)  # renewed at a third while its worker applies it
# Applied events are kept this long so that a CRM's late retries are still
# recognised (HubSpot and Salesforce both retry for up to 24 hours).
KEEP_DONE = timedelta(days=3)

QUEUED, CLAIMED, DONE, PARKED = "queued", "claimed", "done", "parked"


def epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("inbox times must carry a time zone")
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Event:
    """One CRM event as the receiver understood it: which record changed, per whom."""

    source: str  # hubspot | salesforce | events
    event_id: str  # the CRM's own id for the event; the same on every retry
    record: str  # deal | user
    record_id: str
    kind: str  # deal.propertyChange, Opportunity, …: for logs and metrics
    actor: str | None = None  # the CRM user who made the change, when the event says
    occurred_ms: int | None = None  # when it happened in the CRM, when the event says


@dataclass(frozen=True)
class Claimed:
    """An event a worker holds under a lease."""

    id: int
    event: Event
    attempts: int
    received_ms: int


@dataclass(frozen=True)
class Parked:
    id: int
    source: str
    event_id: str
    record: str
    record_id: str
    attempts: int
    error: str


@dataclass(frozen=True)
class Recent:
    source: str
    kind: str
    record: str
    record_id: str
    status: str
    received_ms: int
    finished_ms: int | None
    error: str


@dataclass(frozen=True)
class Depth:
    """What ``/healthz`` and ``/metrics`` say about the queue."""

    queued: int
    oldest_received_ms: int | None
    parked: int


class Inbox:
    def __init__(self, store: Database, *, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.store = store
        self.max_attempts = max_attempts

    # -- the receiver's side ------------------------------------------------------------

    def add(self, events: Sequence[Event], received: datetime) -> int:
        """Commit the events not stored yet; return how many were new (the rest: duplicates)."""
        if not events:
            return 0
        unique = {(e.source, e.event_id): e for e in events}
        received_ms = epoch_ms(received)
        rows = [
            {
                "source": e.source,
                "event_id": e.event_id,
                "record": e.record,
                "record_id": e.record_id,
                "kind": e.kind[:64],
                "actor": e.actor,
                "occurred_ms": e.occurred_ms,
                "received_ms": received_ms,
                "status": QUEUED,
                "attempts": 0,
            }
            for e in unique.values()
        ]
        # One statement: what is already stored (a retry) is skipped, what is new comes back.
        statement = (
            self.store.insert(inbox_table)
            .on_conflict_do_nothing(index_elements=["source", "event_id"])
            .returning(inbox_table.c.id)
        )
        with self.store.transaction() as connection:
            fresh = 0
            for chunk in chunks(rows):
                fresh += len(connection.execute(statement, list(chunk)).all())
            if fresh:
                notify(self.store, connection)
        return fresh

    # -- the worker's side --------------------------------------------------------------

    def claim(
        self, now: datetime, *, limit: int = 500, lease: timedelta = DEFAULT_LEASE
    ) -> tuple[str, list[Claimed]]:
        """Lease up to ``limit`` due events (queued, or left by a worker whose lease ran out).

        An event whose lease ran out :attr:`max_attempts` times (a worker died on it
        each time) is parked instead of claimed again.
        """
        token = f"{this_process()}/{uuid.uuid4().hex[:12]}"
        now_ms = epoch_ms(now)
        t = inbox_table
        abandoned = sa.and_(t.c.status == CLAIMED, t.c.lease_until_ms < now_ms)
        with self.store.transaction() as connection:
            # On SQLite (one host's file), a worker of this PID namespace that died need not
            # wait out its lease; on a server, hosts may share a name and a namespace.
            holders: Iterable[str | None] = (
                connection.execute(
                    sa.select(t.c.claim).where(t.c.status == CLAIMED).distinct()
                ).scalars()
                if self.store.dialect == "sqlite"
                else []
            )
            dead = [claim for claim in holders if claim and not may_be_alive(claim.split("/")[0])]
            if dead:
                connection.execute(t.update().where(t.c.claim.in_(dead)).values(lease_until_ms=0))
            connection.execute(
                t.update()
                .where(abandoned, t.c.attempts >= self.max_attempts)
                .values(
                    status=PARKED,
                    claim=None,
                    finished_ms=now_ms,
                    error=sa.func.coalesce(t.c.error, "")
                    + f"; the worker stopped while applying it {self.max_attempts} times",
                )
            )
            due = sa.or_(
                sa.and_(
                    t.c.status == QUEUED,
                    sa.or_(t.c.not_before_ms.is_(None), t.c.not_before_ms <= now_ms),
                ),
                abandoned,
            )
            chosen = (
                sa.select(t.c.id)
                .where(due)
                .order_by(t.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            ids = [row.id for row in connection.execute(chosen)]
            if not ids:
                return token, []
            connection.execute(
                t.update()
                .where(t.c.id.in_(ids), due)
                .values(
                    status=CLAIMED,
                    claim=token,
                    attempts=t.c.attempts + 1,
                    lease_until_ms=now_ms + int(lease.total_seconds() * 1000),
                )
            )
            rows = connection.execute(sa.select(t).where(t.c.claim == token).order_by(t.c.id))
            claimed = [
                Claimed(
                    row.id,
                    Event(
                        row.source,
                        row.event_id,
                        row.record,
                        row.record_id,
                        row.kind,
                        row.actor,
                        row.occurred_ms,
                    ),
                    row.attempts,
                    row.received_ms,
                )
                for row in rows
            ]
        return token, claimed

    def done(self, token: str, ids: Iterable[int], now: datetime, note: str | None = None) -> int:
        """Mark claimed events applied; only while the lease is still this worker's."""
        return self._finish(token, ids, {"status": DONE, "error": note}, now)

    def failed(
        self, token: str, ids: Iterable[int], error: str, now: datetime, backoff: timedelta
    ) -> None:
        """Return events to the queue after ``backoff``, or park those out of tries."""
        t, now_ms, chosen = inbox_table, epoch_ms(now), list(ids)
        with self.store.transaction() as connection:
            for chunk in chunks(chosen):
                mine = sa.and_(t.c.claim == token, t.c.id.in_(chunk))
                connection.execute(
                    t.update()
                    .where(mine, t.c.attempts >= self.max_attempts)
                    .values(status=PARKED, claim=None, error=error[:2000], finished_ms=now_ms)
                )
                connection.execute(
                    t.update()
                    .where(mine, t.c.status == CLAIMED)
                    .values(
                        status=QUEUED,
                        claim=None,
                        error=error[:2000],
                        not_before_ms=now_ms + int(backoff.total_seconds() * 1000),
                    )
                )

    def release(self, token: str, ids: Iterable[int], now: datetime, delay: timedelta) -> None:
        """Give events back untried (the CRM or the lock was busy): no attempt is spent."""
        t, chosen = inbox_table, list(ids)
        with self.store.transaction() as connection:
            for chunk in chunks(chosen):
                connection.execute(
                    t.update()
                    .where(t.c.claim == token, t.c.id.in_(chunk))
                    .values(
                        status=QUEUED,
                        claim=None,
                        attempts=t.c.attempts - 1,
                        not_before_ms=epoch_ms(now) + int(delay.total_seconds() * 1000),
                    )
                )

    def extend(self, token: str, now: datetime, lease: timedelta) -> int:
        """Renew this claim's lease while its worker is still applying it."""
        t = inbox_table
        with self.store.committing() as connection:
            result = connection.execute(
                t.update()
                .where(t.c.claim == token, t.c.status == CLAIMED)
                .values(lease_until_ms=epoch_ms(now) + int(lease.total_seconds() * 1000))
            )
        return int(result.rowcount or 0)

    def _finish(
        self, token: str, ids: Iterable[int], values: dict[str, object], now: datetime
    ) -> int:
        t, chosen, count = inbox_table, list(ids), 0
        with self.store.transaction() as connection:
            for chunk in chunks(chosen):
                result = connection.execute(
                    t.update()
                    .where(t.c.claim == token, t.c.id.in_(chunk))
                    .values(**values, claim=None, lease_until_ms=None, finished_ms=epoch_ms(now))
                )
                count += result.rowcount
        return count

    def forget_done(self, now: datetime, keep: timedelta = KEEP_DONE) -> int:
        """Delete applied events older than ``keep`` (parked ones stay until retried)."""
        cutoff = epoch_ms(now) - int(keep.total_seconds() * 1000)
        t = inbox_table
        with self.store.transaction() as connection:
            result = connection.execute(
                t.delete().where(t.c.status == DONE, t.c.finished_ms < cutoff)
            )
        return int(result.rowcount or 0)

    def retry_parked(self, now: datetime) -> int:
        """Queue every parked event again with fresh tries (after the cause is fixed)."""
        t = inbox_table
        with self.store.transaction() as connection:
            result = connection.execute(
                t.update()
                .where(t.c.status == PARKED)
                .values(status=QUEUED, attempts=0, not_before_ms=None, finished_ms=None)
            )
        return int(result.rowcount or 0)

    # -- what operators see -------------------------------------------------------------

    def depth(self) -> Depth:
        t = inbox_table
        with self.store.reading() as connection:
            waiting = connection.execute(
                sa.select(sa.func.count(), sa.func.min(t.c.received_ms)).where(
                    t.c.status.in_([QUEUED, CLAIMED])
                )
            ).one()
            parked = connection.execute(
                sa.select(sa.func.count()).where(t.c.status == PARKED)
            ).scalar_one()
        return Depth(int(waiting[0]), waiting[1], int(parked))

    def oldest_due_ms(self, now: datetime) -> int | None:
        """When the longest-waiting event a worker could claim now arrived (None: nothing
        due): how a worker of many accounts picks which goes first."""
        t, now_ms = inbox_table, epoch_ms(now)
        due = sa.or_(
            sa.and_(
                t.c.status == QUEUED,
                sa.or_(t.c.not_before_ms.is_(None), t.c.not_before_ms <= now_ms),
            ),
            sa.and_(t.c.status == CLAIMED, t.c.lease_until_ms < now_ms),
        )
        with self.store.reading() as connection:
            oldest = connection.execute(sa.select(sa.func.min(t.c.received_ms)).where(due))
            value = oldest.scalar_one_or_none()
        return None if value is None else int(value)

    def parked(self, limit: int = 20) -> list[Parked]:
        t = inbox_table
        with self.store.reading() as connection:
            rows = connection.execute(
                sa.select(t).where(t.c.status == PARKED).order_by(t.c.id.desc()).limit(limit)
            )
            return [
                Parked(r.id, r.source, r.event_id, r.record, r.record_id, r.attempts, r.error or "")
                for r in rows
            ]

    def recent(self, limit: int = 20) -> list[Recent]:
        """The newest events, whatever became of them: the reports page's activity."""
        t = inbox_table
        with self.store.reading() as connection:
            rows = connection.execute(sa.select(t).order_by(t.c.id.desc()).limit(limit))
            return [
                Recent(
                    r.source, r.kind, r.record, r.record_id, r.status, r.received_ms,
                    r.finished_ms, r.error or "",
                )
                for r in rows
            ]  # fmt: skip

    def counts(self) -> dict[str, int]:
        t = inbox_table
        with self.store.reading() as connection:
            rows = connection.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status))
            return {row[0]: int(row[1]) for row in rows}
