"""Manager overrides: the worked examples of docs/calculation.md §16, and properties."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.core.closing import Books
from connector.core.models import Deal, DealStatus, LineKind, Rep, Split, Statement, TeamSpell
from connector.core.overrides import ReportingLines, reporting_lines
from connector.core.periods import PeriodKind
from connector.core.plans import Plan
from connector.core.statements import calculate
from tests.test_engine_properties import common

MONTH = PeriodKind.MONTH
REPS = [
    Rep("dana"),
    Rep("morgan", manager_id="dana"),
    Rep("riley", manager_id="morgan"),
    Rep("sam", manager_id="morgan"),
]
SELLERS = Plan.model_validate({
    "id": "ae", "start": "2026-01-01", "members": ["riley", "sam"],
    "commission": {"tiers_on": "amount", "tiers": [{"rate": "0.10"}]},
    "clawback": {"window_days": 90},
})  # fmt: skip
MANAGERS: dict[str, Any] = {
    "id": "mgr", "start": "2026-01-01", "members": ["morgan", "dana"],
    "commission": {"tiers_on": "amount", "tiers": [{"rate": "0.10"}]},
    "override": {"tiers": [{"up_to": "15000", "rate": "0.02"}, {"rate": "0.03"}], "depth": "all"},
    "clawback": {"window_days": 90},
}  # fmt: skip


def won(deal_id: str, owner: str, amount: str, day: date, **extra: Any) -> Deal:
    return Deal(deal_id, owner, Decimal(amount), day, DealStatus.WON, **extra)


def statements(
    plans: list[Plan], reps: list[Rep], deals: list[Deal], as_of: date, **options: Any
) -> dict[tuple[str, str], Statement]:
    lines = options.pop("reporting", None) or reporting_lines(reps)
    result = calculate(
        plans, reps, deals, period_kind=MONTH, as_of=as_of, reporting=lines, **options
    )
    return {(s.rep_id, s.period): s for s in result.statements}


def overrides(statement: Statement) -> list[tuple[str | None, Decimal]]:
    return [(ln.deal_id, ln.amount) for ln in statement.lines if ln.kind is LineKind.OVERRIDE]


JANUARY = [
    won("D1", "riley", "10000", date(2026, 1, 5)),
    Deal("D2", "sam", Decimal(8000), date(2026, 1, 9), DealStatus.CANCELLED,
         cancel_date=date(2026, 2, 3)),
    won("D3", "morgan", "1000", date(2026, 1, 9)),
]  # fmt: skip


def test_the_worked_example_pays_each_level_on_its_team_bookings() -> None:
    result = statements([SELLERS, Plan.model_validate(MANAGERS)], REPS, JANUARY, date(2026, 2, 28))
    morgan, dana = result["morgan", "2026-01"], result["dana", "2026-01"]
    assert overrides(morgan) == [("D1", Decimal("200.00")), ("D2", Decimal("190.00"))]
    assert morgan.overrides == Decimal("390.00")
    assert morgan.commission == Decimal("100.00")  # own deal D3, unchanged
    assert morgan.earnings == Decimal("490.00")
    assert overrides(dana) == [
        ("D1", Decimal("200.00")), ("D2", Decimal("190.00")), ("D3", Decimal("30.00"))
    ]  # fmt: skip
    assert dana.overrides == Decimal("420.00")
    rules = [ln.rule for ln in morgan.lines if ln.kind is LineKind.OVERRIDE]
    assert "rep riley's credit for deal D1 (a direct report)" in rules[0]
    assert "tiers 1-2 blended" in rules[1]
    assert "2 levels below" in next(ln.rule for ln in dana.lines if ln.deal_id == "D1")
    # Sam's deal is cancelled inside the window: both overrides are reversed in February.
    for manager in ("morgan", "dana"):
        february = result[manager, "2026-02"]
        assert overrides(february) == [("D2", Decimal("-190.00"))]
        assert february.earnings == Decimal("-190.00")
    # The sellers' own statements are what they were without overrides.
    assert result["riley", "2026-01"].earnings == Decimal("1000.00")


def test_depth_one_pays_direct_reports_only() -> None:
    plan = Plan.model_validate({**MANAGERS, "override": {"rate": "0.02", "depth": 1}})
    result = statements([SELLERS, plan], REPS, JANUARY, date(2026, 1, 31))
    assert overrides(result["dana", "2026-01"]) == [("D3", Decimal("20.00"))]  # Morgan's deal
    assert result["morgan", "2026-01"].overrides == Decimal("360.00")  # 2 % of 18,000


def test_a_rep_who_moves_counts_for_the_manager_at_each_close() -> None:
    history = {
        "riley": [(None, "morgan", None), (date(2026, 3, 15), "alex", None)],
        "morgan": [(None, "dana", None)],
        "alex": [(None, "dana", None)],
    }
    reps = [*REPS, Rep("alex", manager_id="dana")]
    plan = Plan.model_validate({**MANAGERS, "members": ["morgan", "dana", "alex"],
                                "override": {"rate": "0.02"}})  # fmt: skip
    deals = [won("M1", "riley", "1000", date(2026, 3, 10)),
             won("M2", "riley", "2000", date(2026, 3, 20))]  # fmt: skip
    result = statements([SELLERS, plan], reps, deals, date(2026, 3, 31),
                        reporting=reporting_lines(reps, history))  # fmt: skip
    assert overrides(result["morgan", "2026-03"]) == [("M1", Decimal("20.00"))]
    assert overrides(result["alex", "2026-03"]) == [("M2", Decimal("40.00"))]


def test_a_listed_teams_manager_and_a_crm_teams_manager_take_precedence() -> None:
    reps = [Rep("lead"), Rep("hs_lead"), Rep("r1", manager_id="someone", team_id="T9"),
            Rep("r2", team_id="T9")]  # fmt: skip
    listed = [TeamSpell("r1", "west", "lead")]
    lines = reporting_lines(reps, None, listed, {"T9": "hs_lead"})
    day = date(2026, 1, 1)
    assert lines.manager_of("r1", day) == "lead"  # the listed team
    assert lines.manager_of("r2", day) == "hs_lead"  # the HubSpot team's named manager
    by_email = reporting_lines([Rep("r3", team_id="T1")], None, (), {"T1": "Boss@x.io"},
                               {"boss@x.io": "u7"})  # fmt: skip
    assert by_email.manager_of("r3", day) == "u7"


def test_a_loop_in_the_crm_ends_the_chain() -> None:
    lines = ReportingLines({"a": [(None, None, "b")], "b": [(None, None, "a")]})
    assert lines.above("a", date(2026, 1, 1)) == ["b"]


def test_a_split_deal_pays_each_reps_own_manager() -> None:
    reps = [*REPS, Rep("alex", manager_id="dana")]
    plan = Plan.model_validate({**MANAGERS, "members": ["morgan", "alex"],
                                "override": {"rate": "0.05"}})  # fmt: skip
    # Alex, a manager selling on the deal, takes a share; Riley's share pays Morgan.
    deal = won("S1", "riley", "1000", date(2026, 1, 5),
               splits=(Split("riley", Decimal(60)), Split("alex", Decimal(40))))  # fmt: skip
    result = statements([SELLERS, plan], reps, [deal], date(2026, 1, 31))
    assert overrides(result["morgan", "2026-01"]) == [("S1", Decimal("30.00"))]
    assert result["alex", "2026-01"].overrides == Decimal(0)  # Alex's own share: no override


def test_recomputing_one_rep_recomputes_their_managers_exactly() -> None:
    plans = [SELLERS, Plan.model_validate(MANAGERS)]
    full = statements(plans, REPS, JANUARY, date(2026, 2, 28))
    part = statements(plans, REPS, JANUARY, date(2026, 2, 28), rep_ids={"riley"})
    assert part["morgan", "2026-01"] == full["morgan", "2026-01"]
    assert part["dana", "2026-02"] == full["dana", "2026-02"]


def test_a_closed_managers_late_change_lands_with_the_bonuses_not_on_the_deal() -> None:
    plans = [SELLERS, Plan.model_validate({**MANAGERS, "override": {"rate": "0.02"}})]
    deals = [won("D1", "riley", "10000", date(2026, 1, 5))]
    closed = calculate(plans, REPS, deals, period_kind=MONTH, as_of=date(2026, 1, 31),
                       reporting=reporting_lines(REPS))  # fmt: skip
    books = Books("2026-01", closed.statements)
    later = [won("D1", "riley", "12000", date(2026, 1, 5))]
    result = statements(plans, REPS, later, date(2026, 2, 28), books=books)
    (adjustment,) = [ln for ln in result["morgan", "2026-02"].lines
                     if ln.kind is LineKind.ADJUSTMENT]  # fmt: skip
    assert adjustment.amount == Decimal("40.00") and adjustment.deal_id is None
    assert "overrides and true-ups recomputed" in adjustment.rule


def test_the_plan_refuses_an_override_it_cannot_pay() -> None:
    for override, said in (
        ({"depth": 1}, "exactly one of rate"),
        ({"rate": "0.02", "tiers": [{"rate": "0.01"}]}, "exactly one of rate"),
        ({"rate": "0.02", "depth": "none"}, "or all"),
        ({"rate": "2"}, "between 0 and 1"),
        ({"tiers": [{"up_to": "10", "rate": "0.01"}], "depth": 1}, "last tier"),
        ({"tiers": [{"rate": "0.01"}], "tiers_on": "attainment"}, "need the plan's quota"),
    ):
        with pytest.raises(ValidationError, match=said):
            Plan.model_validate({**MANAGERS, "override": override})


# --- properties ---------------------------------------------------------------------------

TEAM = ["r1", "r2", "r3", "r4"]
DAYS = st.integers(0, 180).map(lambda d: date(2026, 1, 1) + timedelta(days=d))


@st.composite
def org(draw: st.DrawFn) -> tuple[list[Rep], list[Deal]]:
    # r1 manages r2; r2 manages r3 and r4 (or r4 reports to r1), drawn per org.
    bosses = {"r2": "r1", "r3": "r2", "r4": draw(st.sampled_from(["r1", "r2"]))}
    reps = [Rep(r, manager_id=bosses.get(r)) for r in TEAM]
    deals = []
    for index in range(draw(st.integers(0, 20))):
        amount = Decimal(draw(st.integers(-50_000, 3_000_000))) / 100
        deals.append(won(f"d{index:02d}", draw(st.sampled_from(TEAM)), str(amount), draw(DAYS)))
    return reps, deals


@common
@given(org(), st.sampled_from(["flat", "tiers"]), st.sampled_from(["1", "all"]))
def test_an_override_never_exceeds_its_top_rate_times_team_bookings(
    drawn: tuple[list[Rep], list[Deal]], form: str, depth: str
) -> None:
    reps, deals = drawn
    shape: dict[str, Any] = (
        {"rate": "0.025"}
        if form == "flat"
        else {"tiers": [{"up_to": "20000", "rate": "0.01"}, {"rate": "0.04"}]}
    )
    plan = Plan.model_validate({
        "id": "all", "start": "2026-01-01", "members": TEAM,
        "commission": {"tiers_on": "amount", "tiers": [{"rate": "0.1"}]},
        "override": {**shape, "depth": depth},
    })  # fmt: skip
    lines = reporting_lines(reps)
    result = statements([plan], reps, deals, date(2026, 6, 30), reporting=lines)
    top = Decimal("0.025") if form == "flat" else Decimal("0.04")
    for (rep_id, period), statement in result.items():
        below = [
            d for d in deals
            if f"{d.close_date:%Y-%m}" == period
            and rep_id in lines.above(d.owner_id, d.close_date)[: None if depth == "all" else 1]
        ]  # fmt: skip
        positive = sum((d.amount for d in below if d.amount > 0), Decimal(0))
        count = len(below)
        assert statement.overrides <= top * positive + Decimal("0.005") * count
        if form == "flat":
            exact = Decimal("0.025") * sum((d.amount for d in below), Decimal(0))
            assert abs(statement.overrides - exact) <= Decimal("0.005") * count
