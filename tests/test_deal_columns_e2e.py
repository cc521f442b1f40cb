"""Deal columns the plans name, read from the CRM: a multiplier by product line and a
holdback released when the customer pays, end to end on both sandboxes against `calc`.

An admin's own fields (a Salesforce Opportunity field, a HubSpot deal property)
are read because the plans name them; one the CRM does not have stops the sync
with an error naming it, instead of a filter that silently never matches.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from crm_sandbox.hubspot import HubSpotSandbox
from crm_sandbox.hubspot.records import USERS
from crm_sandbox.salesforce import SalesforceSandbox
from tests.crm_records import hubspot_records, portal_day, salesforce_records
from tests.crm_sync_helpers import calc_document, run, write_config
from tests.fixtures.hubspot_sandbox import MakeHubSpotSandbox
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox
from tests.test_goals_e2e import AS_OF, current


def plan_naming(product: str, paid: str) -> dict[str, Any]:
    return {
        "commission": {
            "tiers": [{"up_to": "1.0", "rate": "0.08"}, {"rate": "0.12"}],
            "multipliers": [{"when": {product: "Platform"}, "factor": "1.5"}],
        },
        "holdback": {"share": "0.2", "release": "payment", "paid_on": paid},
    }


def check(document: dict[str, Any], held: dict[str, Any], earnings: dict[str, Any]) -> None:
    statements = current(document)
    assert any(Decimal(s["held_back"]) for s in statements.values())
    for rep_id, statement in statements.items():
        assert Decimal(str(held[rep_id])) == Decimal(statement["held_back"]), rep_id
        assert Decimal(str(earnings[rep_id])) == Decimal(statement["earnings"]), rep_id
    rules = [ln["rule"] for s in document["statements"] for ln in s["lines"]]
    assert any("multiplier" in rule for rule in rules)
    assert any(rule.startswith("holdback released: deal") for rule in rules)


def marked(won: list[tuple[str, date]]) -> dict[str, dict[str, str]]:
    """Every third won deal a Platform deal; every other one paid twenty days after closing."""
    columns: dict[str, dict[str, str]] = {}
    for index, (deal_id, closed) in enumerate(won):
        if index % 3 == 0:
            columns.setdefault(deal_id, {})["product"] = "Platform"
        if index % 2 == 0:
            columns.setdefault(deal_id, {})["paid"] = (closed + timedelta(days=20)).isoformat()
    return columns


def test_salesforce_reads_the_opportunity_fields_the_plans_name(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    clock_now = datetime(2026, 12, 31, 9, tzinfo=UTC).timestamp()
    sandbox: SalesforceSandbox = make_salesforce_sandbox(reps=8, deals=200,
                                                         clock=lambda: clock_now)  # fmt: skip
    sandbox.add_deal_field("Product_Line__c", "string", "Product Line")
    sandbox.add_deal_field("Payment_Date__c", "date", "Payment Date")
    won = [(d["Id"], d["CloseDate"]) for d in sandbox.opportunities() if d["IsWon"]]
    names = {"product": "Product_Line__c", "paid": "Payment_Date__c"}
    for deal_id, values in marked(won).items():
        for key, value in values.items():
            sandbox.set_deal_field(deal_id, names[key], value)
    members = [u["Id"] for u in sandbox.users()]
    config = write_config(tmp_path, sandbox.settings()["crm"], members,
                          plan_extra=plan_naming("Product_Line__c", "Payment_Date__c"))  # fmt: skip
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    result = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output
    deals, splits, reps = salesforce_records(sandbox, list(names.values()))
    document = calc_document(config, tmp_path, deals, splits, AS_OF, reps)
    users = sandbox.users()
    check(document, {u["Id"]: u["SPM_Held_Back__c"] for u in users},
          {u["Id"]: u["SPM_Earnings__c"] for u in users})  # fmt: skip

    # A field the org does not have: the sync says which, and writes nothing.
    wrong = plan_naming("Product_Family__c", "Payment_Date__c")
    unknown = write_config(tmp_path, sandbox.settings()["crm"], members, plan_extra=wrong)
    refused = run(unknown, env, "sync", "--as-of", AS_OF.isoformat())
    assert refused.exit_code == 2, refused.output
    assert "Product_Family__c" in refused.output and "does not have" in refused.output


def hubspot_document(sandbox: HubSpotSandbox, config: Path, directory: Path,
                     names: dict[str, str]) -> Any:  # fmt: skip
    deals, splits, reps = hubspot_records(sandbox, list(names.values()))
    return calc_document(config, directory, deals, splits, AS_OF, reps)


def test_hubspot_reads_the_deal_properties_the_plans_name(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    sandbox = make_hubspot_sandbox(reps=8, deals=200)
    sandbox.add_deal_property("product_line", "string", "Product line")
    sandbox.add_deal_property("payment_date", "date", "Payment date")

    won = [(d["id"], portal_day(d["closedate"])) for d in sandbox.deals()
           if d["dealstage"] == "closedwon"]  # fmt: skip
    names = {"product": "product_line", "paid": "payment_date"}
    for deal_id, values in marked(won).items():
        for key, value in values.items():
            sandbox.set_deal_property(deal_id, names[key], value)
    owners = sandbox.owners()
    config = write_config(tmp_path, sandbox.settings()["crm"], [o["id"] for o in owners],
                          plan_extra=plan_naming("product_line", "payment_date"))  # fmt: skip
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    result = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output
    by_user = {r.properties["hs_internal_user_id"]: r.properties
               for r in sandbox.portal.stores[USERS].live()}  # fmt: skip
    props = {o["id"]: by_user[str(o["userId"])] for o in owners}
    check(hubspot_document(sandbox, config, tmp_path, names),
          {k: v.get("spm_held_back") for k, v in props.items()},
          {k: v.get("spm_earnings") for k, v in props.items()})  # fmt: skip
    members = [o["id"] for o in owners]
    unknown = write_config(tmp_path, sandbox.settings()["crm"], members,
                           plan_extra=plan_naming("product_family", "payment_date"))  # fmt: skip
    refused = run(unknown, env, "sync", "--as-of", AS_OF.isoformat())
    assert refused.exit_code == 2, refused.output
    assert "product_family" in refused.output and "does not have" in refused.output
