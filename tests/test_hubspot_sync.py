"""`install` and `sync` for HubSpot end to end: the CLI, the real hubspot-api-client, the sandbox.

As for Salesforce, every figure written must equal what `spm-connector calc`
computes from a CSV export of the same portal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.adapters.retry import RetryPolicy
from connector.core.fields import CATALOGUE
from crm_sandbox.common import Faults
from crm_sandbox.hubspot import HubSpotSandbox
from crm_sandbox.hubspot.portal import DEAL_TYPE_VALUES
from crm_sandbox.hubspot.records import USERS
from tests.crm_sync_helpers import (
    OracleDeal,
    calc_statements,
    expected_deal_fields,
    expected_rep_fields,
    run,
    write_config,
)
from tests.fixtures.hubspot_sandbox import MakeHubSpotSandbox

AS_OF = date(2026, 12, 31)
TYPE_LABELS = {value: label for label, value in DEAL_TYPE_VALUES.items()}
WRITES = ("deal_batch_update", "user_batch_update")


RETRY_CEILING_S = 2.0  # HubSpot's Retry-After waits are honoured up to this
pytestmark = pytest.mark.usefixtures("fast_retries")


@dataclass
class Portal:
    sandbox: HubSpotSandbox
    config: Path
    env: dict[str, str]
    directory: Path

    def cli(self, *args: str) -> Any:
        return run(self.config, self.env, *args)

    def writes(self) -> list[int]:
        return [c.records for c in self.sandbox.calls.calls() if c.kind in WRITES]


def portal_for(sandbox: HubSpotSandbox, directory: Path) -> Portal:
    owners = sandbox.owners()
    # Members by owner id, and two by email to prove emails resolve.
    members = [o["id"] for o in owners[2:]] + [o["email"] for o in owners[:2]]
    config = write_config(directory, sandbox.settings()["crm"], members)
    return Portal(sandbox, config, dict(sandbox.settings()["env"]), directory)


@pytest.fixture
def portal(make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path) -> Iterator[Portal]:
    yield portal_for(make_hubspot_sandbox(reps=8, deals=300), tmp_path)


def installed(portal: Portal) -> None:
    result = portal.cli("install")
    assert result.exit_code == 0, result.output


def oracle(portal: Portal, as_of: date, cancelled: dict[str, date] | None = None) -> list[Any]:
    cancelled = cancelled or {}
    deals = []
    for d in portal.sandbox.deals():
        stage = d["dealstage"]
        status = "won" if stage == "closedwon" else "lost" if stage == "closedlost" else "open"
        if d["id"] in cancelled:
            status = "cancelled"
        close = datetime.fromisoformat(d["closedate"].replace("Z", "+00:00")).date()
        deals.append(
            OracleDeal(
                d["id"],
                d["hubspot_owner_id"],
                Decimal(d["amount"]),
                close,
                status,
                TYPE_LABELS.get(d.get("dealtype", ""), ""),
                cancelled.get(d["id"]),
                datetime.fromisoformat(d["createdate"].replace("Z", "+00:00")).date(),
            )
        )
    splits = [
        (deal_id, s.owner_id, s.fraction * 100)
        for deal_id, shares in portal.sandbox.portal.splits.items()
        for s in shares
    ]
    reps = [
        (o["id"], f"{o['firstName']} {o['lastName']}", o["email"], not o["archived"])
        for o in portal.sandbox.owners()
    ]
    return calc_statements(portal.config, portal.directory, deals, splits, as_of, reps)


def rep_records(sandbox: HubSpotSandbox) -> dict[str, dict[str, str]]:
    """Owner id → the users-object properties of that owner."""
    by_user_id = {
        r.properties["hs_internal_user_id"]: r.properties
        for r in sandbox.portal.stores[USERS].live()
    }
    return {o["id"]: by_user_id[str(o["userId"])] for o in sandbox.owners()}


def number(text: str | None) -> Decimal | None:
    return Decimal(text) if text not in (None, "") else None


def assert_crm_matches(portal: Portal, statements: list[Any], as_of: date) -> None:
    deals = portal.sandbox.deals()
    expected = expected_deal_fields(statements, {d["id"]: Decimal(d["amount"]) for d in deals})
    credited = 0
    for deal in deals:
        want = expected[deal["id"]]
        got = (
            number(deal.get("spm_commission")),
            number(deal.get("spm_commission_rate")),
            deal.get("spm_commission_period") or None,
            number(deal.get("spm_clawback")),
        )
        if want["commission"] is None:
            assert got == (None, None, None, None), deal["id"]
            continue
        credited += 1
        rate = want["rate"]
        assert isinstance(rate, Decimal)
        assert got == (
            want["commission"],
            rate.quantize(Decimal("0.000001")),
            want["period"],
            want["clawback"],
        ), deal["id"]
    assert credited > 50
    reps = expected_rep_fields(statements, as_of)
    records = rep_records(portal.sandbox)
    assert len(reps) == len(portal.sandbox.owners())
    for owner_id, want in reps.items():
        props = records[owner_id]
        assert props["spm_period"] == want["period"], owner_id
        for key in ("quota", "bookings", "earnings", "draw_paid", "draw_recovered"):
            assert number(props[f"spm_{key}"]) == Decimal(want[key]), (owner_id, key)
        assert number(props["spm_draw_balance"]) == Decimal(want["draw_balance"])
        assert number(props["spm_attainment"]) == Decimal(want["attainment"])
        assert number(props["spm_payout"]) == Decimal(want["payout"])
        assert number(props["spm_payout_ytd"]) == want["payout_ytd"]
        assert props["spm_updated_at"]


def test_install_is_idempotent(portal: Portal) -> None:
    dry = portal.cli("install", "--dry-run")
    assert dry.exit_code == 0 and "would create" in dry.output
    assert "property_create" not in portal.sandbox.calls.counts()
    result = portal.cli("install")
    assert result.exit_code == 0, result.output
    # HubSpot has no API for record layouts: install says what to click instead.
    assert "Record Customization" in result.output and "'Compensation'" in result.output
    assert portal.sandbox.calls.counts()["property_create"] == len(CATALOGUE)
    portal.sandbox.calls.reset()
    again = portal.cli("install")
    assert again.exit_code == 0, again.output
    assert "property_create" not in portal.sandbox.calls.counts()


def test_portal_refusing_user_properties_is_explained(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    portal = portal_for(
        make_hubspot_sandbox(reps=4, deals=20, users_custom_properties=False), tmp_path
    )
    result = portal.cli("install")
    assert result.exit_code == 2, result.output
    assert "does not accept our property group or properties on the 'users' object" in result.output
    assert "hubspot_rep_object" in result.output and "Traceback" not in result.output
    assert "spm_commission" in portal.sandbox.portal.property_defs("deals")


def test_full_sync_equals_calc_then_idle_then_incremental(portal: Portal) -> None:
    installed(portal)
    portal.sandbox.calls.reset()
    first = portal.cli("sync", "--as-of", AS_OF.isoformat())
    assert first.exit_code == 0, first.output
    assert_crm_matches(portal, oracle(portal, AS_OF), AS_OF)
    assert all(n <= 100 for n in portal.writes())

    portal.sandbox.calls.reset()
    idle = portal.cli("sync", "--as-of", AS_OF.isoformat())
    assert idle.exit_code == 0, idle.output
    assert portal.writes() == []

    deals = portal.sandbox.deals()
    open_deal = next(
        d for d in deals if d["dealstage"] == "appointmentscheduled" and d["closedate"] < "2026-12"
    )
    won = [d for d in deals if d["dealstage"] == "closedwon"]
    split_ids = {k for k, v in portal.sandbox.portal.splits.items() if v}
    # The reversed deal is a split one: its clawback must fall on every split rep.
    reversed_deal = next(d for d in won if d["id"] in split_ids)
    bigger = next(d for d in won if d["id"] != reversed_deal["id"])
    portal.sandbox.close_deal(open_deal["id"], won=True)
    portal.sandbox.set_amount(bigger["id"], Decimal(bigger["amount"]) + 10_000)
    portal.sandbox.reverse_deal(reversed_deal["id"])
    stamp = portal.sandbox.portal.deal(reversed_deal["id"]).updated_ms
    reversed_on = datetime.fromtimestamp(stamp / 1000, tz=UTC).date()
    as_of = max(AS_OF, reversed_on)

    portal.sandbox.calls.reset()
    third = portal.cli("sync", "--as-of", as_of.isoformat())
    assert third.exit_code == 0, third.output
    assert_crm_matches(portal, oracle(portal, as_of, {reversed_deal["id"]: reversed_on}), as_of)
    searched = sum(c.records for c in portal.sandbox.calls.calls("deal_search"))
    assert searched <= 10  # the three changes (and the boundary), not the portal


def test_partial_failures_and_503s_converge(portal: Portal) -> None:
    installed(portal)
    locked = [d["id"] for d in portal.sandbox.deals() if d["dealstage"] == "closedwon"][:5]
    portal.sandbox.faults.update(
        {"error_rate": 0.2, "locked_ids": locked, "lock_failures": 8, "seed": 5}
    )
    first = portal.cli("sync", "--as-of", AS_OF.isoformat())
    assert first.exit_code == 1, first.output
    assert "CONFLICT" in first.output
    assert portal.sandbox.calls.counts()["unavailable"] > 0
    for _ in range(3):
        again = portal.cli("sync", "--as-of", AS_OF.isoformat())
        if again.exit_code == 0:
            break
    assert again.exit_code == 0, again.output
    portal.sandbox.faults.update({"error_rate": 0.0, "locked_ids": []})
    assert_crm_matches(portal, oracle(portal, AS_OF), AS_OF)


def test_sync_under_a_tight_rate_limit(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    # 10 requests per window, the window shortened to half a second to keep the test fast.
    sandbox = make_hubspot_sandbox(
        reps=6, deals=150, faults=Faults(rate_limit=10, rate_window_s=0.5)
    )
    portal = portal_for(sandbox, tmp_path)
    installed(portal)
    result = portal.cli("sync", "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output
    assert_crm_matches(portal, oracle(portal, AS_OF), AS_OF)
    statuses = [c.status for c in sandbox.calls.calls()]
    assert statuses.count(429) <= 2  # paced from the headers; a 429 is waited out, not fatal


def test_more_than_ten_thousand_changes_read_exactly_once(
    make_hubspot_sandbox: MakeHubSpotSandbox,
) -> None:
    from pydantic import SecretStr

    from connector.adapters.hubspot import HubSpotAdapter, HubSpotSettings

    sandbox = make_hubspot_sandbox(reps=10, deals=12_500)
    adapter = HubSpotAdapter(
        # Search pacing (a few a second, as HubSpot asks) is what this test is not about.
        HubSpotSettings(base_url=sandbox.url, fields=(), searches_per_second=100),
        SecretStr(sandbox.token),
        retry=RetryPolicy(attempts=3, initial_s=0.01, maximum_s=0.05),
    )
    since = datetime(2025, 1, 1, tzinfo=UTC)
    ids = [d.id for d in adapter.read_deals(since)]
    assert len(ids) == len(set(ids)) == 12_500
    assert set(ids) == {d["id"] for d in sandbox.deals()}
    pages = sandbox.calls.calls("deal_search")
    assert sum(c.records for c in pages) <= 12_500 + 200  # one boundary page overlaps at most


def test_wrong_token_is_exit_3_without_the_token(portal: Portal) -> None:
    portal.env["SPM_HUBSPOT_ACCESS_TOKEN"] = "pat-na1-stolen-token-123"
    result = portal.cli("sync")
    assert result.exit_code == 3, result.output
    assert "refused the access token" in result.output
    assert "pat-na1-stolen-token-123" not in result.output and "Traceback" not in result.output


def test_sync_before_install_names_the_missing_property(portal: Portal) -> None:
    result = portal.cli("sync")
    assert result.exit_code == 2, result.output
    assert "spm_" in result.output and "spm-connector install" in result.output
