"""Goals, team goals, CRM quotas and KPIs end to end on both sandboxes, against `calc`.

The sync reads the quotas (Salesforce ``ForecastingQuota``, HubSpot goal
targets), the teams (managers, HubSpot teams) and the leads from the CRM; the
oracle is `calc` on a CSV export of the same records. Every goal and KPI field
written must equal calc's figure, and every manager's record its team's.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crm_sandbox.hubspot import HubSpotSandbox
from crm_sandbox.hubspot.records import USERS
from crm_sandbox.salesforce import SalesforceSandbox
from tests.crm_records import hubspot_records, portal_day, salesforce_records
from tests.crm_sync_helpers import calc_document, run, write_config
from tests.fixtures.hubspot_sandbox import MakeHubSpotSandbox
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox

AS_OF = date(2026, 12, 31)

GOALS: dict[str, Any] = {
    "quota_source": "crm",  # the plan's quota below is the fallback (managers have none)
    "goals": [
        {"metric": "deals_won", "target": "3"},
        {"metric": "new_customers", "target": "2"},
        {"metric": "revenue", "team": True, "target": "150000"},  # a team of four or five
        {"metric": "deals_won", "team": True, "target": "10"},
    ],
    "bonuses": [
        {"at": "1.0", "amount": "500"},
        {"goal": "deals_won", "at": "1.0", "amount": "200"},
        {"goal": "team_revenue", "at": "1.0", "amount": "1000"},
        {"goal": "team_revenue", "at": "1.0", "amount": "2500", "pay": "manager"},
    ],
}
EXTRA = {"teams": "crm", "kpis": {"lead_to_sale": True}}
# Rep fields the goals and KPIs write, and the statement figure each shows.
KPI_FIELDS = (
    "win_rate",
    "average_deal_size",
    "sales_cycle_days",
    "pipeline_coverage",
    "pace",
    "to_next_tier",
    "lead_to_sale",
    "quota",
    "attainment",
)
GOAL_FIELDS = {
    ("deals_won", False): "deals_won_attainment",
    ("new_customers", False): "new_customers_attainment",
    ("revenue", True): "team_attainment",
    ("deals_won", True): "team_deals_won_attainment",
}


def current(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per rep, the as-of period's statement."""
    period = AS_OF.strftime("%Y-%m")
    return {s["rep_id"]: s for s in document["statements"] if s["period"] == period}


def pace_field(attainment_field: str) -> str:
    """The field showing a goal's pace beside the one showing its attainment."""
    return attainment_field.replace("team_attainment", "team_pace").replace("_attainment", "_pace")


def expected_goal_fields(document: dict[str, Any]) -> dict[str, dict[str, str | None]]:
    """Per rep: each goal field's attainment and pace (members from statements, managers
    from teams)."""
    expected: dict[str, dict[str, str | None]] = {}
    for rep_id, statement in current(document).items():
        values: dict[str, str | None] = dict.fromkeys(GOAL_FIELDS.values())
        values.update(dict.fromkeys(pace_field(f) for f in GOAL_FIELDS.values()))
        for goal in statement["goals"]:
            key = GOAL_FIELDS[goal["metric"], goal["team"] is not None]
            values[key], values[pace_field(key)] = goal["attainment"], goal["pace"]
            assert goal["deadline"] == AS_OF.isoformat()  # the period's last day
        expected[rep_id] = values
    for team in document["teams"]:
        if team["period"] == AS_OF.strftime("%Y-%m") and team["manager_id"]:
            key = GOAL_FIELDS[team["goal"]["metric"], True]
            found = expected.setdefault(team["manager_id"], {})
            found[key], found[pace_field(key)] = team["goal"]["attainment"], team["goal"]["pace"]
    return expected


def same(got: Any, want: str | None, percent: bool = False) -> bool:
    if want is None:
        return got in (None, "")
    value = Decimal(str(got))
    return value == (Decimal(want) * 100 if percent else Decimal(want))


def check_summary(output: str) -> None:
    assert "quotas: " in output and "read from the CRM" in output, output
    assert "for the lead-to-sale ratio (" in output and "API calls)" in output, output


# --- Salesforce ------------------------------------------------------------------------------


def salesforce_oracle(sandbox: SalesforceSandbox, config: Path, directory: Path) -> Any:
    deals, splits, reps = salesforce_records(sandbox)
    quotas = [
        (
            q["QuotaOwnerId"],
            q["StartDate"],
            None if q["IsQuantity"] else q["QuotaAmount"],
            q["QuotaQuantity"] if q["IsQuantity"] else None,
        )
        for q in sandbox.quotas()
    ]
    leads = [
        (lead["Id"], lead["OwnerId"], lead["CreatedDate"].date(), lead["IsConverted"])
        for lead in sandbox.leads()
    ]
    return calc_document(config, directory, deals, splits, AS_OF, reps, quotas, leads)


def salesforce_config(sandbox: SalesforceSandbox, directory: Path) -> Path:
    users = sandbox.users()
    goals = {**GOALS, "goals": [dict(GOALS["goals"][0], target_source="crm"), *GOALS["goals"][1:]]}
    return write_config(
        directory,
        sandbox.settings()["crm"],
        [u["Id"] for u in users],
        plan_extra=goals,
        extra=EXTRA,
    )


def installed_salesforce(
    make_salesforce_sandbox: MakeSalesforceSandbox, directory: Path
) -> tuple[SalesforceSandbox, Path, dict[str, str]]:
    """A 12-user org (two managers) on the org's clock of 31 December, installed."""
    clock_now = datetime(2026, 12, 31, 9, tzinfo=UTC).timestamp()
    sandbox = make_salesforce_sandbox(reps=12, deals=300, clock=lambda: clock_now)
    config = salesforce_config(sandbox, directory)
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    return sandbox, config, env


def test_salesforce_goals_teams_quotas_and_kpis_equal_calc(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    sandbox, config, env = installed_salesforce(make_salesforce_sandbox, tmp_path)
    result = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output
    check_summary(result.output)
    document = salesforce_oracle(sandbox, config, tmp_path)
    statements = current(document)
    assert len({t["team"] for t in document["teams"]}) == 2  # two managers, two teams
    users = {u["Id"]: u for u in sandbox.users()}
    for rep_id, want in statements.items():
        user = users[rep_id]
        for key in KPI_FIELDS:
            field = "SPM_" + "_".join(p.capitalize() for p in key.split("_")) + "__c"
            percent = key in ("win_rate", "pace", "lead_to_sale", "attainment")
            assert same(user[field], want[key], percent), (rep_id, key, user[field], want[key])
    checked_managers = 0
    for rep_id, values in expected_goal_fields(document).items():
        user = users[rep_id]
        for key, want in values.items():
            field = "SPM_" + "_".join(p.capitalize() for p in key.split("_")) + "__c"
            assert same(user[field], want, percent=True), (rep_id, key, user[field], want)
        checked_managers += rep_id in {t["manager_id"] for t in document["teams"]}
    assert checked_managers == 2
    # Counts come from the CRM's quantities; a quota in the CRM replaced the plan's.
    sample = next(s for s in statements.values() if s["goals"][0]["target"] != "3")
    assert sample["quota"] != "150000.00"
    # A second sync with nothing new writes nothing.
    again = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert again.exit_code == 0 and "written: 0 fields" in again.output, again.output


def test_salesforce_team_move_recomputes_both_teams(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    sandbox, config, env = installed_salesforce(make_salesforce_sandbox, tmp_path)
    assert run(config, env, "sync", "--as-of", AS_OF.isoformat()).exit_code == 0
    users = sandbox.users()
    managers = sorted({u["ManagerId"] for u in users if u["ManagerId"]})
    mover = next(u for u in users if u["ManagerId"] == managers[0])
    sandbox.set_manager(mover["Id"], managers[1])
    result = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output
    # The store saw the move on the day of this sync (the engine's clock): deals closed
    # before it count for the old team, deals closed since for the new one.
    moved_on = datetime.now(UTC).date()
    since = AS_OF.strftime("%Y-%m")

    def team_in(period: str) -> str:
        shown = run(config, env, "statement", mover["Id"], "--period", period, "--format", "json")
        assert shown.exit_code == 0, shown.output
        (statement,) = json.loads(shown.stdout)["statements"]
        return str(next(g["team"] for g in statement["goals"] if g["id"] == "team_revenue"))

    # A period shows the team of its last day: June's is before the move (old team);
    # December's (ending on the as-of day) is after it, unless this runs after 2026.
    assert team_in("2026-06") == managers[0]
    assert team_in(since) == (managers[1] if moved_on <= AS_OF else managers[0])
    if moved_on > AS_OF:
        return
    # Both managers' records were recomputed: December's team attainment equals calc's
    # when December's deals all close after the move (calc knows only the current teams).
    if moved_on > date(2026, 12, 1):
        return
    document = salesforce_oracle(sandbox, config, tmp_path)
    by_user = {u["Id"]: u for u in sandbox.users()}
    for manager in managers:
        team = next(
            t
            for t in document["teams"]
            if t["manager_id"] == manager
            and t["period"] == since
            and t["goal"]["metric"] == "revenue"
        )
        got = by_user[manager]["SPM_Team_Attainment__c"]
        assert same(got, team["goal"]["attainment"], percent=True), (manager, got, team)


def test_salesforce_without_forecasting_says_so(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    sandbox = make_salesforce_sandbox(reps=6, deals=50, forecasting=False)
    config = salesforce_config(sandbox, tmp_path)
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    result = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert result.exit_code == 2, result.output
    assert "no ForecastingQuota" in result.output and "Traceback" not in result.output


# --- HubSpot ---------------------------------------------------------------------------------


def hubspot_oracle(sandbox: HubSpotSandbox, config: Path, directory: Path) -> Any:
    deals, splits, reps = hubspot_records(sandbox)
    day = portal_day
    owners = sandbox.owners()
    by_user = {str(o["userId"]): o["id"] for o in owners}
    quotas = [
        (
            by_user[g["hs_assignee_user_id"]],
            day(g["hs_start_datetime"]),
            g["hs_target_amount"],
            None,
        )
        for g in sandbox.goal_targets()
    ]
    leads = [
        (c["id"], c["hubspot_owner_id"], day(c["createdate"]), c["lifecyclestage"] == "customer")
        for c in sandbox.contacts()
    ]
    return calc_document(config, directory, deals, splits, AS_OF, reps, quotas, leads)


def test_hubspot_goals_teams_quotas_and_kpis_equal_calc(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path
) -> None:
    sandbox = make_hubspot_sandbox(reps=12, deals=300)
    owners = sandbox.owners()
    # Teams from the CRM: each owner's primary HubSpot team.
    config = write_config(
        tmp_path,
        sandbox.settings()["crm"],
        [o["id"] for o in owners],
        plan_extra=GOALS,
        extra=EXTRA,
    )
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    result = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output
    check_summary(result.output)
    document = hubspot_oracle(sandbox, config, tmp_path)
    assert len({t["team"] for t in document["teams"]}) == 2
    by_user_id = {r.properties["hs_internal_user_id"]: r.properties
                  for r in sandbox.portal.stores[USERS].live()}  # fmt: skip
    records = {o["id"]: by_user_id[str(o["userId"])] for o in owners}
    for rep_id, want in current(document).items():
        props = records[rep_id]
        for key in KPI_FIELDS:
            assert same(props.get(f"spm_{key}"), want[key]), (rep_id, key)
    for rep_id, values in expected_goal_fields(document).items():
        for key, want in values.items():
            assert same(records[rep_id].get(f"spm_{key}"), want), (rep_id, key)
    # HubSpot teams name no manager: the manager's team bonus is not paid, and says why.
    assert "has no manager" in result.output
    again = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    assert again.exit_code == 0 and "written: 0 fields" in again.output, again.output


@pytest.mark.parametrize("goal_name", ["Revenue 2026", "Calls made"])
def test_hubspot_quota_goal_picks_the_goal_targets(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path, goal_name: str
) -> None:
    sandbox = make_hubspot_sandbox(reps=6, deals=60)
    crm = {**sandbox.settings()["crm"], "quota_goal": goal_name}
    assigned = {g["hs_assignee_user_id"] for g in sandbox.goal_targets()}
    sellers = [o["id"] for o in sandbox.owners() if str(o["userId"]) in assigned]
    config = write_config(
        tmp_path,
        crm,
        sellers,
        plan_extra={"quota_source": "crm", "quota": None},
    )
    env = dict(sandbox.settings()["env"])
    assert run(config, env, "install").exit_code == 0
    result = run(config, env, "sync", "--as-of", AS_OF.isoformat())
    if goal_name == "Revenue 2026":
        assert result.exit_code == 0, result.output
    else:
        # No targets of that goal, and no fallback: one error naming the rep-periods.
        assert result.exit_code == 2, result.output
        assert f"the CRM has no quota for rep {sellers[0]} 2026-01 to 2026-12" in result.output
