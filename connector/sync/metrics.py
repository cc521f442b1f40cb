"""What the receiver and the worker count, in Prometheus' terms.

Each app gets its own registry, so two apps in one process (tests, a demo)
never share counters. The inbox's depth and age are read from the store at
scrape time: every receiver and worker process sees the same queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from connector.errors import ConnectorError
from connector.store.cursors import ACCOUNT_CURSOR
from connector.store.inbox import Depth
from connector.store.state import Store
from connector.sync.lease import LockState

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class AccountState:
    """What /metrics says of the CRM account besides the inbox and the lock."""

    last_sync_started: float | None  # epoch seconds
    paused_until: float | None  # epoch seconds: every process waits out a 429 till then
    calls_in_window: int  # HubSpot calls counted in the shared ten-second window
    # The account's daily allocation as the CRM's last answer to any pass said it.
    daily_used: int | None = None
    daily_limit: int | None = None


class _InboxCollector(Collector):
    def __init__(
        self,
        depth: Callable[[], Depth],
        lock: Callable[[], LockState | None] | None = None,
        account: Callable[[], AccountState] | None = None,
    ) -> None:
        self._depth = depth
        self._lock = lock
        self._account = account

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            depth = self._depth()
        except ConnectorError:
            return  # the store is unreachable: /healthz says so; the counters still export
        yield GaugeMetricFamily(
            "spm_inbox_depth", "Events stored and not yet applied.", value=depth.queued
        )
        age = 0.0
        if depth.oldest_received_ms is not None:
            age = max(0.0, time.time() - depth.oldest_received_ms / 1000)
        yield GaugeMetricFamily(
            "spm_inbox_oldest_age_seconds", "Age of the oldest event not yet applied.", value=age
        )
        yield GaugeMetricFamily(
            "spm_inbox_parked", "Events parked after failing every try.", value=depth.parked
        )
        yield from self._lock_gauges()
        if self._account is None:
            return
        try:
            state = self._account()
        except ConnectorError:
            return
        now = time.time()
        if state.last_sync_started is not None:
            yield GaugeMetricFamily(
                "spm_last_sync_age_seconds",
                "Time since the last sync (scheduled or by hand) started.",
                value=max(0.0, now - state.last_sync_started),
            )
        yield GaugeMetricFamily(
            "spm_api_paused_seconds",
            "How long every process still waits out the CRM's last 429 (0: not paused).",
            value=max(0.0, (state.paused_until or 0.0) - now),
        )
        yield GaugeMetricFamily(
            "spm_api_calls_in_window",
            "CRM calls counted in the account's shared ten-second window (HubSpot).",
            value=state.calls_in_window,
        )
        if state.daily_used is not None and state.daily_limit:
            yield GaugeMetricFamily(
                "spm_api_daily_remaining",
                "Calls left of the account's daily API allocation, as the CRM last said.",
                value=max(0, state.daily_limit - state.daily_used),
            )
            yield GaugeMetricFamily(
                "spm_api_daily_limit",
                "The account's daily API allocation.",
                value=state.daily_limit,
            )

    def _lock_gauges(self) -> Iterator[GaugeMetricFamily]:
        if self._lock is None:
            return
        try:
            held = self._lock()
        except ConnectorError:
            return
        yield GaugeMetricFamily(
            "spm_sync_lock_held_seconds",
            "How long a sync or worker pass has held the sync lock (0: free).",
            value=0.0 if held is None else max(0.0, time.time() - held.acquired_at.timestamp()),
        )
        yield GaugeMetricFamily(
            "spm_sync_lock_generation",
            "The sync lock's fencing generation: takes since it was last free (0: free).",
            value=0 if held is None else held.generation,
        )


class Metrics:
    def __init__(
        self,
        depth: Callable[[], Depth] | None = None,
        lock: Callable[[], LockState | None] | None = None,
        account: Callable[[], AccountState] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "spm_webhook_events_received", "Events stored by the receiver.", ["source"], registry=r
        )
        self.duplicates = Counter(
            "spm_webhook_events_duplicate",
            "Events already stored (a CRM's retry).",
            ["source"],
            registry=r,
        )
        self.ignored = Counter(
            "spm_webhook_events_ignored",
            "Events acknowledged and not stored: our own write-backs, kinds we do not use.",
            ["source", "reason"],
            registry=r,
        )
        self.rejected = Counter(
            "spm_webhook_requests_rejected",
            "Requests refused, by reason.",
            ["source", "reason"],
            registry=r,
        )
        self.processed = Counter(
            "spm_worker_events_processed", "Events applied by the worker.", ["source"], registry=r
        )
        self.failed = Counter(
            "spm_worker_events_failed",
            "Events whose application failed (retried later, or parked).",
            ["source"],
            registry=r,
        )
        self.ack_seconds = Histogram(
            "spm_webhook_ack_seconds",
            "Time from a request's arrival to its answer.",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.processing_seconds = Histogram(
            "spm_worker_batch_seconds",
            "Time the worker took to apply one batch of events.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "spm_event_end_to_end_seconds",
            "Time from the change in the CRM (or its receipt) to our fields being written.",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.crm_calls = Counter(
            "spm_worker_crm_calls", "CRM API calls the worker made.", registry=r
        )
        if depth is not None:
            r.register(_InboxCollector(depth, lock, account))


# HubSpot's window, the one the shared budget counts in (hubspot.md).
TEN_SECONDS = 10.0


def account_state(store: Store) -> AccountState:
    """The account's last sync, its API pause and its calls in the shared window."""
    account = store.cursors.get(ACCOUNT_CURSOR)
    last = store.runs.recent(limit=1, kind="sync")
    latest = store.runs.recent(limit=1)  # a sync's or a worker pass's
    now = time.time()
    summary = latest[0].summary if latest else {}
    return AccountState(
        last[0].started_at.timestamp() if last else None,
        store.budgets.paused_until(account) if account else None,
        store.budgets.used(account, "ten_second", TEN_SECONDS, now) if account else 0,
        summary.get("api_daily_used"),
        summary.get("api_daily_limit"),
    )
