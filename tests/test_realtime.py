"""Real time end to end: a deal changes in the sandbox, the sandbox sends its real webhook
or outbound message, the receiver stores it, the worker applies it, and the deal's and
the rep's fields in the sandbox are what `calc` computes from the whole CRM.

Both CRMs, the real client libraries, real sockets; no function of ours is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.commands.realtime import build_worker
from connector.config import load_config
from connector.store.inbox import Event, Inbox
from connector.store.state import Store
from crm_sandbox.hubspot import HubSpotSandbox
from crm_sandbox.salesforce import SalesforceSandbox
from crm_sandbox.salesforce.schema import STAGE_LABELS
from tests import test_hubspot_sync as hs
from tests import test_salesforce_sync as sf
from tests.crm_sync_helpers import write_config
from tests.fixtures.hubspot_sandbox import MakeHubSpotSandbox
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox
from tests.realtime_helpers import LiveReceiver, wait_until

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
def live() -> Iterator[LiveReceiver]:
    receiver = LiveReceiver()
    yield receiver
    receiver.close()


# -- HubSpot ------------------------------------------------------------------------------


def hubspot_synced(
    make: MakeHubSpotSandbox, directory: Path, live: LiveReceiver, *, worker: bool = True
) -> hs.Portal:
    sandbox = make(reps=8, deals=200, webhook_url=f"{live.url}/webhooks/hubspot")
    portal = hs.portal_for(sandbox, directory)
    live.attach(portal.config, portal.env, hs.AS_OF, worker=worker)
    for args in (("install",), ("sync", "--as-of", hs.AS_OF.isoformat())):
        result = portal.cli(*args)
        assert result.exit_code == 0, result.output
    live.settle([sandbox.wait_for_webhooks])
    return portal


def open_hubspot_deal(sandbox: HubSpotSandbox) -> dict[str, str]:
    return next(
        d
        for d in sandbox.deals()
        if d["dealstage"] == "appointmentscheduled" and d["closedate"] < "2026-12"
    )


def writes_per_field(sandbox: HubSpotSandbox) -> dict[tuple[str, str], int]:
    """How many times each (record, property) was written since the call log was reset."""
    written: dict[tuple[str, str], int] = {}
    for call in sandbox.calls.calls():
        if call.kind in hs.WRITES:
            for record_id, names in (call.fields or {}).items():
                for name in names:
                    written[(record_id, name)] = written.get((record_id, name), 0) + 1
    return written


def hubspot_commission(sandbox: HubSpotSandbox, deal_id: str) -> str | None:
    deal = next(d for d in sandbox.deals() if d["id"] == deal_id)
    return deal.get("spm_commission") or None


def test_hubspot_deal_won_is_written_back_in_seconds_and_echoes_cause_nothing(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path, live: LiveReceiver
) -> None:
    portal = hubspot_synced(make_hubspot_sandbox, tmp_path, live)
    sandbox = portal.sandbox
    # The sync's own writes came back as webhooks, and were dropped as ours.
    echoes = live.metric("spm_webhook_events_ignored_total", source="hubspot", reason="echo")
    assert echoes > 0
    assert live.inbox.counts().get("queued", 0) == 0

    deal = open_hubspot_deal(sandbox)
    sandbox.calls.reset()
    started = time.monotonic()
    sandbox.close_deal(deal["id"], won=True)
    wait_until(lambda: hubspot_commission(sandbox, deal["id"]) is not None, what="the write-back")
    assert time.monotonic() - started < 5
    live.settle([sandbox.wait_for_webhooks])
    hs.assert_crm_matches(portal, hs.oracle(portal, hs.AS_OF), hs.AS_OF)

    # The write-back's own events were acknowledged and dropped: no second round of writes.
    writes = portal.writes()
    assert writes and len(writes) <= 2  # one deal batch, one rep batch
    assert live.metric("spm_webhook_events_ignored_total", source="hubspot", reason="echo") > (
        echoes
    )
    time.sleep(0.5)
    live.settle([sandbox.wait_for_webhooks])
    assert portal.writes() == writes
    assert live.metric("spm_worker_events_processed_total", source="hubspot") >= 1


def test_hubspot_deal_won_then_reopened_a_second_later(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path, live: LiveReceiver
) -> None:
    portal = hubspot_synced(make_hubspot_sandbox, tmp_path, live)
    sandbox = portal.sandbox
    deal = open_hubspot_deal(sandbox)
    sandbox.close_deal(deal["id"], won=True)
    wait_until(lambda: hubspot_commission(sandbox, deal["id"]) is not None, what="the won deal")
    time.sleep(1)
    sandbox.portal.mutate(deal["id"], {"dealstage": "appointmentscheduled"})
    live.settle([sandbox.wait_for_webhooks])
    stamp = sandbox.portal.deal(deal["id"]).updated_ms
    reopened = datetime.fromtimestamp(stamp / 1000, tz=UTC).date()
    # Paid when won, clawed back when reopened: exactly what calc says of a cancelled deal.
    expected = hs.oracle(portal, hs.AS_OF, {deal["id"]: reopened})
    hs.assert_crm_matches(portal, expected, hs.AS_OF)


def _sign_and_post(url: str, secret: str, events: list[dict[str, Any]]) -> int:
    body = json.dumps(events).encode()
    timestamp = str(int(time.time() * 1000))
    digest = hmac.new(
        secret.encode(), b"POST" + url.encode() + body + timestamp.encode(), hashlib.sha256
    ).digest()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
            "X-HubSpot-Request-Timestamp": timestamp,
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as reply:
        status: int = reply.status
        return status


def test_hubspot_out_of_order_and_duplicate_deliveries_end_right(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path, live: LiveReceiver
) -> None:
    portal = hubspot_synced(make_hubspot_sandbox, tmp_path, live)
    sandbox = portal.sandbox
    url = f"{live.url}/webhooks/hubspot"
    # Hold deliveries back, change a deal twice, then deliver newest first, twice over.
    sandbox.webhooks.url = None
    deal = open_hubspot_deal(sandbox)
    seen = len(sandbox.webhooks.recent_events)
    sandbox.close_deal(deal["id"], won=True)
    sandbox.set_amount(deal["id"], hs.number(deal["amount"]) + 5000)  # type: ignore[operator]
    events = list(sandbox.webhooks.recent_events)[seen:]
    assert len(events) >= 2
    sandbox.webhooks.url = url
    secret = portal.env["SPM_HUBSPOT_CLIENT_SECRET"]
    for batch in (list(reversed(events)), events):
        assert _sign_and_post(url, secret, [{**e, "attemptNumber": 0} for e in batch]) == 200
    live.settle([sandbox.wait_for_webhooks])
    assert live.metric("spm_webhook_events_duplicate_total", source="hubspot") >= len(events)
    hs.assert_crm_matches(portal, hs.oracle(portal, hs.AS_OF), hs.AS_OF)


# -- Salesforce ---------------------------------------------------------------------------


def salesforce_synced(
    make: MakeSalesforceSandbox, directory: Path, live: LiveReceiver
) -> tuple[sf.Org, date]:
    sandbox = make(
        reps=8,
        deals=200,
        outbound_url=f"{live.url}/webhooks/salesforce",
        outbound_first_retry_s=0.05,
    )
    members = [u["Id"] for u in sandbox.users()]
    config = write_config(directory, sandbox.settings()["crm"], members)
    env = {**sandbox.settings()["env"], "SPM_SALESFORCE_ORG_ID": sandbox.org.organization_id}
    org = sf.Org(sandbox, config, env, directory, sf.Clock())
    as_of = sf.as_of_for(sandbox)
    live.attach(config, env, as_of)
    for args in (("install",), ("sync", "--as-of", as_of.isoformat())):
        result = org.cli(*args)
        assert result.exit_code == 0, result.output
    live.settle([sandbox.wait_for_outbound])
    return org, as_of


def salesforce_commission(sandbox: SalesforceSandbox, deal_id: str) -> Any:
    return sandbox.org.opportunity(deal_id).values.get("SPM_Commission__c")


def test_salesforce_deal_won_is_written_back_in_seconds_and_echoes_cause_nothing(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path, live: LiveReceiver
) -> None:
    org, as_of = salesforce_synced(make_salesforce_sandbox, tmp_path, live)
    sandbox = org.sandbox
    deal = next(d for d in sandbox.opportunities() if not d["IsClosed"] and d["CloseDate"] <= as_of)
    sandbox.calls.reset()
    started = time.monotonic()
    sandbox.close_deal(deal["Id"], won=True)
    wait_until(lambda: salesforce_commission(sandbox, deal["Id"]) is not None, what="write-back")
    assert time.monotonic() - started < 5
    live.settle([sandbox.wait_for_outbound])
    sf.assert_crm_matches(org, sf.oracle(org, as_of), as_of)
    # Our write-back's outbound messages name the integration user: acked, never re-read.
    writes = org.writes()
    assert writes and len(writes) <= 2
    reads = len(sandbox.calls.calls("query_page"))
    time.sleep(0.5)
    live.settle([sandbox.wait_for_outbound])
    assert org.writes() == writes
    assert len(sandbox.calls.calls("query_page")) == reads
    assert all(d.acknowledged for d in sandbox.outbound.deliveries[-5:])  # type: ignore[union-attr]


def test_salesforce_deal_won_then_reopened_a_second_later(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path, live: LiveReceiver
) -> None:
    org, as_of = salesforce_synced(make_salesforce_sandbox, tmp_path, live)
    sandbox = org.sandbox
    deal = next(d for d in sandbox.opportunities() if not d["IsClosed"] and d["CloseDate"] <= as_of)
    sandbox.close_deal(deal["Id"], won=True)
    wait_until(lambda: salesforce_commission(sandbox, deal["Id"]) is not None, what="won deal")
    time.sleep(1)
    sandbox.org.update(
        "Opportunity", deal["Id"], {"StageName": STAGE_LABELS["prospecting"]}, source="sandbox"
    )
    live.settle([sandbox.wait_for_outbound])
    reopened = sandbox.org.opportunity(deal["Id"]).values["SystemModstamp"].date()
    sf.assert_crm_matches(org, sf.oracle(org, as_of, {deal["Id"]: reopened}), as_of)


# -- a worker killed mid-event ------------------------------------------------------------


@pytest.mark.parametrize("point", ["claimed", "deal writes", "applied"])
def test_worker_killed_mid_event_is_finished_after_restart_with_one_write_per_field(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path, live: LiveReceiver, point: str
) -> None:
    portal = hubspot_synced(make_hubspot_sandbox, tmp_path, live, worker=False)
    sandbox = portal.sandbox
    deal = open_hubspot_deal(sandbox)
    sandbox.close_deal(deal["id"], won=True)
    assert sandbox.wait_for_webhooks(10)
    wait_until(lambda: live.inbox.depth().queued >= 1, what="the stored event")
    sandbox.calls.reset()
    env = {**os.environ, **portal.env}
    args = ["--config", str(portal.config), "worker", "--once", "--as-of", hs.AS_OF.isoformat()]
    killed = subprocess.run(
        [sys.executable, "-m", "tests.crash_worker", point, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert live.inbox.counts().get("claimed") == 1  # left behind under its lease
    restarted = subprocess.run(
        [sys.executable, "-m", "connector.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restarted.returncode == 0, restarted.stderr
    assert live.inbox.counts() == {"done": live.inbox.counts()["done"]}
    hs.assert_crm_matches(portal, hs.oracle(portal, hs.AS_OF), hs.AS_OF)
    # Every changed field was written exactly once, across both processes.
    written = writes_per_field(sandbox)
    assert written and set(written.values()) == {1}, written


# -- the commands ---------------------------------------------------------------------------


def _serving(process: subprocess.Popen[str]) -> str:
    """Read `serve`'s stderr until it says where it listens."""
    assert process.stderr is not None
    for line in process.stderr:
        if "receiving webhooks on " in line:
            return line.split("receiving webhooks on ", 1)[1].strip()
    raise AssertionError(f"serve exited ({process.wait()}) without listening")


def test_serve_runs_receiver_and_worker_and_stops_cleanly_on_sigterm(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    sandbox = make_hubspot_sandbox(reps=8, deals=200)
    portal = hs.portal_for(sandbox, tmp_path)
    for args in (("install",), ("sync", "--as-of", hs.AS_OF.isoformat())):
        assert portal.cli(*args).exit_code == 0
    command = ["-m", "connector.cli", "--config", str(portal.config), "serve", "--port", "0"]
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=tmp_path,
        env={**os.environ, **portal.env},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _serving(process)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{url}/healthz", timeout=10) as reply:
            assert reply.status == 200 and json.load(reply)["status"] == "ok"
        sandbox.webhooks.url = f"{url}/webhooks/hubspot"
        deal = open_hubspot_deal(sandbox)
        sandbox.close_deal(deal["id"], won=True)
        wait_until(lambda: hubspot_commission(sandbox, deal["id"]) is not None, what="write-back")

        def counted() -> bool:
            with opener.open(f"{url}/metrics", timeout=10) as reply:
                return b'spm_worker_events_processed_total{source="hubspot"} 1.0' in reply.read()

        # The fields are written a moment before the event is marked done.
        wait_until(counted, what="the processed event in /metrics")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_serve_without_crm_credentials_fails_fast_naming_them(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"type": "hubspot", "base_url": "http://127.0.0.1:9"}, ["x@y"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPM_")}
    result = subprocess.run(
        [sys.executable, "-m", "connector.cli", "--config", str(config), "serve", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SPM_HUBSPOT_ACCESS_TOKEN" in result.stderr and "Traceback" not in result.stderr


def test_create_app_without_arguments_reads_spm_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `gunicorn 'webhooks.app:create_app()'` does."""
    config = write_config(tmp_path, {"type": "hubspot", "base_url": "http://127.0.0.1:9"}, ["x@y"])
    monkeypatch.setenv("SPM_CONFIG", str(config))
    from webhooks.app import create_app

    monkeypatch.delenv("SPM_HUBSPOT_CLIENT_SECRET", raising=False)
    unready = create_app().test_client().get("/healthz")
    # Without the app's secret every delivery would be refused: not ready, and says why.
    assert unready.status_code == 503
    assert unready.json["status"] == "not_ready"
    assert unready.json["missing"] == ["SPM_HUBSPOT_CLIENT_SECRET"]
    monkeypatch.setenv("SPM_HUBSPOT_CLIENT_SECRET", "app-secret")
    app = create_app()
    client = app.test_client()
    health = client.get("/healthz").json
    assert health["status"] == "ok" and health["lock"] is None
    # While a sync or worker pass holds the lock, /healthz and /metrics say who and since when.
    from connector.sync.lease import sync_lock

    store = app.extensions["spm"].store
    with sync_lock(store, "host-x:4242", lambda: datetime.now(UTC)):
        held = client.get("/healthz").json["lock"]
        assert (held["holder"], held["generation"]) == ("host-x:4242", 1)
        scraped = client.get("/metrics").get_data(as_text=True)
        assert "spm_sync_lock_generation 1.0" in scraped
        assert "spm_sync_lock_held_seconds" in scraped


def test_an_id_the_crm_cannot_know_is_applied_as_nothing_beside_a_real_change(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    sandbox = make_salesforce_sandbox(reps=8, deals=200)
    config = write_config(tmp_path, sandbox.settings()["crm"], [u["Id"] for u in sandbox.users()])
    env = dict(sandbox.settings()["env"])
    org = sf.Org(sandbox, config, env, tmp_path, sf.Clock())
    as_of = sf.as_of_for(sandbox)
    for args in (("install",), ("sync", "--as-of", as_of.isoformat())):
        assert org.cli(*args).exit_code == 0
    deal = next(d for d in sandbox.opportunities() if not d["IsClosed"] and d["CloseDate"] <= as_of)
    sandbox.close_deal(deal["Id"], won=True)
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as store:
        inbox = Inbox(store, max_attempts=2)
        now = [datetime.now(UTC)]
        # An id Salesforce would refuse (the receiver does too; say an older version stored it).
        inbox.add(
            [
                Event("events", "good", "deal", deal["Id"], "test"),
                Event("events", "bad", "deal", "not-an-id", "test"),
            ],
            now[0],
        )
        worker = build_worker(load_config(config), store, environ=env, as_of=as_of)
        worker.inbox = inbox
        worker.clock = lambda: now[0]
        assert worker.run_once() == 2
        assert inbox.counts() == {"done": 2}
        assert salesforce_commission(sandbox, deal["Id"]) is not None
        assert worker.run_once() == 0
    sf.assert_crm_matches(org, sf.oracle(org, as_of), as_of)


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_demo_shows_a_live_deal_change_reaching_the_crm(crm: str, tmp_path: Path) -> None:
    """The README's first command, headless: it succeeds only if the fields really changed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPM_")}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "connector.cli", "demo", "--crm", crm, "--dir", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    out = result.stderr
    assert "fields changed in the CRM" in out and "Leaderboard" in out
    payout = next(line for line in out.splitlines() if line.strip().startswith("payout:"))
    before, after = (part.strip() for part in payout.split(":", 1)[1].split("->"))
    assert before != after
    assert (tmp_path / "spm.yaml").exists()
    (page,) = tmp_path.glob("statement-*.html")
    assert "<svg" in page.read_text()
    assert "Traceback" not in out


def test_demo_without_a_folder_leaves_nothing_behind(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPM_")}
    env["TMPDIR"] = str(tmp_path)  # where tempfile puts the demo's folder
    result = subprocess.run(
        [sys.executable, "-m", "connector.cli", "demo", "--crm", "hubspot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Its temporary folder is removed at the end; `--dir FOLDER` keeps" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_demo_keep_running_serves_the_reports_page_until_stopped(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPM_")}
    command = ["-m", "connector.cli", "demo", "--crm", "hubspot", "--keep-running"]
    process = subprocess.Popen(
        [sys.executable, *command, "--dir", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        urls: dict[str, str] = {}
        for line in process.stderr:
            for label in ("reports page", "a statement"):
                if line.strip().startswith(label):
                    urls[label] = line.split()[-1]
            if len(urls) == 2:
                break
        # As a browser does: the token comes back as a cookie on the redirect.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor()
        )
        for url in urls.values():
            with opener.open(url, timeout=10) as reply:
                assert reply.status == 200 and b"<html" in reply.read()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_two_worker_processes_share_the_inbox_and_write_each_field_once(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path, live: LiveReceiver
) -> None:
    portal = hubspot_synced(make_hubspot_sandbox, tmp_path, live, worker=False)
    sandbox = portal.sandbox
    opened = [
        d
        for d in sandbox.deals()
        if d["dealstage"] == "appointmentscheduled" and d["closedate"] < "2026-12"
    ][:8]
    for deal in opened:
        sandbox.close_deal(deal["id"], won=True)
    assert sandbox.wait_for_webhooks(10)
    wait_until(lambda: live.inbox.depth().queued >= len(opened), what="the stored events")
    sandbox.calls.reset()
    env = {**os.environ, **portal.env}
    args = ["--config", str(portal.config), "worker", "--once", "--as-of", hs.AS_OF.isoformat()]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "connector.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in workers:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors
    # One may have found the other holding the lock and put its batch back: finish it.
    leftover = subprocess.run(
        [sys.executable, "-m", "connector.cli", *args], cwd=ROOT, env=env, capture_output=True
    )
    assert leftover.returncode == 0
    assert set(live.inbox.counts()) == {"done"}
    hs.assert_crm_matches(portal, hs.oracle(portal, hs.AS_OF), hs.AS_OF)
    written = writes_per_field(sandbox)
    assert written and set(written.values()) == {1}, written


def test_serve_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    import socket

    config = write_config(tmp_path, {"type": "hubspot", "base_url": "http://127.0.0.1:9"}, ["x@y"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = ["-m", "connector.cli", "--config", str(config), "serve", "--no-worker"]
        result = subprocess.run(
            [sys.executable, *command, "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        f"error: serve: cannot listen on 127.0.0.1:{port} (the address is in use); choose "
        "another --port or --host"
    )
    # One line of ours, not werkzeug's paragraph first (the rest: the missing-secret warning).
    assert not any("Address already in use" in line or "Port " in line for line in lines)


def test_serve_without_the_app_secret_warns_and_is_not_ready(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    portal = hs.portal_for(make_hubspot_sandbox(reps=4, deals=20), tmp_path)
    env = {
        k: v for k, v in {**os.environ, **portal.env}.items() if k != "SPM_HUBSPOT_CLIENT_SECRET"
    }
    command = ["-m", "connector.cli", "--config", str(portal.config), "serve", "--port", "0"]
    process = subprocess.Popen(
        [sys.executable, *command, "--no-worker"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        before: list[str] = []
        for line in process.stderr:
            if "receiving webhooks on " in line:
                url = line.split("receiving webhooks on ", 1)[1].strip()
                break
            before.append(line)
        else:
            raise AssertionError(f"serve exited ({process.wait()}) without listening")
        assert any("SPM_HUBSPOT_CLIENT_SECRET is not set" in line for line in before), before
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with pytest.raises(urllib.error.HTTPError) as unready:
            opener.open(f"{url}/healthz", timeout=10)
        assert unready.value.code == 503
        assert json.load(unready.value)["status"] == "not_ready"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
