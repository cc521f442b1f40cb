"""Exchange rates read from the CRM (``currency_rates: {source: crm}``), end to end.

A multi-currency Salesforce org (``CurrencyType``, ``DatedConversionRate``) and
HubSpot portal (company currency and exchange rates) hold deals in EUR and
GBP. Sync, and the worker door a webhook drives, pay them converted at the
CRM's rate of their close date; every field equals `calc` given the same rates
as a file. A deal in a currency the CRM has no rate for stops the sync naming it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.config import load_config, load_secrets
from connector.connect import adapter_for, sync_settings
from connector.store.state import Store
from connector.sync.engine import SyncEngine
from connector.sync.run import ChangeSet, SyncOptions
from crm_sandbox.hubspot import HubSpotSandbox
from crm_sandbox.hubspot.records import USERS, ApiError
from crm_sandbox.salesforce import SalesforceSandbox
from tests.crm_records import hubspot_records, salesforce_records
from tests.crm_sync_helpers import calc_document, run, write_config
from tests.fixtures.hubspot_sandbox import MakeHubSpotSandbox
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox
from tests.test_goals_e2e import AS_OF, current

# The sandboxes' rates, as a calc rates file says them (USD per unit).
RATES_FILE = "currency,from,rate\nEUR,2000-01-01,1.25\nEUR,2026-07-01,1.6\nGBP,2000-01-01,2\n"
CRM_RATES = {"currency_rates": {"source": "crm"}}


def engine_for(config: Path, env: dict[str, str], store: Store) -> SyncEngine:
    settings = load_config(config)
    adapter = adapter_for(settings, load_secrets(env, config.parent), cache=store.cache)
    clock = datetime(2026, 12, 31, 12, tzinfo=UTC)
    return SyncEngine(sync_settings(settings), adapter, store, clock=lambda: clock)


def commission_by_deal(statements: Iterable[dict[str, Any]]) -> dict[str, Decimal]:
    paid: dict[str, Decimal] = {}
    for statement in statements:
        for line in statement["lines"]:
            if line["kind"] in ("commission", "adjustment") and line["deal_id"]:
                paid[line["deal_id"]] = paid.get(line["deal_id"], Decimal(0)) + Decimal(
                    line["amount"]
                )
    return paid


def check(document: dict[str, Any], deal_commission: dict[str, Any],
          rep_earnings: dict[str, Any], converted: set[str]) -> None:  # fmt: skip
    """The CRM's fields equal calc's figures; every converted deal is paid."""
    want = commission_by_deal(document["statements"])
    for deal_id, got in deal_commission.items():
        expected = want.get(deal_id)
        if expected is None:
            assert got in (None, ""), (deal_id, got)
        else:
            assert Decimal(str(got)) == expected, (deal_id, got, expected)
    assert converted and all(want.get(d) for d in converted)
    for rep_id, statement in current(document).items():
        assert Decimal(str(rep_earnings[rep_id])) == Decimal(statement["earnings"]), rep_id


# --- Salesforce ------------------------------------------------------------------------------


def salesforce_document(sandbox: SalesforceSandbox, config: Path, directory: Path) -> Any:
    (directory / "rates.csv").write_text(RATES_FILE)
    deals, splits, reps = salesforce_records(sandbox)
    return calc_document(config, directory, deals, splits, AS_OF, reps,
                         rates=directory / "rates.csv")  # fmt: skip


def test_salesforce_pays_deals_in_other_currencies_at_the_orgs_dated_rates(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    clock_now = datetime(2026, 12, 31, 9, tzinfo=UTC).timestamp()
    sandbox = make_salesforce_sandbox(reps=8, deals=240, clock=lambda: clock_now,
                                      multicurrency=True)  # fmt: skip
    won = [d for d in sandbox.opportunities() if d["IsWon"]]
    converted = {d["Id"]: code for d, code in zip(won[::7], ["EUR", "GBP"] * 20, strict=False)}
    for deal_id, code in converted.items():
        sandbox.org.update("Opportunity", deal_id, {"CurrencyIsoCode": code}, source="sandbox")
    config = write_config(tmp_path, sandbox.settings()["crm"],
                          [u["Id"] for u in sandbox.users()], extra=CRM_RATES)  # fmt: skip
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    result = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output
    assert "is in EUR" not in result.output

    def fields() -> tuple[dict[str, Any], dict[str, Any]]:
        deals = {d["Id"]: d["SPM_Commission__c"] for d in sandbox.opportunities()}
        return deals, {u["Id"]: u["SPM_Earnings__c"] for u in sandbox.users()}

    check(salesforce_document(sandbox, config, tmp_path), *fields(), set(converted))
    # A euro deal's line says what it was, at the dated rate of its close date.
    euro = next(d for d in won if converted.get(d["Id"]) == "EUR")
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}", existing=True) as store:
        rules = [ln.rule for s in store.statements.of_rep(euro["OwnerId"]) for ln in s.lines
                 if ln.deal_id == euro["Id"]]  # fmt: skip
    rate = "1.6" if euro["CloseDate"] >= date(2026, 7, 1) else "1.25"
    assert any(f"EUR {euro['Amount']:.2f} at {rate}" in rule for rule in rules), rules

    # The worker door (what a webhook drives): a euro deal's amount changes.
    sandbox.set_amount(euro["Id"], euro["Amount"] + 1000)
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as store:
        engine = engine_for(config, env, store)
        summary = engine.process(ChangeSet.of(deals=[euro["Id"]]), SyncOptions(as_of=AS_OF))
        assert summary.exit_code == 0
    check(salesforce_document(sandbox, config, tmp_path), *fields(), set(converted))

    # The org loses its GBP rates (an admin deletes the currency's dated rates and type).
    for name in ("DatedConversionRate", "CurrencyType"):
        for record in list(sandbox.org.records[name].values()):
            if record.values["IsoCode"] == "GBP":
                del sandbox.org.records[name][record.id]
    refused = run(config, env, "sync", "--as-of", AS_OF.isoformat(), "--full")
    assert refused.exit_code == 2, refused.output
    assert "has no GBP rate" in refused.output and "Manage Currencies" in refused.output


def test_salesforce_single_currency_org_has_no_rates_and_syncs(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    sandbox = make_salesforce_sandbox(reps=4, deals=40)
    config = write_config(tmp_path, sandbox.settings()["crm"],
                          [u["Id"] for u in sandbox.users()], extra=CRM_RATES)  # fmt: skip
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    assert "CurrencyType" not in sandbox.org.objects
    result = run(config, env, "sync")
    assert result.exit_code == 0, result.output


# --- HubSpot ---------------------------------------------------------------------------------


def hubspot_document(sandbox: HubSpotSandbox, config: Path, directory: Path) -> Any:
    (directory / "rates.csv").write_text(RATES_FILE)
    deals, splits, reps = hubspot_records(sandbox)
    return calc_document(config, directory, deals, splits, AS_OF, reps,
                         rates=directory / "rates.csv")  # fmt: skip


def test_hubspot_pays_deals_in_other_currencies_at_the_portals_rates(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    sandbox = make_hubspot_sandbox(reps=8, deals=240, multicurrency=True)
    won = [d for d in sandbox.deals() if d["dealstage"] == "closedwon"]
    converted = {d["id"]: code for d, code in zip(won[::7], ["EUR", "GBP"] * 20, strict=False)}
    for deal_id, code in converted.items():
        sandbox.set_currency(deal_id, code)
    owners = sandbox.owners()
    config = write_config(tmp_path, sandbox.settings()["crm"], [o["id"] for o in owners],
                          extra=CRM_RATES)  # fmt: skip
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    result = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output

    def fields() -> tuple[dict[str, Any], dict[str, Any]]:
        deals = {d["id"]: d.get("spm_commission") for d in sandbox.deals()}
        by_user = {r.properties["hs_internal_user_id"]: r.properties
                   for r in sandbox.portal.stores[USERS].live()}  # fmt: skip
        return deals, {o["id"]: by_user[str(o["userId"])].get("spm_earnings") for o in owners}

    check(hubspot_document(sandbox, config, tmp_path), *fields(), set(converted))
    euro = next(d for d in won if converted.get(d["id"]) == "EUR")
    sandbox.set_amount(euro["id"], Decimal(euro["amount"]) + 1000)
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as store:
        engine = engine_for(config, env, store)
        summary = engine.process(ChangeSet.of(deals=[euro["id"]]), SyncOptions(as_of=AS_OF))
        assert summary.exit_code == 0
    check(hubspot_document(sandbox, config, tmp_path), *fields(), set(converted))


def test_hubspot_without_the_currencies_scope_says_which_scope(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    sandbox = make_hubspot_sandbox(reps=4, deals=40, multicurrency=True)
    sandbox.portal.scopes.discard("settings.currencies.read")
    config = write_config(tmp_path, sandbox.settings()["crm"],
                          [o["id"] for o in sandbox.owners()], extra=CRM_RATES)  # fmt: skip
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    refused = run(config, env, "sync")
    assert refused.exit_code == 2, refused.output
    assert "settings.currencies.read" in refused.output


def test_a_single_currency_portal_refuses_another_currency_and_has_no_rates(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    sandbox = make_hubspot_sandbox(reps=4, deals=40)
    with pytest.raises(ApiError, match="EUR"):
        sandbox.set_currency(sandbox.deals()[0]["id"], "EUR")
    config = write_config(tmp_path, sandbox.settings()["crm"],
                          [o["id"] for o in sandbox.owners()], extra=CRM_RATES)  # fmt: skip
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    result = run(config, env, "sync")
    assert result.exit_code == 0, result.output
