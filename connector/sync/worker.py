"""The worker: drains the durable inbox into the engine's worker door.

Each round claims a batch of due events under a lease, drops our own
write-backs (Salesforce names the integration user as their author), folds
the rest into one :class:`ChangeSet` per batch (ten events on one deal are
one read of that deal), and hands it to :meth:`SyncEngine.process`, which
re-reads the records from the CRM (event payloads are hints, not truth),
recomputes the reps they touch and writes only what differs. Then the events
are marked done. A process killed at any point leaves its claimed events to
return to the queue when the lease runs out; applying them again writes
nothing that is already written.

What a failure costs depends on whose fault it is. A lock held by a scheduled
sync, a busy store, a CRM that is down or out of API budget only postpone the
batch, spending none of its tries. Bad credentials or configuration fail every
record alike: the batch spends a try (and parks, visibly, if it lasts) without
one call per record. Anything else is retried record by record, so one bad
record cannot hold back, or park, the others.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from connector.errors import (
    BusyError,
    ConfigError,
    ConnectorError,
    CrmAuthError,
    CrmLimitError,
    CrmUnavailableError,
)
from connector.logs import log
from connector.store.inbox import DEFAULT_LEASE, Claimed, Inbox, epoch_ms
from connector.store.runs import Runs
from connector.sync.engine import SyncEngine
from connector.sync.metrics import Metrics
from connector.sync.run import ChangeSet, SyncOptions
from connector.sync.schedule import Scheduler
from connector.views.team import OWN_WRITE_BACK

T = TypeVar("T")
BATCH = 500
POLL_S = 0.5  # how often an idle worker looks for work nobody woke it for
# Once work arrives, wait until it is this old for what follows before applying it: one
# edit in a CRM is often several events (HubSpot sends one per property), and a pass
# costs a few CRM calls whatever its size. Events that arrived during the last pass are
# old enough already (gather_wait); the shared budget keeps bursts within the window.
GATHER_S = 0.1
BUSY_DELAY = timedelta(seconds=2)
CRM_DELAY = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=10)
FORGET_EVERY_S = 3600.0
KEEP_RUNS = timedelta(days=7)  # every pass is a run in the store's run log


def contained(step: Callable[[], T]) -> T | None:
    """``step``'s result, or None when it failed: logged (a bug with its trace), so the
    worker goes on, or real time would stop silently while the receiver acknowledges."""
    try:
        return step()
    except ConnectorError as error:  # the store itself
        log("worker_store_error", level=logging.ERROR, error=str(error))
    except Exception as error:
        log(
            "worker_bug",
            level=logging.ERROR,
            error=f"{type(error).__name__}: {error}",
            trace=traceback.format_exc(limit=8),
        )
    return None


def run_rounds(
    round_: Callable[[threading.Event], int],
    settle: Callable[[], float],
    stop: threading.Event,
    wake: threading.Event | None,
) -> None:
    """Rounds until ``stop``: after one that found nothing, sleep until woken (or the next
    poll); after work, wait ``settle()`` seconds for what is still arriving."""
    while not stop.is_set():
        if not round_(stop):
            woken = wake.wait(POLL_S) if wake is not None else stop.wait(POLL_S)
            if wake is not None:
                wake.clear()
            if not woken:
                continue
        stop.wait(settle())


def drain(round_: Callable[[], int]) -> int:
    """Rounds until one finds nothing; how many events they claimed."""
    total = 0
    while claimed := round_():
        total += claimed
    return total


def gather_wait(gather_s: float, inboxes: Sequence[Inbox], now: datetime) -> float:
    """How long to wait before the next pass: until the longest-waiting event has waited
    ``gather_s``, by when what followed it in one edit has arrived. Events that came in
    during the last pass have waited long enough already: no wait for them. (Never more
    than ``gather_s``: a receiver's clock ahead of ours must not hold the worker back.)"""
    try:
        ages = [
            epoch_ms(now) - oldest
            for inbox in inboxes
            if (oldest := inbox.oldest_due_ms(now)) is not None
        ]
    except ConnectorError:
        return gather_s
    if not ages:
        return gather_s
    return min(gather_s, max(0.0, gather_s - max(ages) / 1000))


def backoff(attempts: int) -> timedelta:
    """2 s, 4 s, 8 s … up to 10 minutes between tries of a failing event."""
    return min(timedelta(seconds=2**attempts), MAX_BACKOFF)


class Worker:
    def __init__(
        self,
        inbox: Inbox,
        engine: SyncEngine,
        *,
        today: Callable[[], date],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: Metrics | None = None,
        batch: int = BATCH,
        lease: timedelta = DEFAULT_LEASE,
        gather_s: float = GATHER_S,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.inbox = inbox
        self.scheduler = scheduler  # runs the syncs spm.yaml's schedule: asks for
        self.engine = engine
        self.today = today
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.batch = batch
        self.lease = lease
        self.gather_s = gather_s
        self._writer: str | None = None
        self._writer_known = False
        self._forgotten_at = float("-inf")

    # -- running ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, wake: threading.Event | None = None) -> None:
        """Apply events until ``stop`` is set; between rounds, sleep until woken or polled."""
        log("worker_started")
        settle = lambda: gather_wait(self.gather_s, [self.inbox], self.clock())  # noqa: E731
        run_rounds(self._round, settle, stop, wake)
        log("worker_stopped")

    def _round(self, stop: threading.Event) -> int:
        claimed = contained(self._scheduled_then_once)
        if claimed is None:
            stop.wait(POLL_S * 4)  # the store, or a bug: wait and try again
            return 0
        return claimed

    def _scheduled_then_once(self) -> int:
        if self.scheduler is not None:
            self.scheduler.run_due(time.monotonic())
        return self.run_once()

    def drain(self) -> int:
        """Apply every due event, then return how many were claimed."""
        return drain(self.run_once)

    def run_once(self) -> int:
        """Claim one batch and apply it; the number of events claimed (0: nothing due)."""
        self._forget_old()
        token, claimed = self.inbox.claim(self.clock(), limit=self.batch, lease=self.lease)
        if not claimed:
            return 0
        writer = self._writer_id() if any(c.event.actor for c in claimed) else None
        echoes = [c for c in claimed if writer and (c.event.actor or "")[:15] == writer[:15]]
        if echoes:
            self.inbox.done(token, [c.id for c in echoes], self.clock(), OWN_WRITE_BACK)
            for c in echoes:
                self.metrics.processed.labels(c.event.source).inc()
            log("echo_ignored", events=len(echoes))
        work = [c for c in claimed if c not in echoes]
        if work:
            self._apply(token, work)
        return len(claimed)

    # -- applying --------------------------------------------------------------------------

    def _apply(self, token: str, items: Sequence[Claimed]) -> None:
        started = time.perf_counter()
        change = _change_of(items)
        ids = [c.id for c in items]
        calls_before = self.engine.adapter.usage().calls
        try:
            with self._renewing(token):
                summary = self.engine.process(change, SyncOptions(as_of=self.today()))
        except BusyError as error:
            self.inbox.release(token, ids, self.clock(), BUSY_DELAY)
            log("worker_postponed", events=len(items), reason=str(error))
            return
        except (CrmUnavailableError, CrmLimitError) as error:
            # The CRM is down or out of budget: no fault of these events; try later.
            self.inbox.release(token, ids, self.clock(), CRM_DELAY)
            log("worker_postponed", level=logging.WARNING, events=len(items), reason=str(error))
            return
        except (CrmAuthError, ConfigError) as error:
            # Every record would fail alike until an admin acts: spend a try on all of
            # them at once (they park, visibly, if it lasts), never one call per record.
            self._failed(token, items, str(error), split=False)
            return
        except ConnectorError as error:
            self._failed(token, items, str(error))
            return
        except Exception as error:  # a bug: kept on the events (retried, then parked) and logged
            log(
                "worker_bug",
                level=logging.ERROR,
                error=f"{type(error).__name__}: {error}",
                trace=traceback.format_exc(limit=8),
            )
            self._failed(token, items, f"internal error: {type(error).__name__}: {error}")
            return
        finally:
            self.metrics.crm_calls.inc(max(0, self.engine.adapter.usage().calls - calls_before))
        now = self.clock()
        self.inbox.done(token, ids, now)
        elapsed = time.perf_counter() - started
        self.metrics.processing_seconds.observe(elapsed)
        now_ms = epoch_ms(now)
        for c in items:
            self.metrics.processed.labels(c.event.source).inc()
            since = c.event.occurred_ms or c.received_ms
            self.metrics.end_to_end_seconds.labels(c.event.source).observe(
                max(0, now_ms - since) / 1000
            )
        for failure in summary.failures:
            # The value stays pending: the next event on this record, or the next sync, retries.
            log(
                "write_failed",
                level=logging.WARNING,
                record=failure.record.value,
                record_id=failure.record_id,
                code=failure.code,
                message=failure.message,
            )
        log(
            "applied",
            events=len(items),
            deals=len(change.deals),
            users=len(change.users),
            fields_written=summary.fields_written,
            seconds=round(elapsed, 3),
        )

    @contextmanager
    def _renewing(self, token: str) -> Iterator[None]:
        """Keep the claim's lease while the pass lasts, renewing it at a third: a short
        lease lets another worker take over soon after this one dies, however long a
        pass of a live one takes."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease.total_seconds() / 3):
                # A renewal that fails is tried again at the next third.
                with contextlib.suppress(ConnectorError):
                    self.inbox.extend(token, self.clock(), self.lease)

        renewer = threading.Thread(target=renew, name="spm-claim-lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()

    def _failed(
        self, token: str, items: Sequence[Claimed], error: str, *, split: bool = True
    ) -> None:
        records = {(c.event.record, c.event.record_id) for c in items}
        if split and len(records) > 1:
            # One bad record must not hold back the others: apply them one by one.
            for one in sorted(records):
                self._apply(token, [c for c in items if (c.event.record, c.event.record_id) == one])
            return
        attempts = max(c.attempts for c in items)
        self.inbox.failed(token, [c.id for c in items], error, self.clock(), backoff(attempts))
        for c in items:
            self.metrics.failed.labels(c.event.source).inc()
        parked = attempts >= self.inbox.max_attempts
        kind, record_id = min(records)
        log(
            "parked" if parked else "apply_failed",
            level=logging.ERROR if parked else logging.WARNING,
            record=kind,
            record_id=record_id,
            records=len(records),
            attempts=attempts,
            error=error,
        )

    def _writer_id(self) -> str | None:
        if not self._writer_known:
            try:
                self._writer = self.engine.adapter.writer_id()
            except ConnectorError as error:
                # Without it every event is applied: correct, at the cost of a re-read.
                log("writer_unknown", level=logging.WARNING, error=str(error))
                return None
            self._writer_known = True
        return self._writer

    def _forget_old(self) -> None:
        """Hourly: applied events past their retry window; the run log of passes past a week."""
        if time.monotonic() - self._forgotten_at >= FORGET_EVERY_S:
            self._forgotten_at = time.monotonic()
            now = self.clock()
            self.inbox.forget_done(now)
            Runs(self.inbox.store).forget("worker", now - KEEP_RUNS)


def _change_of(items: Sequence[Claimed]) -> ChangeSet:
    events = [c.event for c in items]
    return ChangeSet.of(
        deals=(e.record_id for e in events if e.record == "deal"),
        users=(e.record_id for e in events if e.record == "user"),
        splits=(e.record_id for e in events if e.record == "split"),
    )
