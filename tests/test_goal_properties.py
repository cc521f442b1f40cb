"""Property tests for goals and teams (calculation.md's invariants, docs/calculation.md §8-9)."""

from __future__ import annotations

import os
import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.core.goals import crm_team_spells
from connector.core.models import Deal, DealStatus, Rep, Split
from connector.core.periods import PeriodKind
from connector.core.plans import Plan
from connector.core.statements import Calculation, calculate

REPS = ("m1", "m2", "a", "b", "c", "d")
MANAGERS = {"a": "m1", "b": "m1", "c": "m2", "d": "m2"}
START = date(2026, 1, 1)

amounts = st.integers(min_value=-20_000, max_value=5_000_000).map(lambda c: Decimal(c) / 100)
days = st.integers(min_value=0, max_value=180).map(lambda d: START + timedelta(days=d))


@st.composite
def deals(draw: st.DrawFn) -> list[Deal]:
    count = draw(st.integers(min_value=0, max_value=25))
    result: list[Deal] = []
    for index in range(count):
        owner = draw(st.sampled_from((*REPS, "outsider")))
        splits: tuple[Split, ...] = ()
        if draw(st.booleans()) and owner != "outsider":
            partner = draw(st.sampled_from([r for r in REPS if r != owner]))
            share = Decimal(draw(st.integers(min_value=1, max_value=99)))
            splits = (Split(owner, Decimal(100) - share), Split(partner, share))
        result.append(
            Deal(
                id=f"d{index}",
                owner_id=owner,
                amount=draw(amounts),
                close_date=draw(days),
                status=draw(st.sampled_from([DealStatus.WON, DealStatus.WON, DealStatus.LOST])),
                type=draw(st.sampled_from(["New Business", "Renewal"])),
                splits=splits,
            )
        )
    return result


def team_plan(**extra: Any) -> Plan:
    return Plan.model_validate(
        {
            "id": "p",
            "start": START,
            "end": date(2026, 12, 31),
            "members": list(REPS),
            "quota": "20000",
            "commission": {"tiers": [{"up_to": "1", "rate": "0.1"}, {"rate": "0.15"}]},
            "goals": [
                {"metric": "deals_won", "target": "3"},
                {"metric": "new_customers", "target": "2"},
                {"metric": "revenue", "team": True, "target": "50000"},
                {"metric": "deals_won", "team": True, "target": "6"},
            ],
            "bonuses": [
                {"goal": "team_revenue", "at": "1", "amount": "400"},
                {"goal": "deals_won", "at": "1", "amount": "100"},
            ],
            **extra,
        }
    )


REP_RECORDS = [Rep(r, manager_id=MANAGERS.get(r)) for r in REPS]
SPELLS = crm_team_spells(REP_RECORDS)
AS_OF = date(2026, 6, 30)


def compute(deal_list: list[Deal], rep_ids: set[str] | None = None) -> Calculation:
    return calculate(
        [team_plan()],
        REP_RECORDS,
        deal_list,
        period_kind=PeriodKind.MONTH,
        as_of=AS_OF,
        rep_ids=rep_ids,
        teams=SPELLS,
    )


# bench/mutation.sh runs these once per mutant: it asks for fewer examples.
EXAMPLES = min(int(os.environ.get("SPM_PROPERTY_EXAMPLES", "60")), 60)
QUICK = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(deals())
def test_a_teams_credited_metric_is_the_sum_over_its_members(deal_list: list[Deal]) -> None:
    result = compute(deal_list)
    team_of = {rep: MANAGERS.get(rep, rep) for rep in REPS}  # managers lead their own team
    for team in result.teams:
        members = [
            s
            for s in result.statements
            if s.period == team.period and team_of[s.rep_id] == team.team_id
        ]
        assert sorted(s.rep_id for s in members) == list(team.members)
        if team.goal.metric == "revenue":
            assert team.goal.actual == sum((s.bookings for s in members), Decimal(0))
        else:
            individual = [g for s in members for g in s.goals if g.goal_id == "deals_won"]
            assert team.goal.actual == sum((g.actual for g in individual), Decimal(0))


@QUICK
@given(deals(), st.randoms(use_true_random=False))
def test_goal_results_do_not_depend_on_the_order_of_deals(
    deal_list: list[Deal], rng: random.Random
) -> None:
    shuffled = list(deal_list)
    rng.shuffle(shuffled)
    first, second = compute(deal_list), compute(shuffled)
    assert [s.goals for s in first.statements] == [s.goals for s in second.statements]
    assert first.teams == second.teams
    assert first.statements == second.statements


@QUICK
@given(deals(), st.sampled_from(REPS))
def test_recomputing_one_rep_gives_what_everyone_gives(deal_list: list[Deal], rep: str) -> None:
    everyone, one = compute(deal_list), compute(deal_list, {rep})
    wanted = {s.rep_id for s in one.statements}
    assert rep in wanted
    assert list(one.statements) == [s for s in everyone.statements if s.rep_id in wanted]
    mine = {t for t in everyone.teams if t.members and wanted & set(t.members)}
    assert mine <= set(one.teams)


@QUICK
@given(deals())
def test_count_goals_count_each_deal_once_across_its_split(deal_list: list[Deal]) -> None:
    result = compute(deal_list)
    by_period: dict[str, Decimal] = {}
    for s in result.statements:
        for g in s.goals:
            if g.goal_id == "deals_won":
                by_period[s.period] = by_period.get(s.period, Decimal(0)) + g.actual
    for period, total in by_period.items():
        won = [
            d
            for d in deal_list
            if d.status is DealStatus.WON
            and d.amount >= 0  # a won deal of 0.00 is a deal won; a credit note is not
            and d.close_date.strftime("%Y-%m") == period
            and (d.owner_id != "outsider" or d.splits)
        ]
        assert total == len(won)
