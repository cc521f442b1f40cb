"""The workers of many CRM accounts in one process (a deployment, connector/accounts.py).

Work is serialized per account and parallel across accounts: each account's
passes hold that account's own sync lock (a fenced lease in its own store), so
any number of these processes, on any number of machines, share the accounts
between them. Each round, the account whose longest-waiting event arrived first
goes first, one batch each (``Worker.batch`` caps a pass), so a busy account
cannot starve quiet ones; an account whose lock another process holds is
passed over, not waited for, and whoever holds it drains it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial

from connector.errors import ConnectorError
from connector.logs import about_account, log
from connector.sync.lease import lock_state
from connector.sync.worker import Worker, contained, drain, gather_wait, run_rounds


class AccountsWorker:
    def __init__(
        self,
        workers: Mapping[str, Worker],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        gather_s: float | None = None,
    ) -> None:
        self.workers = dict(workers)
        self.clock = clock
        self.gather_s = (
            gather_s
            if gather_s is not None
            else min((w.gather_s for w in self.workers.values()), default=0.0)
        )

    def run(self, stop: threading.Event, wake: threading.Event | None = None) -> None:
        """Apply every account's events until ``stop`` is set; sleep until woken or polled."""
        log("worker_started", accounts=sorted(self.workers))
        inboxes = [worker.inbox for worker in self.workers.values()]
        settle = lambda: gather_wait(self.gather_s, inboxes, self.clock())  # noqa: E731
        run_rounds(self._round, settle, stop, wake)
        log("worker_stopped")

    def _round(self, stop: threading.Event) -> int:
        self.run_scheduled()
        return self.run_once()

    def drain(self) -> int:
        """Apply every account's due events, then return how many were claimed."""
        return drain(self.run_once)

    def due(self) -> list[str]:
        """The accounts with events to apply that no other process is applying, the one
        whose longest-waiting event arrived first first."""
        now = self.clock()
        waiting: list[tuple[int, str]] = []
        for name, worker in self.workers.items():
            with about_account(name):
                try:
                    oldest = worker.inbox.oldest_due_ms(now)
                    held = lock_state(worker.inbox.store) if oldest is not None else None
                except ConnectorError as error:
                    log("worker_store_error", level=logging.ERROR, error=str(error))
                    continue
            if oldest is None:
                continue
            if held is not None and held.expires_at is not None and held.expires_at > now:
                continue  # another pass holds it: a sync, or a worker elsewhere
            waiting.append((oldest, name))
        return [name for _, name in sorted(waiting)]

    def run_once(self) -> int:
        """One batch for each account with due work; the number of events claimed."""
        total = 0
        for name in self.due():
            total += self._guarded(name, self.workers[name].run_once)
        return total

    def run_scheduled(self) -> None:
        """The syncs each account's ``schedule:`` makes due."""
        for name, worker in self.workers.items():
            if worker.scheduler is not None:
                self._guarded(name, partial(worker.scheduler.run_due, time.monotonic()))

    def _guarded(self, name: str, step: Callable[[], object]) -> int:
        """One account's step: whatever it raises is that account's, logged, and the
        others go on."""
        with about_account(name):
            result = contained(step)
        return result if isinstance(result, int) else 0
