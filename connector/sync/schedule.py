"""Scheduled syncs run by the workers: no cron, and never twice for one schedule slot.

``schedule:`` in spm.yaml asks for an incremental sync every ``every`` and, with
``full_at``, a full sync each day at that local time. Every worker (and ``serve``'s
inline one) checks between batches whether a sync is due, and runs it through the
same sync lock as everything else: of two workers that find it due at once, one
takes the lock and syncs; the other finds it held and goes on, or takes it after
and finds, looking again under the lock, that the sync has run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from connector.errors import BusyError, ConnectorError
from connector.logs import log
from connector.store.runs import RunRecord
from connector.store.state import Store

FULL, INCREMENTAL = "full", "incremental"
_EVERY = re.compile(r"^(\d+)([mh])$")
CHECK_S = 5.0  # how often a worker looks whether a sync is due


class Schedule(BaseModel):
    """spm.yaml's ``schedule:``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    every: str = Field(pattern=_EVERY.pattern)  # "15m", "1h"
    full_at: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")  # "02:00"

    def interval(self) -> timedelta:
        match = _EVERY.match(self.every)
        assert match is not None  # the pattern above
        amount, unit = int(match.group(1)), match.group(2)
        return timedelta(minutes=amount) if unit == "m" else timedelta(hours=amount)


def due(schedule: Schedule, runs: list[RunRecord], now: datetime, zone: ZoneInfo) -> str | None:
    """Which sync is due at ``now`` given the last syncs (newest first), or None."""
    started = [run.started_at for run in runs]
    if schedule.full_at is not None:
        hour, minute = map(int, schedule.full_at.split(":"))
        local = now.astimezone(zone)
        at = datetime.combine(local.date(), time(hour, minute), zone)
        if local >= at:
            fulls = [run.started_at for run in runs if run.options.get("full")]
            if not fulls or max(fulls) < at:
                return FULL
    if not started or now - max(started) >= max(schedule.interval(), timedelta(minutes=1)):
        return INCREMENTAL
    return None


@dataclass
class Scheduler:
    """What a worker calls between batches: run the sync that is due, if any."""

    schedule: Schedule
    store: Store
    run_sync: Callable[[bool, Callable[[], bool]], object]  # (full, still due?) → a summary
    zone: ZoneInfo
    clock: Callable[[], datetime]
    today: Callable[[], date]
    _checked: float = float("-inf")

    def run_due(self, monotonic: float) -> str | None:
        """Run the due sync (at most one look every few seconds); which one ran, or None."""
        if monotonic - self._checked < CHECK_S:
            return None
        self._checked = monotonic
        kind = due(self.schedule, self._runs(), self.clock(), self.zone)
        if kind is None:
            return None

        def still_due() -> bool:  # asked again under the lock: another may have run it
            return due(self.schedule, self._runs(), self.clock(), self.zone) == kind

        try:
            summary = self.run_sync(kind == FULL, still_due)
        except BusyError:
            return None  # a sync or a worker pass holds the lock: look again later
        except ConnectorError as error:
            # Kept in the run log as failed; the next is due an interval after it started.
            log("scheduled_sync_failed", level=logging.ERROR, kind=kind, error=str(error))
            return None
        if getattr(summary, "skipped", False):
            return None
        log("scheduled_sync", kind=kind)
        return kind

    def _runs(self) -> list[RunRecord]:
        return self.store.runs.recent(limit=50, kind="sync")
