"""Wake-ups without polling: the receiver's insert wakes a worker in another process.

On PostgreSQL, storing new inbox events also sends ``NOTIFY spm_inbox`` in the same
transaction (delivered when it commits), and each worker process keeps one
connection that LISTENs and sets its wake event: a worker starts within
milliseconds of a delivery instead of at its next poll. Polling stays as the
fallback (a lost connection, SQLite, where ``serve`` wakes its own in-process
worker directly). A lost connection is reconnected with growing waits, and the
worker is woken on reconnecting, in case a notification went by meanwhile.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import sqlalchemy as sa

from connector.logs import log
from connector.store.db import Database

CHANNEL = "spm_inbox"
CHECK_S = 1.0  # how often the listener looks at the stop event between notifications
MAX_RETRY_S = 30.0


def notify(db: Database, connection: sa.Connection) -> None:
    """Inside the inbox's insert: wake the listening workers when it commits."""
    if db.dialect == "postgresql":
        connection.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class InboxListener:
    """One worker process's LISTEN on the inbox channel, setting ``wake`` on each delivery."""

    def __init__(self, db: Database, wake: threading.Event, stop: threading.Event) -> None:
        self._db = db
        self._wake = wake
        self._stop = stop
        self.listening = threading.Event()  # set while LISTEN is in place
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Listen in a daemon thread; False where the store cannot (SQLite: poll instead)."""
        if self._db.dialect != "postgresql":
            return False
        self._thread = threading.Thread(target=self._run, name="spm-inbox-listener", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        wait = 1.0
        while not self._stop.is_set():
            try:
                with self._db.listening_connection() as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self._wake.set()  # whatever arrived while we were not listening
                    wait = 1.0
                    self._listen(connection)
            except Exception as error:  # the driver's own errors: reconnect, never die
                self.listening.clear()
                log("inbox_listener_lost", level=logging.WARNING,
                    error=type(error).__name__, retry_s=wait)  # fmt: skip
                self._stop.wait(wait)
                wait = min(wait * 2, MAX_RETRY_S)
        self.listening.clear()

    def _listen(self, connection: Any) -> None:
        while not self._stop.is_set():
            for _ in connection.notifies(timeout=CHECK_S, stop_after=1):
                self._wake.set()
