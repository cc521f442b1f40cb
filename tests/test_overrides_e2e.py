"""Manager overrides end to end on both sandboxes, against `calc` on the same records.

Salesforce managers come from ``User.ManagerId``; HubSpot teams name no manager,
so spm.yaml's ``team_managers`` names them. Every rep's overrides field must
equal calc's figure, and after a seller's deal changes, an incremental sync
rewrites the manager's field to calc's new figure.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from crm_sandbox.hubspot.portal import OWNER_ID_BASE, TEAM_ID_BASE
from crm_sandbox.hubspot.records import USERS
from tests.crm_sync_helpers import run, write_config
from tests.fixtures.hubspot_sandbox import MakeHubSpotSandbox
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox
from tests.test_goals_e2e import AS_OF, current, hubspot_oracle, salesforce_oracle

OVERRIDE = {"override": {"rate": "0.02", "depth": "all"}}


def check(fields: dict[str, Any], document: dict[str, Any]) -> int:
    """Every rep's overrides field equals calc's; returns how many managers earn one."""
    earning = 0
    for rep_id, statement in current(document).items():
        got = fields[rep_id]
        assert got not in (None, "") and Decimal(str(got)) == Decimal(statement["overrides"]), (
            rep_id, got, statement["overrides"]
        )  # fmt: skip
        earning += Decimal(statement["overrides"]) != 0
    return earning


def test_salesforce_managers_earn_overrides_equal_to_calc(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    clock_now = datetime(2026, 12, 31, 9, tzinfo=UTC).timestamp()
    sandbox = make_salesforce_sandbox(reps=12, deals=300, clock=lambda: clock_now)
    users = sandbox.users()
    config = write_config(tmp_path, sandbox.settings()["crm"], [u["Id"] for u in users],
                          plan_extra=OVERRIDE)  # fmt: skip
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    result = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output

    def fields() -> dict[str, Any]:
        return {u["Id"]: u["SPM_Overrides__c"] for u in sandbox.users()}

    assert check(fields(), salesforce_oracle(sandbox, config, tmp_path)) == 2  # two managers
    # A seller's December deal changes: the incremental sync moves their manager's figure.
    sellers = {u["Id"] for u in users if u["ManagerId"]}
    deal = next(d for d in sandbox.opportunities()
                if d["OwnerId"] in sellers and d["IsWon"]
                and str(d["CloseDate"]).startswith("2026-12"))  # fmt: skip
    manager = next(u["ManagerId"] for u in users if u["Id"] == deal["OwnerId"])
    before = fields()[manager]
    sandbox.set_amount(deal["Id"], Decimal(str(deal["Amount"])) + 10_000)
    again = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert again.exit_code == 0, again.output
    assert Decimal(str(fields()[manager])) == Decimal(str(before)) + Decimal("200.00")
    check(fields(), salesforce_oracle(sandbox, config, tmp_path))


def test_hubspot_team_managers_earn_overrides_equal_to_calc(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    sandbox = make_hubspot_sandbox(reps=12, deals=300)
    owners = sandbox.owners()
    teams = {str(t["id"]) for o in owners for t in o["teams"]}
    # Each seeded team is led by the manager it is named after.
    managers = {team: str(OWNER_ID_BASE + int(team) - TEAM_ID_BASE) for team in teams}
    config = write_config(tmp_path, sandbox.settings()["crm"], [o["id"] for o in owners],
                          plan_extra=OVERRIDE, extra={"team_managers": managers})  # fmt: skip
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    result = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output

    def fields() -> dict[str, Any]:
        by_user = {r.properties["hs_internal_user_id"]: r.properties
                   for r in sandbox.portal.stores[USERS].live()}  # fmt: skip
        return {o["id"]: by_user[str(o["userId"])].get("spm_overrides") for o in owners}

    assert check(fields(), hubspot_oracle(sandbox, config, tmp_path)) == 2
    sellers = {o["id"] for o in owners if o["id"] not in managers.values()}
    deal = next(d for d in sandbox.deals()
                if d["hubspot_owner_id"] in sellers and d["dealstage"] == "closedwon"
                and d["closedate"].startswith("2026-12"))  # fmt: skip
    owner = next(o for o in owners if o["id"] == deal["hubspot_owner_id"])
    manager = managers[str(owner["teams"][0]["id"])]
    before = fields()[manager]
    sandbox.set_amount(deal["id"], Decimal(deal["amount"]) + 10_000)
    again = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert again.exit_code == 0, again.output
    assert Decimal(str(fields()[manager])) == Decimal(str(before)) + Decimal("200.00")
    check(fields(), hubspot_oracle(sandbox, config, tmp_path))
