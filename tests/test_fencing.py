"""Fencing: a holder of the sync lock whose lease ran out while it was paused, and was
taken over, commits nothing; the new holder's work stands. On SQLite and, when it is
there, the local PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from connector.errors import LeaseLostError
from connector.store.db import iso
from connector.store.schema import cursors_table, lock_table
from connector.store.state import Store
from connector.sync.lease import sync_lock
from tests.test_store import _postgres_url

postgres_url = pytest.fixture(_postgres_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'spm.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


def clock() -> datetime:
    return datetime.now(UTC)


def cursor(store: Store, name: str) -> str | None:
    with store.reading() as connection:
        found = connection.execute(
            sa.select(cursors_table.c.value).where(cursors_table.c.name == name)
        ).scalar_one_or_none()
    return None if found is None else str(found)


def test_a_paused_holder_taken_over_commits_nothing(url: str) -> None:
    with Store.open(url) as paused, Store.open(url) as other:
        with sync_lock(paused, "host-a:101", clock):
            paused.cursors.set("first", "before the pause")  # while it holds: committed
            # Paused past its lease (SIGSTOP): the lease runs out, and another takes over.
            with other.committing() as connection:
                connection.execute(
                    lock_table.update().values(expires_at=iso(clock() - timedelta(seconds=1)))
                )
            taken, release = threading.Event(), threading.Event()

            def take_over() -> None:
                with sync_lock(other, "host-b:202", clock):
                    other.cursors.set("second", "the new holder's")
                    taken.set()
                    release.wait(30)

            thread = threading.Thread(target=take_over)
            thread.start()
            assert taken.wait(30)
            # Resumed (SIGCONT): its late commit is refused, whole.
            with pytest.raises(LeaseLostError, match="another holder took over"):
                paused.cursors.set("first", "after the pause")
            release.set()
            thread.join(30)
        assert cursor(other, "first") == "before the pause"
        assert cursor(other, "second") == "the new holder's"
        # Each take counts the generation up: the lock was taken twice.
        with other.reading() as connection:
            generation = connection.execute(sa.select(lock_table.c.generation)).scalar()
        assert generation is None  # released by the new holder: no row left


def test_a_holder_that_keeps_its_lease_commits_as_before(url: str) -> None:
    with Store.open(url) as store:
        with sync_lock(store, "host-a:101", clock):
            store.cursors.set("kept", "yes")
        store.cursors.set("outside", "no lock, no fence")  # the fence ends with the lock
        assert (cursor(store, "kept"), cursor(store, "outside")) == ("yes", "no lock, no fence")
