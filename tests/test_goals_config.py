"""Goal, team and CRM-quota settings: good ones load, each mistake is one message with its path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import cli
from connector.config import load_config
from connector.core.plan_checks import filter_problems
from connector.core.plans import GoalMetric, Payee, TargetSource, Team, TeamMember
from connector.errors import ConfigError

BASE = """\
currency: USD
period: month
{top}
plans:
  - id: ae
    start: 2026-01-01
    members: [r1, r2]
    quota: 10000
    commission: {{tiers: [{{rate: 0.1}}]}}
{plan}
"""


def config_text(plan: str = "", top: str = "") -> str:
    return BASE.format(plan=textwrap.indent(textwrap.dedent(plan), "    "), top=top)


def load(tmp_path: Path, plan: str = "", top: str = "") -> object:
    path = tmp_path / "spm.yaml"
    path.write_text(config_text(plan, top))
    return load_config(path)


def error_of(tmp_path: Path, plan: str = "", top: str = "") -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, plan, top)
    return str(caught.value).replace(str(tmp_path / "spm.yaml"), "spm.yaml")


def test_goals_teams_and_crm_quotas_load(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        quota_source: crm
        goals:
          - {metric: deals_won, target: 4, target_source: crm, target_overrides: {r2: 6}}
          - {id: logos, metric: new_customers, target: 2, when: {type: New Logo}, ramp: []}
          - {metric: revenue, team: true, target: 50000, target_overrides: {east: 60000}}
        bonuses:
          - {goal: logos, at: 1.0, amount: 200}
          - {goal: team_revenue, at: 1.0, amount: 900, pay: manager}
        """,
        top="teams:\n  - {id: east, manager: m, members: [r1, {id: r2, from: 2026-03-01}]}\n"
        "kpis: {lead_to_sale: true}",
    )
    plan = config.plans[0]  # type: ignore[attr-defined]
    assert plan.quota_source is TargetSource.CRM
    assert [g.key for g in plan.goals] == ["deals_won", "logos", "team_revenue"]
    assert plan.goals[0].metric is GoalMetric.DEALS_WON and plan.goals[0].target_for("r2") == 6
    assert plan.goals[1].ramp == ()
    assert plan.bonuses[1].pay is Payee.MANAGER
    teams = config.teams  # type: ignore[attr-defined]
    assert isinstance(teams[0], Team)
    assert teams[0].members[1] == TeamMember(id="r2", since="2026-03-01")
    assert config.kpis.lead_to_sale  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("plan", "top", "message"),
    [
        (
            "goals: [{metric: calls_made, target: 10}]",
            "",
            "spm.yaml: plans[0].goals[0].metric: must be 'revenue', 'deals_won' or 'new_customers'",
        ),
        (
            "goals: [{metric: revenue, team: true, target: 50000}]",
            "",
            "spm.yaml: plans[0].goals[0]: team_revenue is a team goal, but no teams are set: "
            "add `teams: crm`",
        ),
        (
            "goals: [{metric: revenue, target: 50000}]",
            "",
            "spm.yaml: plans[0].goals[0].metric: an individual revenue goal is the plan's quota",
        ),
        ("goals: [{metric: deals_won}]", "", "plans[0].goals[0].target: is required"),
        ("goals: [{metric: deals_won, target: 0}]", "", "target: must be greater than 0"),
        (
            "goals: [{metric: deals_won, target: 2}, {metric: deals_won, target: 3, id: more}]",
            "",
            "plans[0].goals[1]: goals[0] is already the individual deals_won goal",
        ),
        (
            "goals: [{metric: deals_won, target: 2}]\n"
            "bonuses: [{goal: deal_won, at: 1, amount: 5}]",
            "",
            "plans[0].bonuses[0].goal: 'deal_won' is not a goal of this plan (its goals: "
            "deals_won)",
        ),
        (
            "goals: [{metric: deals_won, target: 2}]\n"
            "bonuses: [{goal: deals_won, at: 1, amount: 5, pay: manager}]",
            "",
            "plans[0].bonuses[0].pay: deals_won is an individual goal",
        ),
        (
            "goals: [{metric: deals_won, team: true, target: 2, target_source: crm}]",
            "teams: crm",
            "target_source: crm quotas are per rep",
        ),
        (
            "goals: [{metric: deals_won, target: 2, target_overrides: {r9: 3}}]",
            "",
            "plans[0].goals[0].target_overrides.r9: is not one of the plan's members",
        ),
        ("goals: [{metric: deals_won, target: 2, id: Deals Won}]", "", "plans[0].goals[0].id"),
        ("", "teams: managers", "spm.yaml: teams: 'managers': give `crm`"),
        ("", "teams: [{id: east, members: [a]}, {id: east, members: [b]}]", "teams[1].id"),
        (
            "",
            "teams: [{id: east, members: [{id: a, from: 2026-05-01, until: 2026-04-01}]}]",
            "until: 2026-04-01 is before from 2026-05-01",
        ),
        ("", "kpis: {lead_to_sales: true}", "spm.yaml: kpis.lead_to_sales: unknown key"),
    ],
)
def test_each_mistake_is_one_clear_message(
    tmp_path: Path, plan: str, top: str, message: str
) -> None:
    assert message in error_of(tmp_path, plan, top)


def test_quota_source_crm_needs_no_quota(tmp_path: Path) -> None:
    text = config_text("quota_source: crm").replace("    quota: 10000\n", "")
    path = tmp_path / "spm.yaml"
    path.write_text(text)
    assert load_config(path).plans[0].quota is None


def test_a_goal_filter_naming_no_column_is_an_error_in_calc(tmp_path: Path) -> None:
    (tmp_path / "spm.yaml").write_text(
        config_text("goals: [{metric: new_customers, target: 1, when: {segment: SMB}}]")
    )
    (tmp_path / "deals.csv").write_text(
        "id,owner_id,amount,close_date,status,type\nd1,r1,100,2026-01-05,won,New Business\n"
    )
    result = CliRunner().invoke(
        cli,
        ["--config", str(tmp_path / "spm.yaml"), "calc", "--deals", str(tmp_path / "deals.csv")],
    )
    assert result.exit_code == 2
    assert result.output.strip().endswith(
        f"spm.yaml: plans[0].goals[0].when.segment: names no deal column of "
        f"{tmp_path / 'deals.csv'} (known: currency, id, owner_id, status, type)"
    ), result.output
    assert "Traceback" not in result.output


def test_goal_filters_are_checked_against_the_crms_deal_columns(tmp_path: Path) -> None:
    config = load(tmp_path, "goals: [{metric: deals_won, target: 1, when: {Segment__c: SMB}}]")
    plans = config.plans  # type: ignore[attr-defined]
    (problem,) = filter_problems(plans, {"Name", "StageName", "Type"}, "salesforce deals")
    assert problem.startswith(
        "plans[0].goals[0].when.Segment__c: names no deal column of salesforce deals"
    )
    assert filter_problems(plans, {"Segment__c"}, "x") == []


def test_goal_and_kpi_fields_can_be_renamed(tmp_path: Path) -> None:
    from connector.connect import field_specs

    top = (
        "crm: {type: salesforce, instance_url: 'https://acme.my.salesforce.com'}\n"
        "fields: {team_attainment: SPM_Team_Quota_Att__c, pace: Pace_To_Date__c}"
    )
    config = load(tmp_path, top=top)
    names = {spec.key: spec.salesforce for spec in field_specs(config)}  # type: ignore[arg-type]
    assert names["team_attainment"] == "SPM_Team_Quota_Att__c"
    assert names["pace"] == "Pace_To_Date__c"
    assert names["deals_won_attainment"] == "SPM_Deals_Won_Attainment__c"


def test_calc_csv_has_a_pair_of_columns_per_goal(tmp_path: Path) -> None:
    import csv
    import io

    (tmp_path / "spm.yaml").write_text(
        config_text("goals: [{metric: deals_won, target: 4}]").replace(
            "members: [r1, r2]", "members: [r1]"
        )
    )
    (tmp_path / "deals.csv").write_text(
        "id,owner_id,amount,close_date,status\nd1,r1,100,2026-01-05,won\nd2,r1,50,2026-01-06,won\n"
    )
    result = CliRunner().invoke(
        cli,
        [
            "--config", str(tmp_path / "spm.yaml"), "calc", "--deals", str(tmp_path / "deals.csv"),
            "--as-of", "2026-01-31", "--format", "csv",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    header, january = list(csv.reader(io.StringIO(result.stdout)))
    row = dict(zip(header, january, strict=True))
    assert header[-3:] == ["deals_won_actual", "deals_won_attainment", "lines"]
    assert (row["deals_won_actual"], row["deals_won_attainment"]) == ("2", "0.5000")


@pytest.mark.parametrize(
    ("top", "line"),
    [
        (
            "teams: [{id: east, members: [{id: a, from: 2026-05-01, until: 2026-04-01}]}]",
            "spm.yaml: teams[0].members[0].until: 2026-04-01 is before from 2026-05-01",
        ),
        (
            "teams: [{id: east, members: [{id: a, from: someday}]}]",
            "spm.yaml: teams[0].members[0].from: 'someday' is not a date (YYYY-MM-DD)",
        ),
        ("teams: [{id: east, members: [a], boss: m}]", "spm.yaml: teams[0].boss: unknown key"),
    ],
)
def test_a_mistake_inside_listed_teams_names_where_it_is_as_written(
    tmp_path: Path, top: str, line: str
) -> None:
    # Not pydantic's union internals: `teams.tuple[Team, ...][0].members[0].function-after[…]`.
    error = error_of(tmp_path, "", top)
    assert line in error.splitlines()
    assert not any(tag in error for tag in ("tuple[", "literal[", "function-", ".str", "Team"))
