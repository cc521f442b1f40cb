"""Scheduled syncs run by workers: when each is due, and two workers never run one twice."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from connector.config import load_config, load_secrets
from connector.connect import adapter_for, sync_settings
from connector.store.runs import RunRecord
from connector.store.state import Store
from connector.sync.engine import SyncEngine
from connector.sync.run import SyncOptions, SyncSummary
from connector.sync.schedule import FULL, INCREMENTAL, Schedule, Scheduler, due
from tests.crm_sync_helpers import run, write_config
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox

ZONE = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)  # 10:00 in Berlin


def sync_run(started: datetime, *, full: bool = False) -> RunRecord:
    return RunRecord(1, "sync", started, started, "ok", {"full": full}, {})


def test_an_incremental_sync_every_interval_and_a_full_one_each_day() -> None:
    every = Schedule(every="15m")
    assert due(every, [], NOW, ZONE) == INCREMENTAL  # never synced
    assert due(every, [sync_run(NOW - timedelta(minutes=14))], NOW, ZONE) is None
    assert due(every, [sync_run(NOW - timedelta(minutes=15))], NOW, ZONE) == INCREMENTAL
    nightly = Schedule(every="1h", full_at="02:00")
    last_night = datetime(2026, 12, 6, 1, 5, tzinfo=UTC)  # 02:05 in Berlin
    recent = [sync_run(NOW - timedelta(minutes=5)), sync_run(last_night, full=True)]
    assert due(nightly, recent, NOW, ZONE) is None
    # Yesterday's full sync only: today's 02:00 has passed, so a full one is due.
    older = [
        sync_run(NOW - timedelta(minutes=5)),
        sync_run(last_night - timedelta(days=1), full=True),
    ]
    assert due(nightly, older, NOW, ZONE) == FULL
    with pytest.raises(ValidationError):
        Schedule(every="15 minutes")
    with pytest.raises(ValidationError):
        Schedule(every="1h", full_at="25:00")


def test_two_workers_that_find_a_sync_due_at_once_run_it_once(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    sandbox = make_salesforce_sandbox(reps=4, deals=40)
    config_path = write_config(tmp_path, sandbox.settings()["crm"],
                               [u["Id"] for u in sandbox.users()],
                               extra={"schedule": {"every": "15m"}})  # fmt: skip
    env = dict(sandbox.settings()["env"])
    assert run(config_path, env, "install").exit_code == 0
    config = load_config(config_path)
    schedule = config.schedule
    assert schedule == Schedule(every="15m")
    now = [datetime.now(UTC)]
    ran: list[Any] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        with Store.open(config.store) as store:
            secrets = load_secrets(env, tmp_path)
            adapter = adapter_for(config, secrets, cache=store.cache, budget=store.budgets)
            engine = SyncEngine(sync_settings(config, secrets), adapter, store,
                                clock=lambda: now[0])  # fmt: skip

            def run_sync(full: bool, still_due: Any) -> SyncSummary:
                barrier.wait()  # both found it due; now both go for the lock
                options = SyncOptions(as_of=date.today(), full=full, only_if=still_due,
                                      lock_wait_s=30)  # fmt: skip
                return engine.run(options)

            scheduler = Scheduler(schedule, store, run_sync, config.zone, lambda: now[0],
                                  date.today)  # fmt: skip
            ran.append(scheduler.run_due(0.0))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ran, key=str) == [None, INCREMENTAL]
    with Store.open(config.store) as store:
        assert len(store.runs.recent(kind="sync")) == 1
        # Not due again until the interval has gone by.
        later = now[0] + timedelta(minutes=14)
        scheduler = Scheduler(schedule, store, lambda full, still: pytest.fail("ran"),
                              config.zone, lambda: later, date.today)  # fmt: skip
        assert scheduler.run_due(100.0) is None
