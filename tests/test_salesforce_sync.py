"""`install` and `sync` end to end: the CLI, the real simple-salesforce, the sandbox over HTTPS.

Every figure the sync writes is checked against `spm-connector calc` run on a
CSV export of the same org, so the two paths to a statement must agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.core.fields import CATALOGUE
from connector.core.models import LineKind
from connector.store.state import Store
from crm_sandbox.salesforce import SalesforceSandbox
from tests.crm_sync_helpers import (
    OracleDeal,
    calc_statements,
    expected_deal_fields,
    expected_rep_fields,
    percent,
    run,
    write_config,
)
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox


class Clock:
    """The org's wall clock, moved on by the tests between syncs as real time would be."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 31, 9, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 3600) -> None:
        self.now += seconds


DEAL_FIELDS = ("SPM_Commission__c", "SPM_Commission_Rate__c", "SPM_Commission_Period__c")


@dataclass
class Org:
    sandbox: SalesforceSandbox
    config: Path
    env: dict[str, str]
    directory: Path
    clock: Clock

    def cli(self, *args: str) -> Any:
        self.clock.advance()
        return run(self.config, self.env, *args)

    def writes(self) -> list[int]:
        """Records per composite write call since the last reset."""
        return [c.records for c in self.sandbox.calls.calls("composite_update")]


pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
def org(make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path) -> Iterator[Org]:
    clock = Clock()
    sandbox = make_salesforce_sandbox(reps=8, deals=300, clock=clock)
    users = sandbox.users()
    # Members by id, and two by email to prove emails resolve to CRM users.
    members = [u["Id"] for u in users[2:]] + [u["Email"] for u in users[:2]]
    config = write_config(tmp_path, sandbox.settings()["crm"], members)
    yield Org(sandbox, config, dict(sandbox.settings()["env"]), tmp_path, clock)


def as_of_for(sandbox: SalesforceSandbox) -> date:
    """Today, for the test: the day of the org's newest change, so every event is in the past."""
    return max(d["SystemModstamp"] for d in sandbox.opportunities(include_deleted=True)).date()


def oracle(org: Org, as_of: date, reversed_on: dict[str, date] | None = None) -> list[Any]:
    reversed_on = reversed_on or {}
    deals = []
    for d in org.sandbox.opportunities():
        status = "won" if d["IsWon"] else "lost" if d["IsClosed"] else "open"
        if d["Id"] in reversed_on:
            status = "cancelled"
        deals.append(
            OracleDeal(
                d["Id"],
                d["OwnerId"],
                d["Amount"],
                d["CloseDate"],
                status,
                d["Type"] or "",
                reversed_on.get(d["Id"]),
                d["CreatedDate"].date(),
            )
        )
    splits = [
        (s["OpportunityId"], s["SplitOwnerId"], s["SplitPercentage"]) for s in org.sandbox.splits()
    ]
    reps = [(u["Id"], u["Name"], u["Email"], u["IsActive"]) for u in org.sandbox.users()]
    return calc_statements(org.config, org.directory, deals, splits, as_of, reps)


def assert_crm_matches(org: Org, statements: list[Any], as_of: date) -> None:
    opportunities = org.sandbox.opportunities()
    amounts = {d["Id"]: d["Amount"] for d in opportunities}
    expected = expected_deal_fields(statements, amounts)
    credited = 0
    for deal in opportunities:
        want = expected[deal["Id"]]
        got = (
            deal["SPM_Commission__c"],
            deal["SPM_Commission_Rate__c"],
            deal["SPM_Commission_Period__c"],
            deal["SPM_Clawback__c"],
        )
        if want["commission"] is None:
            assert got == (None, None, None, None), deal["Id"]
            continue
        credited += 1
        rate = want["rate"]
        assert isinstance(rate, Decimal)
        assert got == (want["commission"], percent(rate, 4), want["period"], want["clawback"]), (
            deal["Id"]
        )
    assert credited > 50

    reps = expected_rep_fields(statements, as_of)
    users = {u["Id"]: u for u in org.sandbox.users()}
    assert set(reps) <= set(users) and len(reps) == 8
    for rep_id, want in reps.items():
        user = users[rep_id]
        assert user["SPM_Period__c"] == want["period"], rep_id
        assert user["SPM_Quota__c"] == Decimal(want["quota"])
        assert user["SPM_Bookings__c"] == Decimal(want["bookings"])
        assert user["SPM_Attainment__c"] == percent(Decimal(want["attainment"]), 2)
        assert user["SPM_Earnings__c"] == Decimal(want["earnings"])
        assert user["SPM_Draw_Paid__c"] == Decimal(want["draw_paid"])
        assert user["SPM_Draw_Recovered__c"] == Decimal(want["draw_recovered"])
        assert user["SPM_Draw_Balance__c"] == Decimal(want["draw_balance"])
        assert user["SPM_Payout__c"] == Decimal(want["payout"])
        assert user["SPM_Payout_YTD__c"] == want["payout_ytd"]
        assert user["SPM_Updated_At__c"] is not None


def installed(org: Org) -> None:
    result = org.cli("install")
    assert result.exit_code == 0, result.output


def test_install_creates_fields_and_permission_set_idempotently(org: Org) -> None:
    dry = org.cli("install", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would create" in dry.output and "Opportunity.SPM_Commission__c" in dry.output
    assert org.sandbox.calls.counts().get("tooling_create") is None

    installed(org)
    opportunity = org.sandbox.org.objects["Opportunity"]
    user = org.sandbox.org.objects["User"]
    assert opportunity.field("SPM_Commission__c") is not None
    assert user.field("SPM_Payout_YTD__c") is not None
    assert org.sandbox.calls.counts()["tooling_create"] == len(CATALOGUE)
    records = org.sandbox.org.records
    sets = {r.values["Name"]: r.id for r in records["PermissionSet"].values()}
    assert set(sets) == {"SPM_Payout_Fields", "SPM_Connector_Integration"}
    grants = [r.values for r in records["FieldPermissions"].values()]
    assert len(grants) == 2 * len(CATALOGUE)
    for grant in grants:
        edit = grant["ParentId"] == sets["SPM_Connector_Integration"]
        assert grant["PermissionsRead"] and grant["PermissionsEdit"] is edit
    assigned: dict[str, set[str]] = {}
    for row in records["PermissionSetAssignment"].values():
        assigned.setdefault(row.values["PermissionSetId"], set()).add(row.values["AssigneeId"])
    assert assigned[sets["SPM_Connector_Integration"]] == {org.sandbox.integration_user_id}
    # Plan members, and their managers (every seeded user here is one or the other).
    assert assigned[sets["SPM_Payout_Fields"]] == {u["Id"] for u in org.sandbox.users()}

    org.sandbox.calls.reset()
    again = org.cli("install")
    assert again.exit_code == 0, again.output
    counts = org.sandbox.calls.counts()
    assert "tooling_create" not in counts and "composite_create" not in counts


def test_full_sync_equals_calc_then_idle_then_incremental(org: Org) -> None:
    installed(org)
    as_of = as_of_for(org.sandbox)
    org.sandbox.calls.reset()
    first = org.cli("sync", "--as-of", as_of.isoformat())
    assert first.exit_code == 0, first.output
    assert_crm_matches(org, oracle(org, as_of), as_of)
    # Reads and writes in as few calls as the API allows.
    counts = org.sandbox.calls.counts()
    assert all(n <= 200 for n in org.writes())
    written = sum(org.writes())
    assert counts["composite_update"] <= -(-written // 200) + 1  # deals and users: 2 kinds

    deal_writes = sum(org.writes()) - 8

    # Nothing changed: nothing written. The pull reads the org's newest second again (its
    # stamps have no milliseconds, so the cursor is inclusive): one page, not the org.
    org.sandbox.calls.reset()
    idle = org.cli("sync", "--as-of", as_of.isoformat())
    assert idle.exit_code == 0, idle.output
    assert org.writes() == []
    # The org id (is this the store's org?), the users, the newest second again.
    # (Users: the 8 seeded people and the integration user.)
    assert [c.records for c in org.sandbox.calls.calls("query_page")] == [1, 9, deal_writes]

    # Three changes: a deal won, an amount changed, a won deal reversed.
    opportunities = org.sandbox.opportunities()
    open_deal = next(d for d in opportunities if not d["IsClosed"] and d["CloseDate"] <= as_of)
    won = [d for d in opportunities if d["IsWon"] and not d["SPM_Clawback__c"]]
    split_ids = {s["OpportunityId"] for s in org.sandbox.splits()}
    # The reversed deal is a split one: its clawback must fall on every split rep.
    reversed_deal = next(d for d in won if d["Id"] in split_ids)
    bigger = next(d for d in won if d["Id"] != reversed_deal["Id"])
    org.sandbox.close_deal(open_deal["Id"], won=True)
    org.sandbox.set_amount(bigger["Id"], bigger["Amount"] + Decimal("10000"))
    org.sandbox.reverse_deal(reversed_deal["Id"])
    reversed_on = org.sandbox.org.opportunity(reversed_deal["Id"]).values["SystemModstamp"].date()
    # The same as-of day as before: on a new day every rep's pace moves, and is rewritten.
    assert as_of_for(org.sandbox) >= as_of

    before = {d["Id"]: d for d in org.sandbox.opportunities()}
    org.sandbox.calls.reset()
    third = org.cli("sync", "--as-of", as_of.isoformat())
    assert third.exit_code == 0, third.output
    assert_crm_matches(org, oracle(org, as_of, {reversed_deal["Id"]: reversed_on}), as_of)
    after = {d["Id"]: d for d in org.sandbox.opportunities()}
    touched_reps = {open_deal["OwnerId"], bigger["OwnerId"], reversed_deal["OwnerId"]}
    changed = {
        deal_id
        for deal_id in after
        if any(after[deal_id][f] != before[deal_id][f] for f in (*DEAL_FIELDS, "SPM_Clawback__c"))
    }
    assert {open_deal["Id"], reversed_deal["Id"]} <= changed
    # Only deals of the reps whose deals changed (or their split partners) were rewritten.
    partners = {
        s["SplitOwnerId"]
        for s in org.sandbox.splits()
        if s["OpportunityId"] in {open_deal["Id"], bigger["Id"], reversed_deal["Id"]}
    }
    assert {after[d]["OwnerId"] for d in changed} <= touched_reps | partners
    rewritten = sum(org.writes()) - len(touched_reps | partners)
    assert rewritten <= len(changed) + len(touched_reps | partners)
    # The incremental pull read the changed deals (and, after writing, re-read what it wrote
    # to move its cursor past its own changes), not the org.
    reads = [c.records for c in org.sandbox.calls.calls("query_page")]
    # org id, users, changed deals (plus the last second re-read), their splits, the settle read
    assert len(reads) == 5 and reads[2] <= 3 + deal_writes and reads[4] <= 3


def test_faults_converge_with_nothing_lost(org: Org) -> None:
    installed(org)
    as_of = as_of_for(org.sandbox)
    locked = [d["Id"] for d in org.sandbox.opportunities() if d["IsWon"]][:5]
    org.sandbox.faults.update(
        {"error_rate": 0.2, "locked_ids": locked, "lock_failures": 8, "seed": 3}
    )
    first = org.cli("sync", "--as-of", as_of.isoformat())
    # Retries absorb the 503s; records still locked after every retry are reported (exit 1).
    assert first.exit_code == 1, first.output
    assert "UNABLE_TO_LOCK_ROW" in first.output
    assert org.sandbox.calls.counts()["unavailable"] > 0
    for _ in range(3):
        again = org.cli("sync", "--as-of", as_of.isoformat())
        if again.exit_code == 0:
            break
    assert again.exit_code == 0, again.output
    org.sandbox.faults.update({"error_rate": 0.0, "locked_ids": []})
    assert_crm_matches(org, oracle(org, as_of), as_of)


def test_daily_limit_stops_with_exit_3_and_next_sync_finishes(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    clock = Clock()
    sandbox = make_salesforce_sandbox(reps=8, deals=300, clock=clock)
    config = write_config(tmp_path, sandbox.settings()["crm"], [u["Id"] for u in sandbox.users()])
    org = Org(sandbox, config, dict(sandbox.settings()["env"]), tmp_path, clock)
    installed(org)
    as_of = as_of_for(sandbox)
    sandbox.faults.update({"daily_limit": sandbox.api_usage + 6})
    stopped = org.cli("sync", "--as-of", as_of.isoformat())
    assert stopped.exit_code == 3, stopped.output
    assert "daily API limit" in stopped.output and "Traceback" not in stopped.output
    sandbox.faults.update({"daily_limit": None})
    resumed = org.cli("sync", "--as-of", as_of.isoformat())
    assert resumed.exit_code == 0, resumed.output
    assert_crm_matches(org, oracle(org, as_of), as_of)


def test_wrong_token_is_exit_3_without_the_token(org: Org) -> None:
    org.env["SPM_SALESFORCE_ACCESS_TOKEN"] = "stolen-or-expired-token-123"
    result = org.cli("sync")
    assert result.exit_code == 3, result.output
    assert "refused the credentials" in result.output
    assert "stolen-or-expired-token-123" not in result.output and "Traceback" not in result.output


def test_sync_before_install_names_the_missing_field(org: Org) -> None:
    result = org.cli("sync")
    assert result.exit_code == 2, result.output
    assert "SPM_" in result.output and "spm-connector install" in result.output


def test_unknown_member_email_is_exit_2(org: Org) -> None:
    installed(org)
    text = org.config.read_text().replace(
        org.sandbox.users()[0]["Email"], "nobody@elsewhere.example"
    )
    org.config.write_text(text)
    result = org.cli("sync")
    assert result.exit_code == 2, result.output
    assert "nobody@elsewhere.example" in result.output


def test_unreachable_org_is_exit_3(org: Org) -> None:
    url = org.sandbox.url
    org.sandbox.stop()
    result = org.cli("sync")
    assert result.exit_code == 3, result.output
    assert url in result.output and "Traceback" not in result.output


def test_dry_run_writes_nothing(org: Org) -> None:
    installed(org)
    org.sandbox.calls.reset()
    result = org.cli("sync", "--dry-run", "--as-of", "2026-06-30")
    assert result.exit_code == 0, result.output
    assert org.writes() == []
    assert "SPM_Commission__c" in result.output or "commission" in result.output


def test_full_sync_on_postgresql(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    from tests.test_store import _postgres_url

    urls = _postgres_url()
    store = next(urls)  # skips the test when PostgreSQL is not running
    try:
        clock = Clock()
        sandbox = make_salesforce_sandbox(reps=8, deals=300, clock=clock)
        members = [u["Id"] for u in sandbox.users()]
        config = write_config(tmp_path, sandbox.settings()["crm"], members, store=store)
        org = Org(sandbox, config, dict(sandbox.settings()["env"]), tmp_path, clock)
        installed(org)
        as_of = as_of_for(sandbox)
        result = org.cli("sync", "--as-of", as_of.isoformat())
        assert result.exit_code == 0, result.output
        assert_crm_matches(org, oracle(org, as_of), as_of)
        sandbox.calls.reset()
        assert org.cli("sync", "--as-of", as_of.isoformat()).exit_code == 0
        assert org.writes() == []
    finally:
        urls.close()


def test_deal_in_another_currency_is_reported_not_mixed(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    clock = Clock()
    sandbox = make_salesforce_sandbox(reps=8, deals=300, clock=clock, multicurrency=True)
    members = [u["Id"] for u in sandbox.users()]
    config = write_config(tmp_path, sandbox.settings()["crm"], members)
    org = Org(sandbox, config, dict(sandbox.settings()["env"]), tmp_path, clock)
    installed(org)
    euro = next(d for d in sandbox.opportunities() if d["IsWon"])
    sandbox.org.update("Opportunity", euro["Id"], {"CurrencyIsoCode": "EUR"}, source="sandbox")
    result = org.cli("sync", "--as-of", as_of_for(sandbox).isoformat())
    assert result.exit_code == 0, result.output
    assert f"deal {euro['Id']} is in EUR, not the plan currency USD" in result.output
    assert sandbox.org.opportunity(euro["Id"]).values["SPM_Commission__c"] is None


def test_with_exchange_rates_a_deal_in_another_currency_is_converted_and_paid(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    clock = Clock()
    sandbox = make_salesforce_sandbox(reps=8, deals=300, clock=clock, multicurrency=True)
    members = [u["Id"] for u in sandbox.users()]
    (tmp_path / "rates.csv").write_text("currency,from,rate\nEUR,2025-01-01,1.0850\n")
    config = write_config(
        tmp_path, sandbox.settings()["crm"], members,
        extra={"currency_rates": {"file": "rates.csv"}},
    )  # fmt: skip
    org = Org(sandbox, config, dict(sandbox.settings()["env"]), tmp_path, clock)
    installed(org)
    euro = next(d for d in sandbox.opportunities() if d["IsWon"])
    sandbox.org.update("Opportunity", euro["Id"], {"CurrencyIsoCode": "EUR"}, source="sandbox")
    result = org.cli("sync", "--as-of", as_of_for(sandbox).isoformat())
    assert result.exit_code == 0, result.output
    assert "is in EUR" not in result.output
    paid = sandbox.org.opportunity(euro["Id"]).values["SPM_Commission__c"]
    assert paid is not None and paid > 0
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}", existing=True) as store:
        lines = [
            line
            for s in store.statements.of_rep(euro["OwnerId"])
            for line in s.lines
            if line.deal_id == euro["Id"] and line.kind is LineKind.COMMISSION
        ]
    assert lines and f"EUR {euro['Amount']:.2f} at 1.085" in lines[0].rule
    assert lines[0].credit == (euro["Amount"] * Decimal("1.0850")).quantize(Decimal("0.01"))
    # A rate missing for the deal's date stops the sync, naming the deal.
    (tmp_path / "rates.csv").write_text("currency,from,rate\nEUR,2030-01-01,1.0850\n")
    refused = org.cli("sync", "--as-of", as_of_for(sandbox).isoformat(), "--full")
    assert refused.exit_code == 2 and f"deal {euro['Id']}" in refused.output


# -- field-level security: the sandbox hides fields created through the API until granted --

INTEGRATION = "SPM_Connector_Integration"


def permission_set_id(sandbox: SalesforceSandbox, name: str) -> str:
    return next(
        r.id for r in sandbox.org.records["PermissionSet"].values() if r.values["Name"] == name
    )


def grant_of(sandbox: SalesforceSandbox, set_name: str, field: str) -> Any:
    parent = permission_set_id(sandbox, set_name)
    return next(
        r
        for r in sandbox.org.records["FieldPermissions"].values()
        if r.values["ParentId"] == parent
        and r.values["Field"] == field
        and not r.values["IsDeleted"]
    )


def sync(org: Org, as_of: date) -> Any:
    return org.cli("sync", "--as-of", as_of.isoformat())


def test_dry_run_lists_every_grant_and_assignment(org: Org) -> None:
    result = org.cli("install", "--dry-run")
    assert result.exit_code == 0, result.output
    output = result.output
    assert f"would grant  read and edit on Opportunity.SPM_Commission__c ({INTEGRATION})" in output
    assert "would grant  read on User.SPM_Payout__c (SPM_Payout_Fields)" in output
    assert f"would assign  {INTEGRATION} for user {org.sandbox.integration_user_id}" in output
    assert output.count("would grant  ") == 2 * len(CATALOGUE)
    assert not org.sandbox.org.records["FieldPermissions"]


def test_sync_after_install_writes_and_reads_back_every_field(org: Org) -> None:
    installed(org)
    as_of = as_of_for(org.sandbox)
    first = sync(org, as_of)
    assert first.exit_code == 0, first.output
    assert_crm_matches(org, oracle(org, as_of), as_of)
    org.sandbox.calls.reset()
    idle = sync(org, as_of)  # reads every field back through SOQL: Read is granted
    assert idle.exit_code == 0, idle.output
    assert org.writes() == []


@pytest.mark.parametrize("removed", ["grant", "edit", "assignment"])
def test_a_removed_grant_stops_sync_clearly_and_install_repairs_it(org: Org, removed: str) -> None:
    installed(org)
    as_of = as_of_for(org.sandbox)
    assert sync(org, as_of).exit_code == 0
    sandbox = org.sandbox
    if removed == "grant":
        sandbox.org.delete(
            "FieldPermissions", grant_of(sandbox, INTEGRATION, "Opportunity.SPM_Clawback__c").id
        )
        expected = "cannot see Opportunity field(s) SPM_Clawback__c"
    elif removed == "edit":
        sandbox.org.update(
            "FieldPermissions",
            grant_of(sandbox, INTEGRATION, "User.SPM_Payout__c").id,
            {"PermissionsEdit": False},
        )
        expected = "may read but not edit User field(s) SPM_Payout__c"
    else:
        parent = permission_set_id(sandbox, INTEGRATION)
        assignment = next(
            r
            for r in sandbox.org.records["PermissionSetAssignment"].values()
            if r.values["PermissionSetId"] == parent
        )
        sandbox.org.delete("PermissionSetAssignment", assignment.id)
        expected = "cannot see"
    # Something for the sync to write: a deal that changed since.
    deal = next(d for d in sandbox.opportunities() if d["IsWon"])
    sandbox.set_amount(deal["Id"], deal["Amount"] + 1000)

    sandbox.calls.reset()
    stopped = sync(org, as_of)
    assert stopped.exit_code == 2, stopped.output
    assert expected in stopped.output
    assert "spm-connector install" in stopped.output and "Traceback" not in stopped.output
    assert org.writes() == []  # one clear stop, not a failure per record

    repaired = org.cli("install")
    assert repaired.exit_code == 0, repaired.output
    assert any(word in repaired.output for word in ("granted", "repaired", "assigned"))
    resumed = sync(org, as_of)
    assert resumed.exit_code == 0, resumed.output
    assert_crm_matches(org, oracle(org, as_of), as_of)

    again = org.cli("install")
    assert again.exit_code == 0
    assert not any(w in again.output for w in ("granted", "repaired", "assigned"))


def test_concurrent_request_limit_is_waited_out_not_a_daily_limit(org: Org) -> None:
    installed(org)
    org.sandbox.faults.update({"busy_requests": 2})
    result = org.cli("sync", "--as-of", as_of_for(org.sandbox).isoformat())
    assert result.exit_code == 0, result.output
    assert "ConcurrentPerOrgLongTxn limit was reached" in result.output
    assert "daily API limit" not in result.output
    assert org.sandbox.faults.busy_requests == 0


# -- page layouts: a field on no layout is invisible on the record -------------------------------


def layout(sandbox: SalesforceSandbox, name: str) -> dict[str, Any]:
    record = next(
        r for r in sandbox.org.tooling_records["Layout"].values() if r.values["Name"] == name
    )
    metadata: dict[str, Any] = record.values["Metadata"]
    return metadata


def section_fields(metadata: dict[str, Any], label: str) -> list[str]:
    section = next(s for s in metadata["layoutSections"] if s["label"] == label)
    return [i["field"] for c in section["layoutColumns"] for i in c["layoutItems"]]


def test_install_shows_our_fields_on_the_members_layouts_idempotently(org: Org) -> None:
    before = {n: layout(org.sandbox, n) for n in ("Opportunity Layout", "User Layout")}
    dry = org.cli("install", "--dry-run")
    assert "would update  page layout Opportunity (Sales) Layout" in dry.output, dry.output
    assert "would update  page layout User Layout" in dry.output
    assert "tooling_update" not in org.sandbox.calls.counts()

    installed(org)
    deal_fields = {s.salesforce for s in CATALOGUE if s.record.value == "deal"}
    rep_fields = {s.salesforce for s in CATALOGUE if s.record.value == "rep"}
    # The reps' profile (Standard User) sees the Sales layout: it gets the section.
    sales = layout(org.sandbox, "Opportunity (Sales) Layout")
    assert set(section_fields(sales, "Commission")) == deal_fields
    assert set(section_fields(layout(org.sandbox, "User Layout"), "Commission")) == rep_fields
    # Nothing else on a changed layout moved; a layout no member sees is untouched.
    assert [s["label"] for s in sales["layoutSections"]] == [
        "Opportunity Information",
        "Commission",
        "System Information",
    ]
    untouched = layout(org.sandbox, "Opportunity Layout")
    assert untouched == before["Opportunity Layout"]
    for key in ("relatedLists", "showHighlightsPanel", "fullName"):
        assert sales[key] == untouched[key] or key == "fullName"
    assert sales["layoutSections"][0] == untouched["layoutSections"][0]

    org.sandbox.calls.reset()
    again = org.cli("install")
    assert again.exit_code == 0, again.output
    assert "tooling_update" not in org.sandbox.calls.counts()
    assert "exists  page layout User Layout (Commission section)" in again.output


def test_install_layouts_by_name_or_not_at_all(org: Org) -> None:
    skipped = org.cli("install", "--no-layouts")
    assert skipped.exit_code == 0, skipped.output
    assert "tooling_update" not in org.sandbox.calls.counts()
    unknown = org.cli("install", "--layouts", "Nope Layout")
    assert unknown.exit_code == 2
    assert "no Opportunity or User page layout named 'Nope Layout'" in unknown.output
    assert "'Opportunity Layout'" in unknown.output
    chosen = org.cli("install", "--layouts", "Opportunity Layout")
    assert chosen.exit_code == 0, chosen.output
    assert "Commission" in [
        s["label"] for s in layout(org.sandbox, "Opportunity Layout")["layoutSections"]
    ]
    assert "Commission" not in [
        s["label"] for s in layout(org.sandbox, "User Layout")["layoutSections"]
    ]


def test_install_without_assigning_still_shows_fields_on_the_members_layouts(org: Org) -> None:
    result = org.cli("install", "--no-assign")
    assert result.exit_code == 0, result.output
    records = org.sandbox.org.records
    payout = next(
        r.id for r in records["PermissionSet"].values() if r.values["Name"] == "SPM_Payout_Fields"
    )
    assert not any(
        r.values["PermissionSetId"] == payout for r in records["PermissionSetAssignment"].values()
    )
    labels = [
        s["label"] for s in layout(org.sandbox, "Opportunity (Sales) Layout")["layoutSections"]
    ]
    assert "Commission" in labels


def test_missing_credentials_name_every_way_to_log_in_the_security_token_too() -> None:
    from connector.adapters.salesforce import (
        SalesforceAdapter,
        SalesforceCredentials,
        SalesforceSettings,
    )
    from connector.errors import ConfigError

    adapter = SalesforceAdapter(
        SalesforceSettings(instance_url="https://acme.my.salesforce.com"), SalesforceCredentials()
    )
    with pytest.raises(ConfigError) as caught:
        adapter.account_id()
    message = str(caught.value)
    for name in ("ACCESS_TOKEN", "USERNAME", "PASSWORD", "SECURITY_TOKEN", "CLIENT_ID"):
        assert f"SPM_SALESFORCE_{name}" in message
