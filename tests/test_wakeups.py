"""Wake-ups without polling: on PostgreSQL a receiver's insert wakes a worker's listener
at once (LISTEN/NOTIFY), across connections as across processes; a lost listening
connection comes back. Needs the local PostgreSQL (skipped with the reason without it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from connector.store.inbox import Event, Inbox
from connector.store.state import Store
from connector.store.wakeups import InboxListener
from tests.test_store import _postgres_url

postgres_url = pytest.fixture(_postgres_url)


@pytest.fixture
def listening(postgres_url: str) -> Iterator[tuple[Store, threading.Event, InboxListener]]:
    with Store.open(postgres_url) as worker_side:
        wake, stop = threading.Event(), threading.Event()
        listener = InboxListener(worker_side, wake, stop)
        assert listener.start()
        assert listener.listening.wait(10)
        wake.clear()
        yield worker_side, wake, listener
        stop.set()


def deliver(url: str, event_id: str) -> None:
    """What a receiver in another process does: store an event (its own connection)."""
    with Store.open(url) as receiving:
        added = Inbox(receiving).add(
            [Event("hubspot", event_id, "deal", "D1", "deal.propertyChange")], datetime.now(UTC)
        )
        assert added == 1


def test_a_stored_event_wakes_the_listening_worker_at_once(
    postgres_url: str, listening: tuple[Store, threading.Event, InboxListener]
) -> None:
    _, wake, _ = listening
    started = time.monotonic()
    deliver(postgres_url, "e1")
    assert wake.wait(2.0), "the listener was not woken"
    # Far below the half-second poll it replaces (allowing for a busy test machine).
    assert time.monotonic() - started < 1.0
    # A duplicate delivery stores nothing and wakes nobody.
    wake.clear()
    with Store.open(postgres_url) as receiving:
        again = Event("hubspot", "e1", "deal", "D1", "deal.propertyChange")
        assert Inbox(receiving).add([again], datetime.now(UTC)) == 0
    assert not wake.wait(1.5)


def test_a_lost_listening_connection_comes_back(
    postgres_url: str, listening: tuple[Store, threading.Event, InboxListener]
) -> None:
    store, wake, listener = listening
    with store.reading() as connection:
        connection.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN spm_inbox%' AND pid <> pg_backend_pid()"))  # fmt: skip
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (wake.is_set() and listener.listening.is_set()):
        time.sleep(0.05)
    assert listener.listening.is_set()  # reconnected, and woke the worker for what it missed
    wake.clear()
    deliver(postgres_url, "e2")
    assert wake.wait(2.0)


def test_sqlite_has_no_listener_the_worker_polls(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as store:
        assert not InboxListener(store, threading.Event(), threading.Event()).start()
