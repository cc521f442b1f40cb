"""Goals beyond the revenue quota, team goals, CRM quotas and the coaching KPIs.

Every expected figure was worked out by hand first; the arithmetic is in the comments.
The rules are written down in docs/calculation.md (sections 8 to 11).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from connector.core.goals import crm_team_spells, listed_team_spells
from connector.core.models import CrmQuota, Lead, LineKind, Rep, Statement, TeamSpell
from connector.core.periods import PeriodKind
from connector.core.plans import Team
from connector.errors import CalculationError

from .engine_helpers import deal, plan, run

D = Decimal
JAN5, JAN20, FEB10 = date(2026, 1, 5), date(2026, 1, 20), date(2026, 2, 10)


def statement(calculation: Any, rep_id: str, period: str) -> Statement:
    found: Statement = next(
        s for s in calculation.statements if s.rep_id == rep_id and s.period == period
    )
    return found


def goal(s: Statement, goal_id: str) -> Any:
    return next(g for g in s.goals if g.goal_id == goal_id)


def bonuses(s: Statement) -> list[tuple[str, str]]:
    return [(str(line.amount), line.rule) for line in s.lines if line.kind is LineKind.BONUS]


# --- count goals ----------------------------------------------------------------------------


def test_deals_won_counts_a_split_deal_by_the_reps_share() -> None:
    p = plan(members=["r1", "r2"], goals=[{"metric": "deals_won", "target": "4"}])
    deals = [
        deal("d1", "1000", JAN5),
        deal("d2", "3000", JAN20, splits=(("r1", "40"), ("r2", "60"))),
        deal("d3", "-200", JAN20),  # a credit note: money back, not a deal won
        deal("d4", "500", JAN20, status="lost"),
        deal("d5", "500", JAN20, status="open"),
    ]
    result = run(p, deals)
    r1, r2 = statement(result, "r1", "2026-01"), statement(result, "r2", "2026-01")
    # r1: d1 (1) + 40 % of d2 (0.4) = 1.4 of 4 = 0.35; r2: 0.6 of 4 = 0.15.
    assert (goal(r1, "deals_won").actual, goal(r1, "deals_won").attainment) == (
        D("1.4"),
        D("0.3500"),
    )
    assert goal(r2, "deals_won").actual == D("0.6")
    assert goal(r2, "deals_won").attainment == D("0.1500")
    # The sum over the split reps is the one deal: counts stay exact.
    assert goal(r1, "deals_won").actual + goal(r2, "deals_won").actual == D("2")


def test_new_customers_default_to_the_crms_new_business_type() -> None:
    p = plan(goals=[{"metric": "new_customers", "target": "2"}])
    deals = [
        deal("d1", "1000", JAN5, type="New Customer"),  # Salesforce's picklist value
        deal("d2", "1000", JAN5, type="New Business"),  # HubSpot's label
        deal("d3", "1000", JAN5, type="Existing Customer - Upgrade"),
        deal("d4", "1000", FEB10, type="New Business", status="lost"),
    ]
    jan = statement(run(p, deals), "r1", "2026-01")
    assert goal(jan, "new_customers").actual == D(2)
    assert goal(jan, "new_customers").attainment == D("1.0000")


def test_a_goal_filter_counts_only_matching_deals() -> None:
    p = plan(
        goals=[{"metric": "new_customers", "target": "1", "when": {"segment": "SMB"}}],
    )
    deals = [
        deal("d1", "1000", JAN5, segment="SMB"),
        deal("d2", "1000", JAN5, segment="Enterprise", type="New Business"),
    ]
    jan = statement(run(p, deals), "r1", "2026-01")
    assert goal(jan, "new_customers").actual == D(1)


def test_a_new_customer_counts_in_its_close_period_even_if_cancelled_later() -> None:
    p = plan(goals=[{"metric": "new_customers", "target": "1"}], clawback={"window_days": 90})
    deals = [
        deal("d1", "1000", JAN5, status="cancelled", cancel=FEB10, type="New Business"),
        deal(
            "d2", "1000", JAN20, status="cancelled", cancel=date(2026, 1, 25), type="New Business"
        ),
    ]
    result = run(p, deals)
    # d1 was won in January (paid then, clawed back in February): January's customer.
    # d2 was reversed in the month it closed: lost, no customer.
    assert goal(statement(result, "r1", "2026-01"), "new_customers").actual == D(1)
    assert goal(statement(result, "r1", "2026-02"), "new_customers").actual == D(0)


def test_goal_targets_ramp_and_overrides() -> None:
    p = plan(
        members=["r1", "r2"],
        ramp=["0.5"],
        goals=[
            {"metric": "deals_won", "target": "4", "target_overrides": {"r2": "6"}},
            {"metric": "new_customers", "target": "2", "ramp": []},
        ],
    )
    result = run(p, [deal("d1", "1000", JAN5)])
    r1_jan, r1_feb = statement(result, "r1", "2026-01"), statement(result, "r1", "2026-02")
    # The plan's ramp applies to a goal unless it gives its own: 4 × 0.5 = 2, then 4.
    assert goal(r1_jan, "deals_won").target == D("2.0")
    assert goal(r1_feb, "deals_won").target == D(4)
    assert goal(r1_jan, "new_customers").target == D(2)  # `ramp: []`: no ramp
    assert goal(statement(result, "r2", "2026-01"), "deals_won").target == D("3.0")


def test_a_bonus_can_name_the_goal_it_depends_on() -> None:
    p = plan(
        goals=[{"metric": "deals_won", "target": "2"}],
        bonuses=[
            {"goal": "deals_won", "at": "1.0", "amount": "300"},
            {"at": "1.0", "amount": "1000"},  # the quota's bonus
        ],
    )
    deals = [deal("d1", "1000", JAN5), deal("d2", "1000", JAN20), deal("d3", "1000", FEB10)]
    result = run(p, deals)
    # January: 2 deals of 2 (bonus), bookings 2,000 of 10,000 (no quota bonus).
    assert bonuses(statement(result, "r1", "2026-01")) == [
        ("300.00", "bonus for deals_won attainment >= 100%")
    ]
    assert bonuses(statement(result, "r1", "2026-02")) == []  # 1 of 2


# --- teams ----------------------------------------------------------------------------------


TEAM_PLAN: dict[str, Any] = {
    "members": ["m", "r1", "r2"],
    "goals": [{"metric": "revenue", "team": True, "target": "20000"}],
    "bonuses": [
        {"goal": "team_revenue", "at": "1.0", "amount": "500"},
        {"goal": "team_revenue", "at": "1.0", "amount": "2000", "pay": "manager"},
    ],
}
TEAM_REPS = [Rep("m"), Rep("r1", manager_id="m"), Rep("r2", manager_id="m")]


def test_a_team_goal_sums_the_members_credits_and_the_managers_own() -> None:
    deals = [
        deal("d1", "8000", JAN5, owner="r1"),
        deal("d2", "5000", JAN20, owner="r2", splits=(("r2", "50"), ("r1", "50"))),
        deal("d3", "9000", JAN20, owner="m"),  # the manager sells too
        deal("d4", "7000", JAN20, owner="x"),  # on no plan: no credit, no team figure
    ]
    result = run(plan(**TEAM_PLAN), deals, TEAM_REPS, teams=crm_team_spells(TEAM_REPS))
    # 8,000 + 2,500 + 2,500 + 9,000 = 22,000 of 20,000 = 110 %.
    for rep_id in ("m", "r1", "r2"):
        team = goal(statement(result, rep_id, "2026-01"), "team_revenue")
        assert (team.team_id, team.actual, team.attainment) == ("m", D(22000), D("1.1000"))
    # Members get the members' bonus; the manager (a member too) also gets the manager's.
    assert bonuses(statement(result, "r1", "2026-01")) == [
        ("500.00", "team bonus for team_revenue attainment >= 100%")
    ]
    assert [amount for amount, _ in bonuses(statement(result, "m", "2026-01"))] == [
        "500.00",
        "2000.00",
    ]
    (team_result,) = [t for t in result.teams if t.period == "2026-01"]
    assert team_result.manager_id == "m" and team_result.members == ("m", "r1", "r2")
    # February: no deals, 0 %, no bonus.
    assert goal(statement(result, "r1", "2026-02"), "team_revenue").attainment == D("0.0000")
    assert bonuses(statement(result, "r1", "2026-02")) == []


def test_a_manager_on_no_plan_is_shown_the_team_and_not_paid() -> None:
    spec = {**TEAM_PLAN, "members": ["r1", "r2"]}
    deals = [deal("d1", "25000", JAN5, owner="r1")]
    result = run(plan(**spec), deals, TEAM_REPS, teams=crm_team_spells(TEAM_REPS))
    (team_result,) = [t for t in result.teams if t.period == "2026-01"]
    assert team_result.manager_id == "m" and team_result.goal.attainment == D("1.2500")
    assert not any(s.rep_id == "m" for s in result.statements)
    assert any("manager m has no statement in 2026-01" in w.message for w in result.warnings)


def test_a_deal_counts_for_the_team_of_its_close_date() -> None:
    teams = [
        Team(id="east", manager="me", members=("a", {"id": "b", "until": "2026-01-15"})),
        Team(id="west", manager="mw", members=("c", {"id": "b", "from": "2026-01-16"})),
    ]
    reps = [Rep(x) for x in ("a", "b", "c")]
    spells = listed_team_spells(teams, reps)
    p = plan(
        members=["a", "b", "c"],
        goals=[{"metric": "deals_won", "team": True, "target": "2"}],
    )
    deals = [
        deal("d1", "1000", JAN5, owner="b"),  # b is in east on the 5th
        deal("d2", "1000", JAN20, owner="b"),  # and in west on the 20th
        deal("d3", "1000", JAN20, owner="a"),
    ]
    result = run(p, deals, reps, teams=spells)
    by_team = {t.team_id: t for t in result.teams if t.period == "2026-01"}
    assert by_team["east"].goal.actual == D(2)  # d1 and d3
    assert by_team["west"].goal.actual == D(1)  # d2
    # A member is shown (and paid by) the team they are on at the period's end: b is in west.
    assert by_team["west"].members == ("b", "c")
    assert goal(statement(result, "b", "2026-01"), "team_deals_won").team_id == "west"


def test_a_rep_on_two_listed_teams_at_once_is_an_error() -> None:
    teams = [Team(id="east", members=("a",)), Team(id="west", members=("a",))]
    with pytest.raises(CalculationError, match="rep a is on teams east and west"):
        listed_team_spells(teams, [Rep("a")])


def test_hubspot_teams_have_no_manager_unless_listed() -> None:
    reps = [Rep("o1", team_id="3100"), Rep("o2", team_id="3100")]
    spells = crm_team_spells(reps)
    assert spells == [TeamSpell("o1", "3100", None), TeamSpell("o2", "3100", None)]
    p = plan(**{**TEAM_PLAN, "members": ["o1", "o2"]})
    result = run(p, [deal("d1", "30000", JAN5, owner="o1")], reps, teams=spells)
    assert any("team 3100: has no manager" in w.message for w in result.warnings)
    assert goal(statement(result, "o2", "2026-01"), "team_revenue").attainment == D("1.5000")


def test_team_history_moves_a_rep_between_managers() -> None:
    reps = [Rep("m1"), Rep("m2"), Rep("r", manager_id="m2")]
    history = {"r": [(None, "m1", None), (date(2026, 1, 16), "m2", None)]}
    spells = crm_team_spells(reps, history)
    assert TeamSpell("r", "m1", "m1", None, date(2026, 1, 15)) in spells
    assert TeamSpell("r", "m2", "m2", date(2026, 1, 16), None) in spells


def test_recomputing_some_reps_includes_their_teammates() -> None:
    deals = [deal("d1", "8000", JAN5, owner="r1"), deal("d2", "15000", JAN20, owner="r2")]
    spells = crm_team_spells(TEAM_REPS)
    everyone = run(plan(**TEAM_PLAN), deals, TEAM_REPS, teams=spells)
    some = run(plan(**TEAM_PLAN), deals, TEAM_REPS, teams=spells, rep_ids={"r1"})
    assert {s.rep_id for s in some.statements} == {"m", "r1", "r2"}
    assert some.statements == everyone.statements
    assert some.teams == everyone.teams


# --- quotas from the CRM --------------------------------------------------------------------


def test_crm_quotas_replace_the_plans_and_add_up_in_a_quarter() -> None:
    p = plan(quota=None, quota_source="crm")
    quotas = [
        CrmQuota("r1", date(2026, 1, 1), D(5000)),
        CrmQuota("r1", date(2026, 2, 1), D(5000)),
        CrmQuota("r1", date(2026, 3, 1), D(10000)),
    ]
    result = run(
        p, [deal("d1", "10000", JAN5)], as_of=date(2026, 3, 31), kind=PeriodKind.QUARTER,
        crm_quotas=quotas,
    )  # fmt: skip
    (q1,) = result.statements
    assert (q1.quota, q1.attainment) == (D(20000), D("0.5000"))


def test_missing_crm_quotas_are_one_error_naming_every_rep_period() -> None:
    p = plan(members=["r1", "r2"], quota=None, quota_source="crm")
    quotas = [CrmQuota("r1", date(2026, 1, 1), D(5000)), CrmQuota("r1", date(2026, 2, 1), D(0))]
    with pytest.raises(CalculationError) as error:
        run(p, [], as_of=date(2026, 2, 28), crm_quotas=quotas)
    message = str(error.value)
    # A quota of 0 is no quota (an unset forecast shows 0): r1 February is missing too.
    assert "plan p: the CRM has no quota for rep r1 2026-02, rep r2 2026-01 to 2026-02" in message
    assert "fall back on" in message


def test_the_plans_quota_is_the_fallback_for_crm_quotas() -> None:
    p = plan(quota="8000", ramp=["0.5"], quota_source="crm")
    quotas = [CrmQuota("r1", date(2026, 2, 1), D(12000))]
    result = run(p, [], as_of=date(2026, 3, 31), crm_quotas=quotas)
    # January falls back (8,000 × ramp 0.5), February is the CRM's, March falls back.
    assert [s.quota for s in result.statements] == [D(4000), D(12000), D(8000)]


def test_count_goal_targets_from_crm_quantities() -> None:
    p = plan(goals=[{"metric": "deals_won", "target_source": "crm", "target": "3"}])
    quotas = [CrmQuota("r1", date(2026, 1, 1), None, D(5))]
    result = run(p, [deal("d1", "1000", JAN5)], as_of=date(2026, 2, 28), crm_quotas=quotas)
    assert goal(statement(result, "r1", "2026-01"), "deals_won").target == D(5)
    assert goal(statement(result, "r1", "2026-02"), "deals_won").target == D(3)  # fallback


# --- KPIs ------------------------------------------------------------------------------------


def test_kpis_by_hand() -> None:
    p = plan()  # quota 10,000; tiers at 100 % and 150 %
    deals = [
        deal("d1", "3000", JAN5, created=date(2025, 12, 6)),  # 30 days
        deal("d2", "1000", JAN20, created=date(2026, 1, 3)),  # 17 days
        deal("d3", "1000", JAN20, created=date(2026, 1, 19)),  # 1 day
        deal("d4", "6000", date(2026, 1, 28), status="open"),
        deal("d5", "500", JAN20, status="lost"),
    ]
    result = run(p, deals, as_of=date(2026, 1, 10), leads=[
        Lead("l1", "r1", JAN5, True), Lead("l2", "r1", JAN5, False), Lead("l3", "r1", JAN5, False),
        Lead("l4", "r1", FEB10, True),
    ])  # fmt: skip
    jan = statement(result, "r1", "2026-01")
    assert jan.sales_cycle_days == D("16.0")  # (30 + 17 + 1) / 3
    assert jan.pipeline_coverage == D("1.2000")  # 6,000 open ÷ (10,000 − 5,000)
    assert jan.pace == D("1.5500")  # 50 % ÷ 10/31 of the month gone by
    assert jan.to_next_tier == D("5000.00")  # 10,000 − 5,000
    assert jan.lead_to_sale == D("0.3333")  # 1 of 3 January leads
    assert jan.win_rate == D("0.7500") and jan.average_deal_size == D("1666.67")


def test_kpis_that_do_not_apply_are_empty() -> None:
    p = plan(commission={"tiers_on": "amount", "tiers": [{"rate": "0.1"}]}, quota=None)
    result = run(p, [deal("d1", "3000", JAN5)], as_of=date(2026, 1, 31))
    (jan,) = result.statements
    assert jan.sales_cycle_days is None  # no creation dates
    assert jan.pipeline_coverage is None and jan.pace is None  # no quota
    assert jan.to_next_tier is None  # one tier: always the last
    assert jan.lead_to_sale is None  # leads not read


def test_to_next_tier_at_a_bound_is_the_gap_to_the_next_one() -> None:
    result = run(plan(), [deal("d1", "10000", JAN5)], as_of=date(2026, 1, 31))
    (jan,) = result.statements
    # Exactly 100 %: the next dollar is already at 15 %, so the gap is to 150 %.
    assert jan.to_next_tier == D("5000.00")
    assert jan.pace == jan.attainment  # a month gone by whole: pace is attainment
    assert jan.pipeline_coverage is None  # quota met: nothing left to cover


@pytest.mark.parametrize(
    ("cycles", "expected"),
    [
        ((1, 1, 2, 2, 1), "1.4"),  # 7 / 5, exact
        ((1, 0, 0, 0), "0.3"),  # 1 / 4 = 0.25: half up
        ((1, 1, 2, 2, 1, 1, 2, 3), "1.6"),  # 13 / 8 = 1.625
        ((1, 1, 1), "1.0"),
    ],
)
def test_sales_cycle_rounds_half_up_to_a_tenth(cycles: tuple[int, ...], expected: str) -> None:
    deals = [
        deal(f"d{i}", "1000", JAN20, created=date(2026, 1, 20 - days))
        for i, days in enumerate(cycles)
    ]
    (jan,) = run(plan(), deals, as_of=date(2026, 1, 31)).statements
    assert jan.sales_cycle_days == D(expected)
    assert str(jan.sales_cycle_days) == expected  # one place, always


# --- what a rep reads -------------------------------------------------------------------------


def test_the_statement_shows_goals_and_kpis_within_80_columns() -> None:
    from connector.core.models import CrmUser
    from connector.views.statement import html, text, view_of

    deals = [
        deal("d1", "8000", JAN5, owner="r1", type="New Business", created=date(2025, 12, 6)),
        deal("d2", "15000", JAN20, owner="r2"),
    ]
    result = run(
        plan(**{**TEAM_PLAN, "goals": [*TEAM_PLAN["goals"], {"metric": "deals_won", "target": 2}]}),
        deals,
        TEAM_REPS,
        as_of=date(2026, 1, 31),
        teams=crm_team_spells(TEAM_REPS),
    )
    jan = statement(result, "r1", "2026-01")
    view = view_of(CrmUser("r1", "Riley", "r@x.example", True), [jan], jan, "USD", {})
    shown = text(view)
    assert all(len(line) <= 80 for line in shown.splitlines())
    assert "  deals_won: deals won" in shown and "50.00%" in shown  # 1 of 2
    assert "team_revenue: bookings" in shown and "    team m" in shown  # 23,000 of 20,000
    assert "115.00%" in shown
    assert "Sales cycle" in shown and "30.0 days" in shown
    page = html(view)
    assert "<h2>Goals</h2>" in page and "team m" in page and "30.0 days" in page


def test_a_statement_names_teams_and_says_when_a_count_is_split_credit() -> None:
    from connector.core.models import CrmUser, GoalResult, Statement
    from connector.views.statement import html, team_names, text, view_of

    users = [
        CrmUser("005M", "Dana Reyes", "dana@x.example", True),
        CrmUser("r1", "Riley", "r@x.example", True, manager_id="005M"),
    ]
    goals = (
        GoalResult("deals_won", "deals_won", None, D("3"), D("1.4"), D("0.4667")),
        GoalResult("team_revenue", "revenue", "005M", D(20000), D("22000.50"), D("1.1000")),
        GoalResult("team_deals_won", "deals_won", "9123", D("5"), D("4"), D("0.8000")),
    )
    money = dict.fromkeys(
        (
            "bookings", "commission", "spiffs", "bonuses", "clawbacks", "earnings", "draw",
            "draw_paid", "draw_recovered", "draw_balance", "draw_forgiven", "payout",
            "open_pipeline",
        ),
        D(0),
    )  # fmt: skip
    jan = Statement(
        rep_id="r1", plan_id="p", period="2026-01", quota=None, attainment=None, won_count=1,
        lost_count=0, win_rate=None, average_deal_size=None, lines=(), goals=goals, **money,
    )  # fmt: skip
    names = team_names(users, {"005M", "9123"})
    assert names == {"005M": "Dana Reyes's team"}  # a team no user leads keeps its id
    view = view_of(users[1], [jan], jan, "USD", {}, names)
    shown = text(view)
    assert all(len(line) <= 80 for line in shown.splitlines())
    assert "    split credit" in shown  # 1.4 deals won: shares of split deals
    assert "    Dana Reyes's team" in shown and "    team 9123" in shown
    assert "team 005M" not in shown
    page = html(view)
    assert "Dana Reyes&#39;s team" in page and "(split credit)" in page


def test_calcs_fast_goal_json_says_what_goal_texts_says() -> None:
    import json

    from connector.core.models import GoalResult
    from connector.views.calc import _json_goal, goal_texts

    goals = [
        GoalResult("deals_won", "deals_won", None, D("3.0"), D("1.4"), D("0.4667")),
        GoalResult("team_revenue", "revenue", 'm "1"', D(20000), D("22000.5"), D("1.1000")),
        GoalResult("new_customers", "new_customers", None, None, D(0), None),
    ]
    heads: dict[Any, str] = {}
    numbers: dict[Any, str] = {}
    for g in goals * 2:  # the second time from the caches
        assert json.loads(_json_goal(g, heads, numbers)) == goal_texts(g)


def test_smart_goals_have_a_deadline_and_a_pace_from_the_time_gone_by() -> None:
    """docs/goals.md: a deals-won goal of 6 a month; 2 won by 10 January is on pace
    (10 of 31 days gone: 2 ÷ (6 × 10/31) = 103.33 %); the deadline is 31 January."""
    from connector.core.models import CrmUser
    from connector.views.statement import html, text, view_of

    deals = [deal("d1", "1000", date(2026, 1, 3), owner="r1"),
             deal("d2", "1000", date(2026, 1, 8), owner="r1")]  # fmt: skip
    goals = {"goals": [{"metric": "deals_won", "target": 6}]}
    (jan,) = run(plan(**goals), deals, as_of=date(2026, 1, 10)).statements
    (found,) = jan.goals
    assert found.deadline == date(2026, 1, 31)
    assert found.pace == D("1.0333")
    # Before a fifth of the month has gone by, there is no pace yet.
    (early,) = run(plan(**goals), deals[:1], as_of=date(2026, 1, 5)).statements
    assert early.goals[0].pace is None and early.goals[0].deadline == date(2026, 1, 31)
    # A month that is over: its pace is its attainment.
    (later,) = run(plan(**goals), deals, as_of=date(2026, 1, 31)).statements
    assert later.goals[0].pace == later.goals[0].attainment == D("0.3333")
    view = view_of(CrmUser("r1", "Riley", "r@x.example", True), [jan], jan, "USD", {})
    assert "pace 103.33% (on pace), due 2026-01-31" in text(view)
    assert 'data-goal-pace="deals_won: deals won">103.33% (on pace)<' in html(view)
