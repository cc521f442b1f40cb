"""The adapter contract: what the sync engine relies on, checked for every CRM against its sandbox.

Each CRM provides a :class:`CrmCase` (an adapter on a fresh sandbox, plus the
few sandbox-side moves the tests need); every test runs once per case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import SecretStr

from connector.adapters.base import CrmAdapter
from connector.adapters.hubspot import HubSpotAdapter, HubSpotSettings
from connector.adapters.retry import RetryPolicy
from connector.adapters.salesforce import (
    SalesforceAdapter,
    SalesforceCredentials,
    SalesforceSettings,
)
from connector.core.fields import CATALOGUE, RecordKind
from connector.core.models import FieldValue, Outcome, RecordUpdate
from tests.fixtures.hubspot_sandbox import MakeHubSpotSandbox
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox


@dataclass
class CrmCase:
    """An adapter on a seeded sandbox, and the sandbox-side moves the contract tests make."""

    adapter: CrmAdapter
    deal_ids: Callable[[], list[str]]  # live deals, as the CRM numbers them
    won_deal_ids: Callable[[], list[str]]
    split_deal_ids: Callable[[], set[str]]
    set_amount: Callable[[str, Decimal], None]
    delete: Callable[[str], None]
    missing_deal_id: str  # well-formed, but no such record
    has_splits: bool = True
    has_managers: bool = True


def fast_retry() -> RetryPolicy:
    return RetryPolicy(attempts=3, initial_s=0.01, maximum_s=0.05)


def salesforce_case(make: MakeSalesforceSandbox, *, splits: bool = True) -> CrmCase:
    sandbox = make(reps=6, deals=80, splits=splits)
    adapter = SalesforceAdapter(
        SalesforceSettings(instance_url=sandbox.url, ca_bundle=sandbox.ca_path),
        SalesforceCredentials(access_token=SecretStr(sandbox.token)),
        retry=fast_retry(),
    )
    return CrmCase(
        adapter=adapter,
        deal_ids=lambda: [d["Id"] for d in sandbox.opportunities()],
        won_deal_ids=lambda: [d["Id"] for d in sandbox.opportunities() if d["IsWon"]],
        split_deal_ids=lambda: {s["OpportunityId"] for s in sandbox.splits()},
        set_amount=sandbox.set_amount,
        delete=sandbox.delete_deal,
        missing_deal_id="0060700000ZZZZZAAA",
        has_splits=splits,
    )


def hubspot_case(make: MakeHubSpotSandbox) -> CrmCase:
    sandbox = make(reps=6, deals=80)
    adapter = HubSpotAdapter(
        HubSpotSettings(base_url=sandbox.url), SecretStr(sandbox.token), retry=fast_retry()
    )
    return CrmCase(
        adapter=adapter,
        deal_ids=lambda: [d["id"] for d in sandbox.deals()],
        won_deal_ids=lambda: [d["id"] for d in sandbox.deals() if d["dealstage"] == "closedwon"],
        split_deal_ids=lambda: {k for k, v in sandbox.portal.splits.items() if v},
        set_amount=sandbox.set_amount,
        delete=sandbox.archive_deal,
        missing_deal_id="1",
        has_managers=False,  # HubSpot owners carry teams, not managers
    )


@pytest.fixture(params=["salesforce", "hubspot"])
def case(
    request: pytest.FixtureRequest,
    make_salesforce_sandbox: MakeSalesforceSandbox,
    make_hubspot_sandbox: MakeHubSpotSandbox,
) -> Iterator[CrmCase]:
    if request.param == "salesforce":
        yield salesforce_case(make_salesforce_sandbox)
    else:
        yield hubspot_case(make_hubspot_sandbox)


def installed(case: CrmCase) -> None:
    case.adapter.ensure_fields(CATALOGUE, dry_run=False)


# -- the contract ------------------------------------------------------------------------------


def test_users_can_be_read_before_install(case: CrmCase) -> None:
    users = list(case.adapter.read_users(include_fields=False))
    assert len(users) >= 6
    assert all(u.id and "@" in u.email for u in users)
    assert any(u.manager_id for u in users) == case.has_managers


def test_install_is_idempotent_and_dry_run_changes_nothing(case: CrmCase) -> None:
    planned = case.adapter.ensure_fields(CATALOGUE, dry_run=True)
    assert planned and all(s.action.startswith("would") for s in planned)
    created = case.adapter.ensure_fields(CATALOGUE, dry_run=False)
    assert sum(s.action == "created" for s in created) >= len(CATALOGUE)  # + CRM extras
    again = case.adapter.ensure_fields(CATALOGUE, dry_run=False)
    assert not any(s.action == "created" for s in again)


def test_full_read_parses_exactly(case: CrmCase) -> None:
    installed(case)
    deals = list(case.adapter.read_deals(None))
    assert {d.id for d in deals} == set(case.deal_ids())
    assert {d.outcome for d in deals} == {Outcome.OPEN, Outcome.WON, Outcome.LOST}
    won = {d.id for d in deals if d.outcome is Outcome.WON}
    assert won == set(case.won_deal_ids())
    for deal in deals:
        assert isinstance(deal.amount, Decimal) and deal.amount == deal.amount.quantize(
            Decimal("0.01")
        )
        assert isinstance(deal.close_date, date)
        assert deal.modified_at.tzinfo is not None
        assert deal.owner_id and not deal.deleted
        assert all(value is None for value in deal.fields.values())


def test_incremental_read_and_deletions(case: CrmCase) -> None:
    installed(case)
    deals = list(case.adapter.read_deals(None))
    newest = max(d.modified_at for d in deals)
    changed, doomed = case.deal_ids()[:2]
    case.set_amount(changed, Decimal("4321.09"))
    case.delete(doomed)
    later = {d.id: d for d in case.adapter.read_deals(newest)}
    assert later[changed].amount == Decimal("4321.09")
    assert later[doomed].deleted
    # Changes since the newest stamp only: not the whole org again.
    assert len(later) < len(deals) / 2


def test_splits(case: CrmCase) -> None:
    installed(case)
    splits = case.adapter.read_splits(case.deal_ids())
    if not case.has_splits:
        assert splits is None
        return
    assert splits is not None
    by_deal: dict[str, Decimal] = {}
    for split in splits:
        by_deal[split.deal_id] = by_deal.get(split.deal_id, Decimal(0)) + split.percent
    assert set(by_deal) == case.split_deal_ids()
    assert all(total == 100 for total in by_deal.values())


def test_write_reports_each_record_and_reads_back(case: CrmCase) -> None:
    installed(case)
    first, second = case.won_deal_ids()[:2]
    updates = [
        RecordUpdate(
            first,
            {
                "commission": "1234.56",
                "commission_rate": "0.125",
                "commission_period": "2026-03",
                "clawback": "0.00",
            },
        ),
        RecordUpdate(case.missing_deal_id, {"commission": "1.00"}),
        RecordUpdate(second, {"commission": "0.01", "commission_period": "2026-04"}),
    ]
    results = case.adapter.write(RecordKind.DEAL, updates)
    assert [r.record_id for r in results] == [u.record_id for u in updates]
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].code and results[1].message
    read = {d.id: d for d in case.adapter.read_deals(None)}
    assert dict(read[first].fields) == {
        "commission": "1234.56",
        "commission_rate": "0.125000",
        "commission_period": "2026-03",
        "clawback": "0.00",
        "estimated_commission": None,  # ours too, never written here
    }
    assert read[second].fields["commission"] == "0.01"


def test_rep_fields_round_trip(case: CrmCase) -> None:
    installed(case)
    user = next(iter(case.adapter.read_users()))
    stamp = datetime(2026, 3, 31, 12, 30, tzinfo=UTC)
    values: dict[str, FieldValue] = {
        "period": "2026-03",
        "quota": "50000.00",
        "attainment": "0.8125",
        "payout": "-0.50",
        "updated_at": stamp,
    }
    [result] = case.adapter.write(RecordKind.REP, [RecordUpdate(user.id, values)])
    assert result.ok, result
    again = {u.id: u for u in case.adapter.read_users()}[user.id]
    assert again.fields["period"] == "2026-03"
    assert again.fields["quota"] == "50000.00"
    assert again.fields["attainment"] == "0.8125"
    assert again.fields["payout"] == "-0.50"
    assert again.fields["updated_at"] == "2026-03-31T12:30:00Z"


def test_usage_counts_calls(case: CrmCase) -> None:
    list(case.adapter.read_users(include_fields=False))
    usage = case.adapter.usage()
    assert usage.calls >= 1


def test_org_without_splits(make_salesforce_sandbox: MakeSalesforceSandbox) -> None:
    case = salesforce_case(make_salesforce_sandbox, splits=False)
    installed(case)
    assert case.adapter.read_splits(case.deal_ids()) is None
