"""The durable inbox on SQLite and PostgreSQL: leases, retries, parking, several workers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from connector.store.db import this_process
from connector.store.inbox import Event, Inbox, inbox_table
from connector.store.state import Store

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


@pytest.fixture
def store(any_store: Store) -> Store:
    return any_store


def events(*ids: str) -> list[Event]:
    return [Event("hubspot", f"e-{i}", "deal", i, "deal.propertyChange") for i in ids]


def test_duplicates_are_stored_once_in_one_batch_and_across_batches(store: Store) -> None:
    inbox = Inbox(store)
    assert inbox.add(events("1", "2", "2"), T0) == 2
    assert inbox.add(events("2", "3"), T0) == 1
    assert inbox.depth().queued == 3


def test_an_expired_lease_returns_the_event_and_the_old_holder_cannot_finish_it(
    store: Store,
) -> None:
    inbox = Inbox(store)
    inbox.add(events("1"), T0)
    first, claimed = inbox.claim(T0, lease=timedelta(seconds=30))
    assert len(claimed) == 1
    assert inbox.claim(T0 + timedelta(seconds=10))[1] == []  # still leased
    second, again = inbox.claim(T0 + timedelta(seconds=31))
    assert [c.id for c in again] == [claimed[0].id] and again[0].attempts == 2
    # The first worker wakes up late: its lease is gone, so its "done" changes nothing.
    assert inbox.done(first, [claimed[0].id], T0 + timedelta(seconds=32)) == 0
    assert inbox.done(second, [claimed[0].id], T0 + timedelta(seconds=33)) == 1
    assert inbox.counts() == {"done": 1}


def test_a_dead_worker_on_this_host_need_not_wait_out_its_lease_on_sqlite(store: Store) -> None:
    inbox = Inbox(store)
    inbox.add(events("1"), T0)
    inbox.claim(T0, lease=timedelta(hours=1))
    host, _pid, namespace, token = this_process().split(":")
    dead = f"{host}:{2**22 + 12345}:{namespace}:{token}/abc"  # no such pid, here
    with store.transaction() as connection:
        connection.execute(inbox_table.update().values(claim=dead))
    _, claimed = inbox.claim(T0 + timedelta(seconds=1))
    # On a server store, hosts may share a name and a PID namespace: the lease decides.
    assert len(claimed) == (1 if store.dialect == "sqlite" else 0)
    if store.dialect != "sqlite":
        _, claimed = inbox.claim(T0 + timedelta(hours=1, seconds=1))  # its lease ran out
        assert len(claimed) == 1


def test_failures_back_off_then_park_and_can_be_queued_again(store: Store) -> None:
    inbox = Inbox(store, max_attempts=2)
    inbox.add(events("1"), T0)
    token, claimed = inbox.claim(T0)
    inbox.failed(token, [claimed[0].id], "CRM said no", T0, timedelta(seconds=60))
    assert inbox.claim(T0 + timedelta(seconds=59))[1] == []  # backing off
    token, claimed = inbox.claim(T0 + timedelta(seconds=61))
    inbox.failed(token, [claimed[0].id], "CRM said no again", T0, timedelta(seconds=60))
    assert inbox.counts() == {"parked": 1}
    (parked,) = inbox.parked()
    assert parked.error == "CRM said no again" and parked.attempts == 2
    assert inbox.depth().parked == 1
    assert inbox.retry_parked(T0) == 1
    assert len(inbox.claim(T0 + timedelta(hours=1))[1]) == 1


def test_a_worker_killed_every_time_parks_the_event_instead_of_looping(store: Store) -> None:
    inbox = Inbox(store, max_attempts=3)
    inbox.add(events("1"), T0)
    now = T0
    for _ in range(3):
        _, claimed = inbox.claim(now, lease=timedelta(seconds=5))
        assert len(claimed) == 1
        now += timedelta(seconds=6)  # the worker died: its lease runs out
    assert inbox.claim(now)[1] == []
    (parked,) = inbox.parked()
    assert "stopped while applying it 3 times" in parked.error


def test_release_spends_no_attempt(store: Store) -> None:
    inbox = Inbox(store, max_attempts=1)
    inbox.add(events("1"), T0)
    for minute in range(3):
        token, claimed = inbox.claim(T0 + timedelta(minutes=minute))
        assert claimed[0].attempts == 1
        inbox.release(token, [claimed[0].id], T0 + timedelta(minutes=minute), timedelta(0))
    assert inbox.counts() == {"queued": 1}


def test_applied_events_are_forgotten_after_they_can_no_longer_be_retried(store: Store) -> None:
    inbox = Inbox(store)
    inbox.add(events("1", "2"), T0)
    token, claimed = inbox.claim(T0)
    inbox.done(token, [claimed[0].id], T0)
    assert inbox.forget_done(T0 + timedelta(days=2)) == 0
    assert inbox.forget_done(T0 + timedelta(days=4)) == 1
    # A retry arriving after that would be stored again: harmless, applying is idempotent.
    assert inbox.counts() == {"claimed": 1}


def test_workers_claiming_at_once_never_share_an_event(store: Store) -> None:
    inbox = Inbox(store)
    inbox.add(events(*(str(i) for i in range(400))), T0)
    seen: list[list[int]] = []
    lock = threading.Lock()

    def work() -> None:
        while True:
            token, claimed = inbox.claim(T0, limit=7)
            if not claimed:
                return
            with lock:
                seen.append([c.id for c in claimed])
            inbox.done(token, [c.id for c in claimed], T0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [i for batch in seen for i in batch]
    assert len(ids) == len(set(ids)) == 400
    with store.reading() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(inbox_table)).scalar() == 400
        )


def test_the_worker_run_log_is_pruned_but_syncs_are_kept(store: Store) -> None:
    old = store.runs.start("worker", T0 - timedelta(days=8), {})
    store.runs.finish(old, T0 - timedelta(days=8), "ok", {})
    recent = store.runs.start("worker", T0 - timedelta(days=1), {})
    store.runs.finish(recent, T0 - timedelta(days=1), "ok", {})
    sync = store.runs.start("sync", T0 - timedelta(days=30), {})
    store.runs.finish(sync, T0 - timedelta(days=30), "ok", {})
    assert store.runs.forget("worker", T0 - timedelta(days=7)) == 1
    assert sorted(run.kind for run in store.runs.recent()) == ["sync", "worker"]


def test_a_worker_gathers_only_what_is_still_arriving(store: Store) -> None:
    from connector.sync.worker import gather_wait

    inbox = Inbox(store)
    assert gather_wait(0.1, [inbox], T0) == 0.1  # nothing due: the full gathering wait
    inbox.add(events("1"), T0)
    # Just arrived: what follows it in the same edit has 70 ms more to come.
    assert gather_wait(0.1, [inbox], T0 + timedelta(milliseconds=30)) == pytest.approx(0.07)
    # Waited through the last pass already: no wait at all.
    assert gather_wait(0.1, [inbox], T0 + timedelta(seconds=1)) == 0.0
    # A receiver's clock ahead of the worker's never holds it longer than the wait.
    assert gather_wait(0.1, [inbox], T0 - timedelta(seconds=5)) == 0.1
    assert inbox.oldest_due_ms(T0) is not None
