"""A deployment of many accounts: one receiver routing each CRM's deliveries to its
account, worker processes sharing every account, and stores that cannot see each other.

The end-to-end test runs a HubSpot portal and a Salesforce org through the real
client libraries, one receiver on a real socket and three `worker --accounts`
processes, one of them killed with SIGKILL mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connector.accounts import Deployment, load_deployment
from connector.errors import ConfigError
from connector.store.inbox import Event, Inbox
from connector.store.state import Store
from crm_sandbox.hubspot import HubSpotSandbox
from tests import test_hubspot_sync as hs
from tests import test_salesforce_sync as sf
from tests.crm_sync_helpers import run, write_config
from tests.fixtures.hubspot_sandbox import MakeHubSpotSandbox
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox
from tests.realtime_helpers import LiveServer, wait_until
from tests.test_realtime import writes_per_field
from tests.test_store import _postgres_url
from webhooks.deployment import Router, create_deployment_app, router_of

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("fast_retries")
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def account(root: Path, name: str, crm: Mapping[str, Any], members: list[str],
            env: Mapping[str, str], **options: Any) -> Path:  # fmt: skip
    """``root/name/spm.yaml`` and its ``.env``, as an admin lays out an account."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder, crm, members, **options)
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return config


def hubspot_crm(sandbox: HubSpotSandbox) -> dict[str, Any]:
    return {**sandbox.settings()["crm"], "portal_id": sandbox.portal.portal_id}


# -- the accounts folder ------------------------------------------------------------------


def test_each_account_is_its_folder_with_its_own_secrets_and_pages_under_its_prefix(
    tmp_path: Path,
) -> None:
    crm = {"type": "hubspot", "base_url": "http://127.0.0.1:9", "portal_id": 11}
    account(tmp_path, "acme", crm, ["a@x"], {"SPM_HUBSPOT_ACCESS_TOKEN": "acme-token"})
    crm2 = {"type": "hubspot", "base_url": "http://127.0.0.1:9", "portal_id": 22}
    account(tmp_path, "globex", crm2, ["b@x"], {"SPM_HUBSPOT_ACCESS_TOKEN": "globex-token"})
    (tmp_path / "deployment.yaml").write_text("webhooks:\n  public_url: https://spm.example.com\n")
    deployment = load_deployment(tmp_path, {"PATH": "/bin"})
    acme, globex = deployment.accounts
    assert (acme.name, globex.name) == ("acme", "globex")
    assert acme.secrets.hubspot_access_token is not None
    assert acme.secrets.hubspot_access_token.get_secret_value() == "acme-token"
    assert globex.secrets.hubspot_access_token is not None
    assert globex.secrets.hubspot_access_token.get_secret_value() == "globex-token"
    assert acme.config.webhooks.public_url == "https://spm.example.com/accounts/acme"
    assert (acme.portal_id, globex.portal_id) == ("11", "22")


@pytest.mark.parametrize(
    ("arrange", "message"),
    [
        (lambda root, env: env.update({"SPM_HUBSPOT_ACCESS_TOKEN": "x"}), "would be every account"),
        (lambda root, env: env.update({"SPM_STORE_URL": "sqlite:////x.db"}), "SPM_STORE_URL"),
        (lambda root, env: _second(root, store="sqlite:///relative.db"), "relative to wherever"),
        (
            lambda root, env: _second(root, store=f"sqlite:///{root / 'acme' / 'spm.db'}"),
            "is the store of account 'acme' too",
        ),
        (lambda root, env: _second(root, portal_id=11), "both for CRM account 11"),
        (lambda root, env: _second(root, name="Not_OK"), "folder name"),
    ],
)
def test_a_deployment_that_would_mix_accounts_is_refused_naming_why(
    tmp_path: Path, arrange: Callable[[Path, dict[str, str]], None], message: str
) -> None:
    crm = {"type": "hubspot", "base_url": "http://127.0.0.1:9", "portal_id": 11}
    account(tmp_path, "acme", crm, ["a@x"], {"SPM_HUBSPOT_ACCESS_TOKEN": "t"})
    env: dict[str, str] = {}
    arrange(tmp_path, env)
    with pytest.raises(ConfigError, match=message):
        load_deployment(tmp_path, env)


def _second(
    root: Path, *, name: str = "globex", portal_id: int = 22, store: str | None = None
) -> None:
    crm = {"type": "hubspot", "base_url": "http://127.0.0.1:9", "portal_id": portal_id}
    account(root, name, crm, ["b@x"], {"SPM_HUBSPOT_ACCESS_TOKEN": "t"}, store=store)


# -- isolation on PostgreSQL ----------------------------------------------------------------


@pytest.fixture
def pg_database() -> Iterator[str]:
    yield from _postgres_url()


def test_accounts_in_one_postgres_database_cannot_read_each_others_rows(
    pg_database: str,
) -> None:
    with (
        Store.open(f"{pg_database}?schema=acme") as acme,
        Store.open(f"{pg_database}?schema=globex") as globex,
    ):
        Inbox(acme).add([Event("hubspot", "e1", "deal", "101", "deal.creation")], NOW)
        acme.cursors.set("crm_account", "11")
        assert Inbox(acme).depth().queued == 1
        assert Inbox(globex).depth().queued == 0
        assert globex.cursors.get("crm_account") is None
        # Even a hand-written query from one account's connection sees its own tables only.
        with globex.reading() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM inbox")).scalar_one() == 0
            with pytest.raises(Exception, match=r"does not exist"):
                connection.execute(sa.text("SELECT count(*) FROM acme.inbox_missing"))
        assert "schema acme" in acme.url_for_display
    with pytest.raises(ConfigError, match="lowercase"):
        Store.open(f"{pg_database}?schema=Robert'); DROP TABLE x;--")
    with pytest.raises(ConfigError, match="PostgreSQL"):
        Store.open("sqlite:////tmp/x.db?schema=acme")


# -- one receiver, many accounts ---------------------------------------------------------------


class LiveDeployment(LiveServer):
    """The deployment's receiver on a real socket: listening at once, serving once attached."""

    def __init__(self) -> None:
        super().__init__()
        self.stores: dict[str, Store] = {}
        self.router: Router | None = None

    def attach(self, root: Path) -> Deployment:
        deployment = load_deployment(root, {})
        self.stores = {a.name: Store.open(a.store_url) for a in deployment.accounts}
        self._app = create_deployment_app(deployment, environ={}, stores=self.stores)
        self.router = router_of(self._app)
        return deployment

    def queued(self) -> int:
        return sum(Inbox(s).depth().queued for s in self.stores.values())

    def close(self) -> None:
        self.stop_serving()
        for store in self.stores.values():
            store.close()


@pytest.fixture
def live() -> Iterator[LiveDeployment]:
    deployment = LiveDeployment()
    yield deployment
    deployment.close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _post(url: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _workers(root: Path, as_of: date, logs: list[Path]) -> list[subprocess.Popen[str]]:
    """``worker --accounts`` processes, each logging to its file (a pipe could fill up)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPM_")}
    args = ["worker", "--accounts", str(root), "--as-of", as_of.isoformat()]
    processes = []
    for log in logs:
        with log.open("w") as handle:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "connector.cli", *args],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=handle,
                    text=True,
                )
            )
    return processes


def _matches(check: Callable[[], None]) -> bool:
    try:
        check()
    except AssertionError:
        return False
    return True


def test_two_accounts_three_workers_both_crms_equal_calc_with_one_killed_mid_run(
    make_hubspot_sandbox: MakeHubSpotSandbox,
    make_salesforce_sandbox: MakeSalesforceSandbox,
    tmp_path: Path,
    live: LiveDeployment,
) -> None:
    root = tmp_path / "accounts"
    hub = make_hubspot_sandbox(
        reps=8, deals=150, portal_id=40_000_001, webhook_url=f"{live.url}/webhooks/hubspot"
    )
    org = make_salesforce_sandbox(
        reps=8, deals=150, outbound_url=f"{live.url}/webhooks/salesforce",
        outbound_first_retry_s=0.05,
    )  # fmt: skip
    owners = hub.owners()
    hub_config = account(
        root, "acme", hubspot_crm(hub), [o["id"] for o in owners], hub.settings()["env"]
    )
    org_env = {**org.settings()["env"], "SPM_SALESFORCE_ORG_ID": org.org.organization_id}
    org_config = account(
        root, "globex", org.settings()["crm"], [u["Id"] for u in org.users()], org_env
    )
    as_of = sf.as_of_for(org)
    live.attach(root)
    portal = hs.Portal(hub, hub_config, dict(hub.settings()["env"]), root / "acme")
    salesforce = sf.Org(org, org_config, org_env, root / "globex", sf.Clock())
    for config, env in ((hub_config, portal.env), (org_config, org_env)):
        for args in (("install",), ("sync", "--as-of", as_of.isoformat())):
            result = run(config, env, *args)
            assert result.exit_code == 0, result.output

    # A delivery for a portal or org this deployment does not serve is refused and counted.
    stray = json.dumps([{"eventId": 1, "subscriptionType": "deal.creation", "portalId": 999,
                         "occurredAt": 1_780_000_000_000, "objectId": 5}]).encode()  # fmt: skip
    assert _post(f"{live.url}/webhooks/hubspot", stray, "application/json") == 404
    status, text = _get(f"{live.url}/metrics")
    assert 'spm_webhook_deliveries_unrouted_total{source="hubspot"} 1.0' in text
    status, text = _get(f"{live.url}/healthz")
    assert status == 200 and set(json.loads(text)["accounts"]) == {"acme", "globex"}

    logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
    workers = _workers(root, as_of, logs)
    try:
        wait_until(lambda: live.queued() == 0, timeout=60, what="the sync's echoes applied")
        hub.calls.reset()
        # Two waves of changes on different reps: a field changes once, so it is written once.
        open_deals = [d for d in hub.deals() if d["dealstage"] == "appointmentscheduled"]
        first = open_deals[:3]
        owners = {d["hubspot_owner_id"] for d in first}
        won = first + [d for d in open_deals if d["hubspot_owner_id"] not in owners][:3]
        opps = [d for d in org.opportunities() if not d["IsClosed"] and d["CloseDate"] <= as_of]
        for deal in won[:3]:
            hub.close_deal(deal["id"], won=True)
        for opp in opps[:3]:
            org.close_deal(opp["Id"], won=True)
        time.sleep(0.3)
        workers[0].send_signal(signal.SIGKILL)  # whatever it held, the others take over
        for deal in won[3:]:
            hub.close_deal(deal["id"], won=True)
        for opp in opps[3:6]:
            org.close_deal(opp["Id"], won=True)

        def settled() -> bool:
            return (
                hub.wait_for_webhooks(1.0)
                and org.wait_for_outbound(1.0)
                and live.queued() == 0
                and _matches(lambda: hs.assert_crm_matches(portal, hs.oracle(portal, as_of), as_of))
                and _matches(
                    lambda: sf.assert_crm_matches(salesforce, sf.oracle(salesforce, as_of), as_of)
                )
            )

        wait_until(settled, timeout=90, what="both CRMs equal to calc")
    finally:
        for process in workers[1:]:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(timeout=30)
    assert [p.returncode for p in workers[1:]] == [0, 0], [log.read_text() for log in logs]
    written = writes_per_field(hub)
    assert written and set(written.values()) == {1}, written
    for store in live.stores.values():
        assert "parked" not in Inbox(store).counts()
    # Each account's lines in the workers' logs name it.
    logged = "".join(log.read_text() for log in logs)
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert {line.get("account") for line in lines if line["event"] == "applied"} == {
        "acme",
        "globex",
    }


def _drop_connections(database_url: str) -> int:
    """What a PostgreSQL restart does to its clients: every connection to the database
    is cut (the server itself stays up for the next ones)."""
    name = database_url.rsplit("/", 1)[1]
    admin = sa.create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as connection:
            cut = connection.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            ).scalar_one()
    finally:
        admin.dispose()
    return int(cut)


def test_workers_resume_and_the_inboxes_drain_after_postgres_cuts_every_connection(
    make_hubspot_sandbox: MakeHubSpotSandbox,
    tmp_path: Path,
    live: LiveDeployment,
    pg_database: str,
) -> None:
    root = tmp_path / "accounts"
    portals = []
    for n in range(2):
        hub = make_hubspot_sandbox(
            reps=6, deals=120, portal_id=40_000_011 + n, webhook_url=f"{live.url}/webhooks/hubspot"
        )
        members = [o["id"] for o in hub.owners()]
        env = hub.settings()["env"]
        store = f"{pg_database}?schema=portal{n}"
        config = account(root, f"portal{n}", hubspot_crm(hub), members, env, store=store)
        portals.append(hs.Portal(hub, config, dict(env), root / f"portal{n}"))
    live.attach(root)
    for portal in portals:
        for args in (("install",), ("sync", "--as-of", hs.AS_OF.isoformat())):
            result = portal.cli(*args)
            assert result.exit_code == 0, result.output
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = _workers(root, hs.AS_OF, logs)
    try:
        wait_until(lambda: live.queued() == 0, timeout=60, what="the sync's echoes applied")
        wait_until(
            lambda: all("worker_started" in log.read_text() for log in logs),
            timeout=60,
            what="both workers started",
        )
        opened = [
            [d for d in p.sandbox.deals() if d["dealstage"] == "appointmentscheduled"][:6]
            for p in portals
        ]
        for portal, deals in zip(portals, opened, strict=True):
            for deal in deals[:3]:
                portal.sandbox.close_deal(deal["id"], won=True)
        time.sleep(0.2)
        assert _drop_connections(pg_database) > 0  # mid-run
        for _ in range(2):  # and again while it recovers
            time.sleep(0.4)
            _drop_connections(pg_database)
        for portal, deals in zip(portals, opened, strict=True):
            for deal in deals[3:]:
                portal.sandbox.close_deal(deal["id"], won=True)

        def settled() -> bool:
            return (
                all(
                    p.sandbox.wait_for_webhooks(1.0)
                    and _matches(
                        lambda p=p: hs.assert_crm_matches(p, hs.oracle(p, hs.AS_OF), hs.AS_OF)
                    )
                    for p in portals
                )
                and live.queued() == 0
            )

        wait_until(settled, timeout=120, what="both portals equal to calc after the cut")
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(timeout=30)
    assert [p.returncode for p in workers] == [0, 0], [log.read_text()[-2000:] for log in logs]
    for store in live.stores.values():
        assert "parked" not in Inbox(store).counts()
    assert "inbox_listener_lost" in "".join(log.read_text() for log in logs)


# -- the router, in process --------------------------------------------------------------------


@pytest.fixture
def routed(tmp_path: Path) -> Iterator[tuple[Any, Deployment, dict[str, Store]]]:
    """Two HubSpot portals (one app, one secret) and a Salesforce org behind one receiver."""
    from tests.test_webhooks import HUBSPOT_SECRET, ORG_ID

    for name, portal in (("acme", 11), ("globex", 22)):
        crm = {"type": "hubspot", "base_url": "http://127.0.0.1:9", "portal_id": portal}
        env = {"SPM_HUBSPOT_CLIENT_SECRET": HUBSPOT_SECRET, "SPM_ADMIN_TOKEN": f"{name}-admin"}
        account(tmp_path, name, crm, ["a@x"], env)
    crm = {"type": "salesforce", "instance_url": "https://127.0.0.1:9"}
    account(tmp_path, "initech", crm, ["b@x"], {"SPM_SALESFORCE_ORG_ID": ORG_ID})
    deployment = load_deployment(tmp_path, {})
    stores = {a.name: Store.open(a.store_url) for a in deployment.accounts}
    app = create_deployment_app(deployment, environ={}, stores=stores)
    try:
        yield app.test_client(), deployment, stores
    finally:
        for store in stores.values():
            store.close()


def test_the_router_stores_each_portals_events_in_its_own_account_and_refuses_strangers(
    routed: tuple[Any, Deployment, dict[str, Store]],
) -> None:
    from tests.test_webhooks import envelope, hubspot_event, post_hubspot

    client, _deployment, stores = routed
    # One app's batch names two portals: each account stores its own, acknowledged once.
    batch = [
        hubspot_event(1, 501, portalId=11),
        hubspot_event(2, 502, portalId=22),
        hubspot_event(3, 503, portalId=22),
    ]
    answer = post_hubspot(client, batch)
    assert answer.status_code == 200, answer.data
    assert Inbox(stores["acme"]).depth().queued == 1
    assert Inbox(stores["globex"]).depth().queued == 2
    # Signed by another app's secret: the account's own receiver refuses it.
    assert post_hubspot(client, [hubspot_event(4, 504, portalId=11)], secret="x").status_code == 401
    # No account here is for portal 33: refused for good (404), counted.
    assert post_hubspot(client, [hubspot_event(5, 505, portalId=33)]).status_code == 404
    assert (
        client.post("/webhooks/hubspot", data=b"{", content_type="application/json").status_code
        == 400
    )
    # Salesforce: routed by OrganizationId; another org is a SOAP fault.
    assert (
        client.post("/webhooks/salesforce", data=envelope(), content_type="text/xml").status_code
        == 200
    )
    assert Inbox(stores["initech"]).depth().queued == 1
    stranger = envelope(org_id="00D000000000009AAA")
    refused = client.post("/webhooks/salesforce", data=stranger, content_type="text/xml")
    assert refused.status_code == 403 and b"soapenv:Fault" in refused.data
    assert Inbox(stores["acme"]).depth().queued == 1  # nothing crossed over
    # Each account's metrics, labelled; the strangers counted once each.
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'spm_inbox_depth{account="globex"} 2.0' in metrics
    assert 'spm_webhook_deliveries_unrouted_total{source="hubspot"} 1.0' in metrics
    assert 'spm_webhook_deliveries_unrouted_total{source="salesforce"} 1.0' in metrics


def test_each_accounts_pages_live_under_its_prefix_with_a_session_of_its_own(
    routed: tuple[Any, Deployment, dict[str, Store]],
) -> None:
    client, _deployment, _stores = routed
    answer = client.get("/healthz")
    assert set(answer.get_json()["accounts"]) == {"acme", "globex", "initech"}
    assert answer.headers["X-Frame-Options"] == "DENY"  # the router's own answers too
    assert client.get("/accounts/acme/healthz").status_code == 200
    signed_in = client.get("/accounts/acme/reports?token=acme-admin")
    assert signed_in.status_code in (302, 303)
    assert signed_in.headers["Location"].endswith("/accounts/acme/reports")
    cookie = signed_in.headers["Set-Cookie"]
    assert "Path=/accounts/acme/reports" in cookie
    # acme's token is acme's only.
    assert client.get("/accounts/globex/reports?token=acme-admin").status_code in (401, 403)


def test_serve_and_worker_take_a_folder_of_accounts_and_refuse_shared_secrets(
    tmp_path: Path,
) -> None:
    for name, portal in (("acme", 11), ("globex", 22)):
        crm = {"type": "hubspot", "base_url": "http://127.0.0.1:9", "portal_id": portal}
        account(tmp_path, name, crm, ["a@x"], {"SPM_HUBSPOT_CLIENT_SECRET": "s"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPM_")}
    command = [sys.executable, "-m", "connector.cli"]
    refused = subprocess.run(
        [*command, "worker", "--accounts", str(tmp_path), "--once"],
        cwd=ROOT, env={**env, "SPM_HUBSPOT_ACCESS_TOKEN": "one-for-all"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "SPM_HUBSPOT_ACCESS_TOKEN" in refused.stderr and "one-for-all" not in refused.stderr
    serve = subprocess.Popen(
        [*command, "serve", "--accounts", str(tmp_path), "--port", "0", "--no-worker"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve.stderr is not None
        lines = []
        for line in serve.stderr:
            lines.append(line)
            if "receiving webhooks on " in line:
                break
        base = lines[-1].split("receiving webhooks on ", 1)[1].strip()
        status, text = _get(f"{base}/healthz")
        assert status == 200 and set(json.loads(text)["accounts"]) == {"acme", "globex"}
        assert _get(f"{base}/accounts/globex/healthz")[0] == 200
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
