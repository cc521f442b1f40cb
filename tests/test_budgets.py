"""API budgets shared through the store: processes on one account stay within its rolling
window together, and a 429 pauses all of them (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from connector.adapters import base as adapters_base
from connector.adapters.hubspot.api import HubSpotApi, HubSpotSettings
from connector.adapters.retry import RetryPolicy
from connector.errors import CrmError
from connector.store.state import Store
from crm_sandbox.hubspot import HubSpotSandbox
from tests.crm_sync_helpers import write_config
from tests.fixtures.hubspot_sandbox import MakeHubSpotSandbox
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox
from tests.test_store import _postgres_url


def test_takes_stay_within_the_rolling_window(any_store: Store) -> None:
    budgets, now = any_store.budgets, 1_000.0
    # Granted calls are good until the end of their slot (a twentieth of the window).
    assert budgets.take("p1", "ten_second", 4, 10, 10.0, now) == (4, 1_000.5)
    assert budgets.take("p1", "ten_second", 4, 10, 10.0, now + 0.5) == (4, 1_001.0)
    granted, _ = budgets.take("p1", "ten_second", 4, 10, 10.0, now + 5)
    assert granted == 2  # 8 of 10 taken in the window
    granted, wait = budgets.take("p1", "ten_second", 4, 10, 10.0, now + 9.9)
    # Full until the slot of the first take leaves every rolling window: 1010.5.
    assert granted == 0 and abs(wait - 0.6) < 1e-6
    assert budgets.take("p1", "ten_second", 4, 10, 10.0, now + 11.0)[0] == 4
    # Another account, another API class: budgets of their own.
    assert budgets.take("p2", "ten_second", 4, 10, 10.0, now + 9.9)[0] == 4
    assert budgets.take("p1", "search", 4, 4, 1.0, now + 9.9)[0] == 4
    assert budgets.left("p1", "ten_second", 10, 10.0, now + 11.0) == 4


def test_a_pause_holds_every_take_until_it_ends(any_store: Store) -> None:
    budgets = any_store.budgets
    budgets.pause("p1", 2_000.0)
    budgets.pause("p1", 1_500.0)  # an earlier end never shortens a pause
    assert budgets.paused_until("p1") == 2_000.0 and budgets.paused_until("p2") is None
    granted, wait = budgets.take("p1", "ten_second", 4, 10, 10.0, 1_990.0)
    assert granted == 0 and abs(wait - 10.0) < 1e-6
    assert budgets.take("p1", "ten_second", 4, 10, 10.0, 2_000.5)[0] == 4


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'spm.db'}"
        Store.open(url).close()
        yield url
        return
    urls = _postgres_url()
    yield next(urls)
    urls.close()


def test_processes_sharing_a_store_never_pass_the_limit_together(store_url: str) -> None:
    """Three takers, each with its own engine on the store, as fast as they can for a
    second and a half: no rolling window of 0.5 s holds more than its limit."""
    url = store_url
    granted: list[float] = []
    lock = threading.Lock()
    start = time.time()

    def taker() -> None:
        with Store.open(url) as store:
            while time.time() - start < 1.5:
                now = time.time()
                got, when = store.budgets.take("p1", "ten_second", 2, 12, 0.5, now)
                if got:
                    with lock:
                        granted.extend([now] * got)
                else:
                    time.sleep(min(when, 0.05))

    threads = [threading.Thread(target=taker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    granted.sort()
    assert len(granted) >= 24  # the budget was used, not only guarded
    for i, moment in enumerate(granted):
        inside = [t for t in granted[i:] if t - moment < 0.5]
        assert len(inside) <= 12


def test_hubspot_calls_of_two_processes_share_the_portals_window(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    sandbox = make_hubspot_sandbox(reps=4, deals=10)
    sandbox.faults.rate_limit, sandbox.faults.rate_window_s = 8, 1.0
    url = f"sqlite:///{tmp_path / 'spm.db'}"
    Store.open(url).close()
    errors: list[str] = []

    def process() -> None:
        with Store.open(url) as store:
            api = _api(sandbox, store)
            api.portal_id()
            for _ in range(12):
                try:
                    api.request("owners", "/crm/v3/owners", query=[("limit", 1)])
                except Exception as error:
                    errors.append(str(error))

    threads = [threading.Thread(target=process) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    limited = [c for c in sandbox.calls.calls() if c.status == 429]
    assert limited == [], "the shared budget should keep both inside the portal's window"


def test_a_429_pauses_every_process_on_the_portal(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    sandbox = make_hubspot_sandbox(reps=4, deals=10)
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as store:
        api = _api(sandbox, store)
        portal = api.portal_id()
        # Someone else spent the portal's window: the next call is refused, 429 with a
        # Retry-After of the window (10 s).
        sandbox.faults.rate_limit = 0
        with contextlib.suppress(CrmError):  # refused after its one attempt
            api.request("owners", "/crm/v3/owners")
        granted, wait = store.budgets.take(portal, "ten_second", 1, 100, 10.0, time.time())
    assert granted == 0 and wait > 0  # another process would wait out the Retry-After


def _api(sandbox: HubSpotSandbox, store: Store) -> HubSpotApi:
    # The reserve (2 a window) covers each process's first call, made before it knows
    # which portal's budget to take from. The client is the adapter's own (urllib3 told
    # not to wait out a 429 by itself).
    settings = HubSpotSettings(base_url=sandbox.url)
    return HubSpotApi(
        settings, SecretStr(sandbox.token), RetryPolicy(attempts=1), budget=store.budgets
    )


def test_metrics_say_the_last_sync_the_pause_the_window_and_the_daily_budget_left(
    any_store: Store,
) -> None:
    from prometheus_client import generate_latest

    from connector.store.cursors import ACCOUNT_CURSOR
    from connector.store.inbox import Inbox
    from connector.sync.metrics import Metrics, account_state

    now = time.time()
    any_store.cursors.set(ACCOUNT_CURSOR, "40123456")
    run_id = any_store.runs.start("sync", datetime.fromtimestamp(now - 90, UTC), {}, "host:1")
    summary = {"api_daily_used": 1200, "api_daily_limit": 250_000}
    any_store.runs.finish(run_id, datetime.fromtimestamp(now - 80, UTC), "ok", summary)
    any_store.budgets.take("40123456", "ten_second", 2, 100, 10.0, now)
    any_store.budgets.pause("40123456", now + 30)
    metrics = Metrics(Inbox(any_store).depth, None, lambda: account_state(any_store))
    scraped = generate_latest(metrics.registry).decode()
    values = {
        line.split()[0]: float(line.split()[1])
        for line in scraped.splitlines()
        if line.startswith(("spm_last_sync", "spm_api_"))
    }
    assert 89 <= values["spm_last_sync_age_seconds"] <= 120
    assert 25 <= values["spm_api_paused_seconds"] <= 30
    assert values["spm_api_calls_in_window"] == 2
    assert values["spm_api_daily_remaining"] == 248_800
    assert values["spm_api_daily_limit"] == 250_000


# -- the daily allocation: a reserve left to the account's other integrations ----------------


@pytest.mark.usefixtures("fast_retries")
def test_salesforce_sync_stops_at_the_daily_reserve_and_the_next_finishes(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    from tests import test_salesforce_sync as sf

    sandbox = make_salesforce_sandbox(reps=8, deals=300)
    members = [u["Id"] for u in sandbox.users()]
    config = write_config(tmp_path, {**sandbox.settings()["crm"], "daily_reserve": "0.5"}, members)
    org = sf.Org(sandbox, config, dict(sandbox.settings()["env"]), tmp_path, sf.Clock())
    assert org.cli("install").exit_code == 0
    as_of = sf.as_of_for(sandbox)
    # The org's whole day, half of it the reserve: 5 calls are ours before it.
    limit = 2 * (sandbox.api_usage + 5)
    sandbox.faults.update({"daily_limit": limit})
    stopped = org.cli("sync", "--as-of", as_of.isoformat())
    assert stopped.exit_code == 3, stopped.output
    assert f"of {limit:,} calls are left" in stopped.output
    assert "crm.daily_reserve" in stopped.output
    # Every call was made before the reserve was reached, none after it.
    assert sandbox.api_usage <= limit // 2
    sandbox.faults.update({"daily_limit": None})
    resumed = org.cli("sync", "--as-of", as_of.isoformat())
    assert resumed.exit_code == 0, resumed.output
    sf.assert_crm_matches(org, sf.oracle(org, as_of), as_of)


@pytest.mark.usefixtures("fast_retries")
def test_hubspot_worker_postpones_at_the_daily_reserve_and_loses_nothing(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.commands.realtime import build_worker
    from connector.config import load_config
    from connector.store.inbox import Event, Inbox
    from tests import test_hubspot_sync as hs

    sandbox = make_hubspot_sandbox(reps=8, deals=200)
    portal = hs.portal_for(sandbox, tmp_path)
    for args in (("install",), ("sync", "--as-of", hs.AS_OF.isoformat())):
        assert portal.cli(*args).exit_code == 0
    deal = next(d for d in sandbox.deals() if d["dealstage"] == "appointmentscheduled")
    sandbox.close_deal(deal["id"], won=True)
    used = sandbox.app.daily_used
    sandbox.faults.update({"daily_limit": used + 10})  # 1 call left above a 10 % reserve
    config = load_config(portal.config)
    with Store.open(config.store) as store:
        inbox = Inbox(store)
        inbox.add([Event("hubspot", "e1", "deal", deal["id"], "deal.propertyChange")],
                  datetime.now(UTC))  # fmt: skip
        worker = build_worker(config, store, environ=portal.env, as_of=hs.AS_OF)
        worker.run_once()
        assert inbox.counts() == {"queued": 1}  # postponed, no try spent
        assert sandbox.app.daily_used <= used + 9
        sandbox.faults.update({"daily_limit": None})
        # A minute later: past the worker's delay, and the last answer is old enough that
        # one call may look again.
        worker.clock = lambda: datetime.now(UTC) + timedelta(minutes=1)
        monkeypatch.setattr(adapters_base, "DAILY_FRESH_S", 0.0)
        assert worker.run_once() == 1
        assert inbox.counts() == {"done": 1}
    hs.assert_crm_matches(portal, hs.oracle(portal, hs.AS_OF), hs.AS_OF)
