"""The worker's policy: what it folds together, what it drops, and what a failure costs.

The engine here is a stand-in that fails as each test says, so that every
failure class can be produced on demand; the real engine behind the worker is
exercised end to end in test_realtime.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from connector.core.models import ApiUsage
from connector.errors import (
    ConnectorError,
    CrmAuthError,
    CrmUnavailableError,
    SyncLockedError,
)
from connector.store.inbox import Claimed, Event, Inbox
from connector.store.schema import inbox_table
from connector.store.state import Store
from connector.sync.run import ChangeSet, SyncOptions, SyncSummary
from connector.sync.worker import Worker

WRITER = "005000000000009AAA"


class StandInAdapter:
    def usage(self) -> ApiUsage:
        return ApiUsage(calls=0)

    def writer_id(self) -> str | None:
        return WRITER


class StandInEngine:
    """Records each change it is given; raises what ``fail`` returns for it."""

    def __init__(self, fail: Callable[[ChangeSet], Exception | None] = lambda _c: None) -> None:
        self.adapter = StandInAdapter()
        self.changes: list[ChangeSet] = []
        self.fail = fail

    def process(self, change: ChangeSet, options: SyncOptions) -> SyncSummary:
        self.changes.append(change)
        error = self.fail(change)
        if error is not None:
            raise error
        return SyncSummary()


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as store:
        yield Inbox(store, max_attempts=2)


def worker_for(inbox: Inbox, engine: StandInEngine, now: list[datetime]) -> Worker:
    return Worker(
        inbox,
        engine,  # type: ignore[arg-type]
        today=lambda: date(2026, 12, 1),
        clock=lambda: now[0],
    )


def status_of(inbox: Inbox, source: str, event_id: str) -> str | None:
    t = inbox_table
    with inbox.store.reading() as connection:
        status: str | None = connection.execute(
            sa.select(t.c.status).where(t.c.source == source, t.c.event_id == event_id)
        ).scalar_one_or_none()
    return status


def add(inbox: Inbox, *events: tuple[str, str, str | None], at: datetime) -> None:
    inbox.add(
        [
            Event("salesforce", f"n{index}", record, record_id, "Opportunity", actor)
            for index, (record, record_id, actor) in enumerate(events)
        ],
        at,
    )


def test_a_batch_is_one_change_per_record_and_our_own_writes_are_dropped(inbox: Inbox) -> None:
    now = [datetime(2026, 12, 1, 9, tzinfo=UTC)]
    engine = StandInEngine()
    add(
        inbox,
        ("deal", "006A", "005000000000001AAA"),
        ("deal", "006A", "005000000000001AAA"),
        ("deal", "006B", None),
        ("split", "006C", None),
        ("user", "005X", None),
        ("deal", "006D", WRITER[:15]),  # our write coming back (15-character form)
        at=now[0],
    )
    assert worker_for(inbox, engine, now).run_once() == 6
    (change,) = engine.changes
    assert change == ChangeSet.of(deals=["006A", "006B"], users=["005X"], splits=["006C"])
    assert inbox.counts() == {"done": 6}


@pytest.mark.parametrize(
    "error",
    [
        SyncLockedError("a sync is running"),
        CrmUnavailableError("Salesforce answered 503 five times"),
    ],
)
def test_a_busy_lock_or_a_crm_outage_postpones_without_spending_tries(
    inbox: Inbox, error: ConnectorError
) -> None:
    now = [datetime(2026, 12, 1, 9, tzinfo=UTC)]
    engine = StandInEngine(lambda _c: error)
    add(inbox, ("deal", "006A", None), ("deal", "006B", None), at=now[0])
    worker = worker_for(inbox, engine, now)
    for _ in range(5):
        worker.run_once()
        now[0] += timedelta(minutes=1)
    assert inbox.counts() == {"queued": 2}
    assert all(len(change.deals) == 2 for change in engine.changes)  # never split


def test_bad_credentials_cost_one_call_per_batch_and_park_visibly(inbox: Inbox) -> None:
    now = [datetime(2026, 12, 1, 9, tzinfo=UTC)]
    engine = StandInEngine(lambda _c: CrmAuthError("Salesforce refused the session"))
    add(inbox, ("deal", "006A", None), ("deal", "006B", None), at=now[0])
    worker = worker_for(inbox, engine, now)
    worker.run_once()
    assert len(engine.changes) == 1 and inbox.counts() == {"queued": 2}
    now[0] += timedelta(minutes=1)
    worker.run_once()
    assert len(engine.changes) == 2
    assert inbox.counts() == {"parked": 2}
    assert all(p.error == "Salesforce refused the session" for p in inbox.parked())


def test_one_failing_record_neither_holds_back_nor_parks_the_others(inbox: Inbox) -> None:
    now = [datetime(2026, 12, 1, 9, tzinfo=UTC)]

    def fail(change: ChangeSet) -> Exception | None:
        return KeyError("006B") if "006B" in change.deals else None

    engine = StandInEngine(fail)
    add(inbox, ("deal", "006A", None), ("deal", "006B", None), ("deal", "006C", None), at=now[0])
    worker = worker_for(inbox, engine, now)
    worker.run_once()
    # The whole batch, then each record on its own.
    assert [sorted(c.deals) for c in engine.changes] == [
        ["006A", "006B", "006C"],
        ["006A"],
        ["006B"],
        ["006C"],
    ]
    assert status_of(inbox, "salesforce", "n0") == "done"
    assert status_of(inbox, "salesforce", "n1") == "queued"
    assert status_of(inbox, "salesforce", "n2") == "done"
    assert worker.run_once() == 0  # backing off
    now[0] += timedelta(minutes=1)
    assert worker.run_once() == 1
    (parked,) = inbox.parked()
    assert parked.record_id == "006B" and parked.error.startswith("internal error: KeyError")


def test_the_worker_stops_when_told(inbox: Inbox) -> None:
    now = [datetime(2026, 12, 1, 9, tzinfo=UTC)]
    stop, wake = threading.Event(), threading.Event()
    worker = worker_for(inbox, StandInEngine(), now)
    thread = threading.Thread(target=worker.run, args=(stop, wake))
    thread.start()
    add(inbox, ("deal", "006A", None), at=now[0])
    wake.set()
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while inbox.counts() != {"done": 1}:
        assert datetime.now(UTC) < deadline
        stop.wait(0.02)
    stop.set()
    wake.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_bug_outside_a_batch_is_logged_and_the_worker_goes_on(
    inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    now = [datetime(2026, 12, 1, 9, tzinfo=UTC)]
    failures = iter([RuntimeError("claim broke")])

    class Flaky(Inbox):
        def claim(self, *args: object, **kwargs: object) -> tuple[str, list[Claimed]]:
            error = next(failures, None)
            if error is not None:
                raise error
            return super().claim(*args, **kwargs)  # type: ignore[arg-type]

    flaky = Flaky(inbox.store)
    worker = worker_for(flaky, StandInEngine(), now)
    stop, wake = threading.Event(), threading.Event()
    add(flaky, ("deal", "006A", None), at=now[0])
    caplog.set_level("ERROR", logger="spm")
    thread = threading.Thread(target=worker.run, args=(stop, wake))
    thread.start()
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while flaky.counts() != {"done": 1}:
        assert datetime.now(UTC) < deadline
        wake.set()
        stop.wait(0.05)
    stop.set()
    wake.set()
    thread.join(timeout=5)
    assert "claim broke" in caplog.text and "worker_bug" in caplog.text
