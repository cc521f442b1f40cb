"""What must hold when things go wrong, on both CRMs over the sandbox with the real clients.

- a sync killed at any stage boundary leaves work the next sync finishes;
- a dry run announces exactly what the real run writes;
- a store is refused against another CRM account, and can be rebuilt;
- the worker door reads and writes only what one deal touches;
- an unreachable CRM fails fast, with its URL and a fitting hint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.config import load_config, load_secrets
from connector.connect import adapter_for, sync_settings
from connector.store.schema import lock_table
from connector.store.state import Store
from connector.sync.engine import SyncEngine
from connector.sync.run import ChangeSet, SyncOptions
from tests import test_hubspot_sync as hs
from tests import test_salesforce_sync as sf
from tests.crm_sync_helpers import write_config
from tests.fixtures.hubspot_sandbox import MakeHubSpotSandbox
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox
from tests.test_store import _postgres_url

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("pulled", "computed", "deal writes", "written")


pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'spm.db'}"
        return
    urls = _postgres_url()
    yield next(urls)  # skips when PostgreSQL is not running
    urls.close()


def salesforce_org(
    make: MakeSalesforceSandbox, directory: Path, store: str | None = None, **options: Any
) -> sf.Org:
    clock = sf.Clock()
    sandbox = make(reps=8, deals=200, clock=clock, **options)
    members = [u["Id"] for u in sandbox.users()]
    config = write_config(directory, sandbox.settings()["crm"], members, store=store)
    return sf.Org(sandbox, config, dict(sandbox.settings()["env"]), directory, clock)


def hubspot_portal(
    make: MakeHubSpotSandbox, directory: Path, store: str | None = None, **options: Any
) -> hs.Portal:
    portal = hs.portal_for(make(reps=8, deals=200, **options), directory)
    if store is not None:
        text = yaml.safe_load(portal.config.read_text())
        text["store"] = store
        portal.config.write_text(yaml.safe_dump(text, sort_keys=False))
    return portal


def three_changes_salesforce(org: sf.Org) -> tuple[date, dict[str, date]]:
    """A deal won, an amount changed, a split deal reversed; (as-of, reversals)."""
    opportunities = org.sandbox.opportunities()
    as_of = sf.as_of_for(org.sandbox)
    open_deal = next(d for d in opportunities if not d["IsClosed"] and d["CloseDate"] <= as_of)
    won = [d for d in opportunities if d["IsWon"]]
    split_ids = {s["OpportunityId"] for s in org.sandbox.splits()}
    reversed_deal = next(d for d in won if d["Id"] in split_ids)
    bigger = next(d for d in won if d["Id"] != reversed_deal["Id"])
    org.sandbox.close_deal(open_deal["Id"], won=True)
    org.sandbox.set_amount(bigger["Id"], bigger["Amount"] + Decimal("10000"))
    org.sandbox.reverse_deal(reversed_deal["Id"])
    stamp = org.sandbox.org.opportunity(reversed_deal["Id"]).values["SystemModstamp"]
    return sf.as_of_for(org.sandbox), {reversed_deal["Id"]: stamp.date()}


def three_changes_hubspot(portal: hs.Portal) -> tuple[date, dict[str, date]]:
    deals = portal.sandbox.deals()
    open_deal = next(
        d for d in deals if d["dealstage"] == "appointmentscheduled" and d["closedate"] < "2026-12"
    )
    won = [d for d in deals if d["dealstage"] == "closedwon"]
    split_ids = {k for k, v in portal.sandbox.portal.splits.items() if v}
    reversed_deal = next(d for d in won if d["id"] in split_ids)
    bigger = next(d for d in won if d["id"] != reversed_deal["id"])
    portal.sandbox.close_deal(open_deal["id"], won=True)
    portal.sandbox.set_amount(bigger["id"], Decimal(bigger["amount"]) + 10_000)
    portal.sandbox.reverse_deal(reversed_deal["id"])
    stamp = portal.sandbox.portal.deal(reversed_deal["id"]).updated_ms
    reversed_on = datetime.fromtimestamp(stamp / 1000, tz=UTC).date()
    return max(hs.AS_OF, reversed_on), {reversed_deal["id"]: reversed_on}


def killed(config: Path, env: dict[str, str], stage: str, *args: str) -> int:
    """Run a sync in another process that dies (no cleanup at all) when it reaches ``stage``."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.crash_sync", stage, "--config", str(config), *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 137, result.stderr
    lease_runs_out(load_config(config).store)
    return result.returncode


def lease_runs_out(url: str) -> None:
    """Time passes: the dead holder's lease runs out. On SQLite its death is seen at once;
    on PostgreSQL only the lease says so (docs/cli.md), and a test need not wait it out."""
    with Store.open(url) as store:
        if store.dialect != "postgresql":
            return
        with store.committing() as connection:
            expired = datetime.now(UTC) - timedelta(seconds=1)
            connection.execute(lock_table.update().values(expires_at=expired.isoformat()))


# -- crash consistency -----------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_salesforce_sync_killed_at_a_stage_is_finished_by_the_next(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path, store_url: str, stage: str
) -> None:
    org = salesforce_org(make_salesforce_sandbox, tmp_path, store_url)
    sf.installed(org)
    as_of = sf.as_of_for(org.sandbox)
    assert org.cli("sync", "--as-of", as_of.isoformat()).exit_code == 0
    as_of, reversed_on = three_changes_salesforce(org)
    killed(org.config, org.env, stage, "sync", "--as-of", as_of.isoformat())
    org.sandbox.calls.reset()
    after = org.cli("sync", "--as-of", as_of.isoformat())
    assert after.exit_code == 0, after.output
    assert "interrupted run" in after.output
    sf.assert_crm_matches(org, sf.oracle(org, as_of, reversed_on), as_of)
    if stage == "written":
        assert org.writes() == []  # everything had been written: nothing is written twice
    with Store.open(store_url) as store:
        statuses = [run.status for run in store.runs.recent()]
    assert statuses[:2] == ["ok", "interrupted"]


@pytest.mark.parametrize("stage", STAGES)
def test_hubspot_sync_killed_at_a_stage_is_finished_by_the_next(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path, store_url: str, stage: str
) -> None:
    portal = hubspot_portal(make_hubspot_sandbox, tmp_path, store_url)
    hs.installed(portal)
    assert portal.cli("sync", "--as-of", hs.AS_OF.isoformat()).exit_code == 0
    as_of, reversed_on = three_changes_hubspot(portal)
    killed(portal.config, portal.env, stage, "sync", "--as-of", as_of.isoformat())
    portal.sandbox.calls.reset()
    after = portal.cli("sync", "--as-of", as_of.isoformat())
    assert after.exit_code == 0, after.output
    hs.assert_crm_matches(portal, hs.oracle(portal, as_of, reversed_on), as_of)
    if stage == "written":
        assert portal.writes() == []


def test_a_killed_sync_does_not_block_the_next(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    org = salesforce_org(make_salesforce_sandbox, tmp_path)
    sf.installed(org)
    killed(org.config, org.env, "pulled", "sync")
    started = time.monotonic()
    result = org.cli("sync")
    assert result.exit_code == 0, result.output  # the dead holder is gone: no 6-hour wait
    assert time.monotonic() - started < 30


# -- dry runs ----------------------------------------------------------------------------------


def planned_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " -> " in line]


def test_a_dry_run_shows_each_value_as_the_crm_field_will_hold_it(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    # Salesforce percent fields hold 8.0 for a rate of 0.08: the plan shows 8.000000, the
    # number the real write sends, not the canonical 0.080000.
    org = salesforce_org(make_salesforce_sandbox, tmp_path)
    sf.installed(org)
    as_of = sf.as_of_for(org.sandbox).isoformat()
    dry = org.cli("sync", "--dry-run", "--as-of", as_of)
    assert dry.exit_code == 0, dry.output
    planned = {}
    for line in planned_lines(dry.stdout):
        what, field_and_change = line.split("  ", 1)
        field, change = field_and_change.split(": ", 1)
        planned[what.split()[1], field] = change.split(" -> ")[1]
    rates = {k: v for k, v in planned.items() if k[1] == "SPM_Commission_Rate__c"}
    assert rates
    assert org.cli("sync", "--as-of", as_of).exit_code == 0
    held = {d["Id"]: d for d in org.sandbox.opportunities()}
    for (deal_id, _), shown in rates.items():
        assert Decimal(shown) == Decimal(str(held[deal_id]["SPM_Commission_Rate__c"]))
    assert any(Decimal(shown) > 1 for shown in rates.values())  # percents, not fractions
    wins = {k: v for k, v in planned.items() if k[1] == "SPM_Win_Rate__c"}
    assert wins and all(Decimal(v) <= 100 for v in wins.values())


def test_salesforce_dry_run_announces_exactly_what_the_sync_writes(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    org = salesforce_org(make_salesforce_sandbox, tmp_path)
    sf.installed(org)
    as_of = sf.as_of_for(org.sandbox).isoformat()
    assert org.cli("sync", "--as-of", as_of).exit_code == 0
    won = next(d for d in org.sandbox.opportunities() if d["SPM_Commission__c"])
    # An out-of-band edit of one of our fields, as an admin might make by hand.
    org.sandbox.org.update("Opportunity", won["Id"], {"SPM_Commission__c": "1.00"}, source="ui")
    dry = org.cli("sync", "--dry-run", "--as-of", as_of)
    assert dry.exit_code == 0, dry.output
    assert len(planned_lines(dry.stdout)) == 1 and "SPM_Commission__c: 1.00 ->" in dry.stdout
    assert "would write: 1 fields" in dry.output
    org.sandbox.calls.reset()
    real = org.cli("sync", "--as-of", as_of)
    assert "written: 1 fields on 1 records" in real.output, real.output


def test_dry_run_after_a_crm_reset_equals_the_full_sync(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    org = salesforce_org(make_salesforce_sandbox, tmp_path)
    sf.installed(org)
    as_of = sf.as_of_for(org.sandbox).isoformat()
    assert org.cli("sync", "--as-of", as_of).exit_code == 0
    # The same org seeded afresh (a sandbox refresh): our fields are empty again.
    (tmp_path / "fresh").mkdir()
    fresh = salesforce_org(
        make_salesforce_sandbox, tmp_path / "fresh", f"sqlite:///{tmp_path / 'spm.db'}"
    )
    sf.installed(fresh)
    dry = fresh.cli("sync", "--full", "--dry-run", "--as-of", as_of)
    assert dry.exit_code == 0, dry.output
    real = fresh.cli("sync", "--full", "--as-of", as_of)
    assert real.exit_code == 0, real.output
    planned = len(planned_lines(dry.stdout))
    assert planned > 100
    assert f"written: {planned:,} fields" in real.output


def test_hubspot_dry_run_announces_exactly_what_the_sync_writes(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    portal = hubspot_portal(make_hubspot_sandbox, tmp_path)
    hs.installed(portal)
    assert portal.cli("sync", "--as-of", hs.AS_OF.isoformat()).exit_code == 0
    won = next(d for d in portal.sandbox.deals() if d.get("spm_commission"))
    record = portal.sandbox.portal.deal(won["id"])
    portal.sandbox.portal.update("deals", record, {"spm_commission": "1.00"}, source="CRM_UI")
    dry = portal.cli("sync", "--dry-run", "--as-of", hs.AS_OF.isoformat())
    assert dry.exit_code == 0, dry.output
    assert len(planned_lines(dry.stdout)) == 1 and "spm_commission: 1.00 ->" in dry.stdout
    real = portal.cli("sync", "--as-of", hs.AS_OF.isoformat())
    assert "written: 1 fields on 1 records" in real.output, real.output


# -- one store, one account --------------------------------------------------------------------


def test_a_store_is_refused_against_another_org_and_can_be_rebuilt(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    org = salesforce_org(make_salesforce_sandbox, tmp_path)
    sf.installed(org)
    as_of = sf.as_of_for(org.sandbox)
    assert org.cli("sync", "--as-of", as_of.isoformat()).exit_code == 0
    (tmp_path / "other").mkdir()
    other = salesforce_org(
        make_salesforce_sandbox, tmp_path / "other", f"sqlite:///{tmp_path / 'spm.db'}", seed=99
    )
    sf.installed(other)
    refused = other.cli("sync")
    assert refused.exit_code == 2, refused.output
    assert org.sandbox.org.organization_id in refused.output
    assert other.sandbox.org.organization_id in refused.output and "--rebuild" in refused.output
    assert other.writes() == []
    as_of = sf.as_of_for(other.sandbox)
    rebuilt = other.cli("sync", "--rebuild", "--as-of", as_of.isoformat())
    assert rebuilt.exit_code == 0, rebuilt.output
    sf.assert_crm_matches(other, sf.oracle(other, as_of), as_of)


def test_a_store_is_refused_against_another_portal(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    portal = hubspot_portal(make_hubspot_sandbox, tmp_path)
    hs.installed(portal)
    assert portal.cli("sync", "--as-of", hs.AS_OF.isoformat()).exit_code == 0
    (tmp_path / "other").mkdir()
    other = hubspot_portal(
        make_hubspot_sandbox, tmp_path / "other", f"sqlite:///{tmp_path / 'spm.db'}", portal_id=555
    )
    hs.installed(other)
    refused = other.cli("sync")
    assert refused.exit_code == 2 and "555" in refused.output, refused.output
    assert other.writes() == []


# -- the worker door ---------------------------------------------------------------------------


def engine_for(config: Path, env: dict[str, str], store: Store) -> SyncEngine:
    settings = load_config(config)
    adapter = adapter_for(settings, load_secrets(env, config.parent), cache=store.cache)
    return SyncEngine(sync_settings(settings), adapter, store, clock=lambda: datetime.now(UTC))


def test_salesforce_worker_door_touches_only_one_deal(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    org = salesforce_org(make_salesforce_sandbox, tmp_path)
    sf.installed(org)
    as_of = sf.as_of_for(org.sandbox)
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as store:
        engine = engine_for(org.config, org.env, store)
        assert engine.run(SyncOptions(as_of=as_of)).exit_code == 0
        split_ids = {s["OpportunityId"] for s in org.sandbox.splits()}
        deal = next(
            d
            for d in org.sandbox.opportunities()
            if not d["IsClosed"] and d["Id"] not in split_ids and d["CloseDate"] <= as_of
        )
        org.sandbox.close_deal(deal["Id"], won=True)
        # The same as-of day as the sync: a new day moves every rep's pace, a real change.
        assert sf.as_of_for(org.sandbox) >= as_of
        org.sandbox.calls.reset()
        summary = engine.process(ChangeSet.of(deals=[deal["Id"]]), SyncOptions(as_of=as_of))
        assert summary.exit_code == 0
        calls = org.sandbox.calls.calls()
        assert len(calls) <= 4, [c.kind for c in calls]
        assert summary.records_written == 2  # the deal and its owner
    sf.assert_crm_matches(org, sf.oracle(org, as_of), as_of)


def test_hubspot_worker_door_touches_only_one_deal(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    portal = hubspot_portal(make_hubspot_sandbox, tmp_path)
    hs.installed(portal)
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as store:
        engine = engine_for(portal.config, portal.env, store)
        assert engine.run(SyncOptions(as_of=hs.AS_OF)).exit_code == 0
        split_ids = {k for k, v in portal.sandbox.portal.splits.items() if v}
        deal = next(
            d
            for d in portal.sandbox.deals()
            if d["dealstage"] == "appointmentscheduled"
            and d["id"] not in split_ids
            and d["closedate"] < "2026-12"
        )
        portal.sandbox.close_deal(deal["id"], won=True)
        portal.sandbox.calls.reset()
        summary = engine.process(ChangeSet.of(deals=[deal["id"]]), SyncOptions(as_of=hs.AS_OF))
        assert summary.exit_code == 0
        calls = portal.sandbox.calls.calls()
        assert len(calls) <= 5, [c.kind for c in calls]
        assert summary.records_written == 2
    hs.assert_crm_matches(portal, hs.oracle(portal, hs.AS_OF), hs.AS_OF)


# -- HubSpot within its call budget ------------------------------------------------------------


def calls_over_bound(portal: hs.Portal) -> int:
    calls = portal.sandbox.calls.calls()
    listed = sum(
        c.records for c in calls if c.kind in ("owners_page", "deal_list_page", "user_list_page")
    )
    searched = sum(c.records for c in calls if c.kind == "deal_search")
    written = sum(c.records for c in calls if c.kind.endswith("batch_update"))
    split_reads = sum(1 for c in calls if c.kind == "split_batch_read")
    credited = sum(1 for d in portal.sandbox.deals() if d["dealstage"] == "closedwon")
    assert split_reads <= -(-credited // 100) + 1
    bound = -(-listed // 100) + -(-searched // 200) + -(-written // 100) + split_reads
    return len(calls) - bound


def test_hubspot_syncs_stay_within_the_lower_bound_plus_five(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    portal = hubspot_portal(make_hubspot_sandbox, tmp_path)
    hs.installed(portal)
    portal.sandbox.calls.reset()
    assert portal.cli("sync", "--as-of", hs.AS_OF.isoformat()).exit_code == 0
    assert calls_over_bound(portal) <= 5
    portal.sandbox.calls.reset()
    assert portal.cli("sync", "--as-of", hs.AS_OF.isoformat()).exit_code == 0
    assert calls_over_bound(portal) <= 5
    as_of, _ = three_changes_hubspot(portal)
    portal.sandbox.calls.reset()
    assert portal.cli("sync", "--as-of", as_of.isoformat()).exit_code == 0
    assert calls_over_bound(portal) <= 5


# -- unreachable CRMs --------------------------------------------------------------------------


def test_a_refused_connection_fails_fast_with_the_url(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    org = salesforce_org(make_salesforce_sandbox, tmp_path)
    url = org.sandbox.url
    org.sandbox.stop()
    started = time.monotonic()
    result = org.cli("sync")
    assert time.monotonic() - started < 6
    assert result.exit_code == 3, result.output
    assert (
        url in result.output and "refused" in result.output and "crm.instance_url" in result.output
    )
    assert "Traceback" not in result.output and "Error(" not in result.output


def test_a_certificate_we_do_not_trust_names_ca_bundle(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    org = salesforce_org(make_salesforce_sandbox, tmp_path)
    text = yaml.safe_load(org.config.read_text())
    text["crm"].pop("ca_bundle", None)
    org.config.write_text(yaml.safe_dump(text, sort_keys=False))
    env = {**org.env, "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}
    result = sf.run(org.config, env, "sync")
    assert result.exit_code == 3, result.output
    assert "crm.ca_bundle" in result.output and org.sandbox.url in result.output


def test_a_wrong_base_url_path_names_the_setting(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    portal = hubspot_portal(make_hubspot_sandbox, tmp_path)
    text = yaml.safe_load(portal.config.read_text())
    text["crm"]["base_url"] = portal.sandbox.url + "/wrong"
    portal.config.write_text(yaml.safe_dump(text, sort_keys=False))
    result = portal.cli("sync")
    assert result.exit_code == 3, result.output
    assert "404" in result.output and "crm.base_url" in result.output
    assert "MaxRetryError" not in result.output and "Traceback" not in result.output


def test_config_after_the_command(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from connector.cli import cli

    org = salesforce_org(make_salesforce_sandbox, tmp_path)
    result = CliRunner().invoke(
        cli, ["install", "--dry-run", "--config", str(org.config)], env=org.env
    )
    assert result.exit_code == 0, result.output
    assert "would create" in result.output


def test_a_sync_waits_its_turn_while_the_worker_holds_the_store(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    import threading

    from connector.config import store_url
    from connector.sync.lease import sync_lock

    org = salesforce_org(make_salesforce_sandbox, tmp_path)
    sf.installed(org)
    as_of = sf.as_of_for(org.sandbox).isoformat()
    url = store_url(load_config(str(org.config)), org.env)
    held, release = threading.Event(), threading.Event()

    def worker_pass() -> None:
        with Store.open(url) as store, sync_lock(store, "worker:1", lambda: datetime.now(UTC)):
            held.set()
            release.wait(10)

    # A worker pass holds the store: a sync with no wait exits 4 at once, naming it.
    thread = threading.Thread(target=worker_pass)
    thread.start()
    assert held.wait(10)
    refused = org.cli("sync", "--as-of", as_of, "--wait", "0")
    assert refused.exit_code == 4 and "another sync (worker:1)" in refused.output
    # A scheduled sync (the default) waits for the pass to end, says so, and runs.
    threading.Timer(1.0, release.set).start()
    waited = org.cli("sync", "--as-of", as_of)
    thread.join()
    assert waited.exit_code == 0, waited.output
    assert "waiting up to 600 s: another sync (worker:1) has held store" in waited.output
    assert "written: " in waited.output
