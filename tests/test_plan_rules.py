"""Plan rules beyond tiers: per-deal multipliers, a decelerator, a gated accelerator.

Each worked example of docs/calculation.md §13 is a test here.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.core.closing import Books
from connector.core.models import Deal, DealStatus, LineKind, Rep, Statement
from connector.core.periods import PeriodKind
from connector.core.plans import Plan
from connector.core.statements import calculate
from connector.errors import CalculationError
from tests.test_engine_properties import common, deals, plans, reps

AS_OF = date(2026, 3, 31)
MONTH = PeriodKind.MONTH
BASE: dict[str, Any] = {
    "id": "ae",
    "start": "2026-01-01",
    "members": ["r1"],
    "quota": "10000",
}


def won(deal_id: str, amount: str, day: int, **columns: str) -> Deal:
    return Deal(deal_id, "r1", Decimal(amount), date(2026, 3, day), DealStatus.WON,
                type=columns.get("type"), properties=columns)  # fmt: skip


def march(plan: Plan, deal_list: list[Deal]) -> Statement:
    result = calculate([plan], [Rep("r1")], deal_list, period_kind=MONTH, as_of=AS_OF)
    (found,) = [s for s in result.statements if s.period == "2026-03"]
    return found


def commission_of(statement: Statement, deal_id: str) -> Decimal:
    return sum(
        (line.amount for line in statement.lines
         if line.deal_id == deal_id and line.kind is LineKind.COMMISSION),
        Decimal(0),
    )  # fmt: skip


def test_multipliers_by_deal_field_multiply_before_the_cap() -> None:
    plan = Plan.model_validate({
        **BASE,
        "commission": {
            "tiers": [{"rate": "0.10"}],
            "cap": "1200",
            "multipliers": [
                {"when": {"product_line": "Platform"}, "factor": "1.5"},
                {"when": {"term_years": "3"}, "factor": "1.2"},
            ],
        },
    })  # fmt: skip
    statement = march(plan, [
        won("P", "4000", 2, product_line="Platform", term_years="3"),  # 400 × 1.5 × 1.2 = 720
        won("S", "3000", 3, product_line="Services"),  # 300, no factor
        won("Q", "5000", 4, product_line="Platform"),  # 500 × 1.5 = 750, capped at 1,200: 180
    ])  # fmt: skip
    assert commission_of(statement, "P") == Decimal("720.00")
    assert commission_of(statement, "S") == Decimal("300.00")
    assert commission_of(statement, "Q") == Decimal("180.00")
    rules = {line.deal_id: line.rule for line in statement.lines}
    assert "× 1.8 (multiplier product_line=Platform; multiplier term_years=3)" in rules["P"]


def test_a_decelerator_slows_every_deal_of_a_period_below_its_threshold() -> None:
    plan = Plan.model_validate({
        **BASE,
        "commission": {"tiers": [{"rate": "0.10"}],
                       "decelerator": {"below": "0.4", "factor": "0.5"}},
    })  # fmt: skip
    slow = march(plan, [won("A", "2500", 2), won("B", "1000", 9)])  # 35 %: half rate
    assert slow.commission == Decimal("175.00")
    assert "decelerator: attainment below 40%" in slow.lines[0].rule
    normal = march(plan, [won("A", "2500", 2), won("B", "1500", 9)])  # exactly 40 %: full
    assert normal.commission == Decimal("400.00")


GATED: dict[str, Any] = {
    **BASE,
    "goals": [{"metric": "new_customers", "target": 2, "when": {"type": "New Business"}}],
    "commission": {
        "tiers": [{"up_to": "1.0", "rate": "0.10"}, {"rate": "0.20"}],
        "gate": {"goal": "new_customers", "at": "0.5", "above": "1.0"},
    },
}


def test_accelerators_above_quota_pay_only_while_the_gate_holds() -> None:
    plan = Plan.model_validate(GATED)
    renewals = [won("R1", "8000", 2, type="Renewal"), won("R2", "6000", 5, type="Renewal")]
    closed = march(plan, renewals)  # no new customer: the gate is closed
    # 10,000 at 10 % + 4,000 held at 10 % instead of 20 %.
    assert closed.commission == Decimal("1400.00")
    assert "held at 10%: gate new_customers below 50%" in closed.lines[1].rule
    new_logo = won("N", "1000", 6, type="New Business")
    opened = march(plan, [*renewals, new_logo])  # 1 of 2 new customers: 50 %, open
    # 10,000 at 10 % + 5,000 at 20 %.
    assert opened.commission == Decimal("2000.00")
    gate_goal = next(g for g in opened.goals if g.goal_id == "new_customers")
    assert gate_goal.attainment == Decimal("0.5000")  # the gate's figure, on the statement


def test_an_open_deal_that_opens_the_gate_is_estimated_with_it_open() -> None:
    plan = Plan.model_validate(GATED)
    renewals = [won("R1", "8000", 2, type="Renewal"), won("R2", "6000", 5, type="Renewal")]
    prospect = Deal("N", "r1", Decimal("1000"), date(2026, 3, 20), DealStatus.OPEN,
                    type="New Business", properties={"type": "New Business"})  # fmt: skip
    result = calculate([plan], [Rep("r1")], [*renewals, prospect], period_kind=MONTH,
                       as_of=AS_OF, estimate=True)  # fmt: skip
    # It earns 1,000 at 20 % itself and lifts R2's 4,000 above quota from 10 % to 20 %:
    # the estimate is the deal's own line (200), as the real close would attribute it.
    assert result.estimates["N"] == Decimal("200.00")


@pytest.mark.parametrize(
    ("commission", "message"),
    [
        ({"tiers": [{"up_to": "1.0", "rate": "0.1"}, {"rate": "0.2"}],
          "gate": {"goal": "new_customers", "at": "0.5", "above": "1.2"}}, "is not a tier bound"),
        ({"tiers": [{"up_to": "1.0", "rate": "0.1"}, {"rate": "0.2"}],
          "gate": {"goal": "nope", "at": "0.5", "above": "1.0"}}, "is not an individual goal"),
        ({"tiers": [{"rate": "0.1"}], "decelerator": {"below": "0.4", "factor": "1.5"}},
         "less than 1"),
        ({"tiers": [{"rate": "0.1"}], "multipliers": [{"when": {}, "factor": "2"}]},
         "at least 1"),
    ],
)  # fmt: skip
def test_rules_that_cannot_work_are_refused(commission: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Plan.model_validate({**GATED, "commission": commission})
    assert message in str(raised.value)


@common
@given(plans(), reps(), deals(), st.data())
def test_estimates_hold_under_multipliers_and_decelerators(
    plan: Plan, rep_list: list[Rep], deal_list: list[Deal], data: st.DataObject
) -> None:
    factor = Decimal(data.draw(st.integers(1, 300))) / 100
    below = Decimal(data.draw(st.integers(1, 150))) / 100
    slowed = Decimal(data.draw(st.integers(0, 99))) / 100
    spec = plan.model_dump(mode="json")
    spec["commission"]["multipliers"] = [{"when": {"type": "Renewal"}, "factor": str(factor)}]
    if spec.get("quota") is not None:
        spec["commission"]["decelerator"] = {"below": str(below), "factor": str(slowed)}
    ruled = Plan.model_validate(spec)
    as_of = date(2026, 9, 17)
    result = calculate([ruled], rep_list, deal_list, period_kind=MONTH, as_of=as_of,
                       estimate=True)  # fmt: skip
    open_deals = [d for d in deal_list if d.status is DealStatus.OPEN]
    if not open_deals:
        return
    chosen = data.draw(st.sampled_from(open_deals))
    closed = [d._replace(status=DealStatus.WON, close_date=as_of) if d.id == chosen.id else d
              for d in deal_list]  # fmt: skip
    after = calculate([ruled], rep_list, closed, period_kind=MONTH, as_of=as_of)
    earned = sum(
        (line.amount for s in after.statements for line in s.lines
         if line.deal_id == chosen.id and line.kind in (LineKind.COMMISSION, LineKind.SPIFF)),
        Decimal(0),
    )  # fmt: skip
    assert result.estimates.get(chosen.id, Decimal(0)) == earned


HELD: dict[str, Any] = {
    **BASE,
    "commission": {"tiers": [{"rate": "0.10"}]},
    "holdback": {"share": "0.2", "release": "quarter_end"},
}


def month_deal(deal_id: str, amount: str, month: int) -> Deal:
    return Deal(deal_id, "r1", Decimal(amount), date(2026, month, 10), DealStatus.WON)


def test_a_holdback_holds_a_share_of_commission_and_releases_it_at_the_quarters_end() -> None:
    plan = Plan.model_validate(HELD)
    deal_list = [
        month_deal("J", "10000", 1),
        month_deal("F", "5000", 2),
        month_deal("A", "3000", 4),
    ]
    result = calculate([plan], [Rep("r1")], deal_list, period_kind=MONTH, as_of=date(2026, 4, 30))
    by_period = {s.period: s for s in result.statements}
    jan, feb, mar, apr = (by_period[f"2026-0{m}"] for m in (1, 2, 3, 4))
    # January: 1,000 commission, 200 held, 800 paid.
    assert (jan.holdback, jan.held_back, jan.earnings) == (
        Decimal("-200.00"),
        Decimal("200.00"),
        Decimal("800.00"),
    )
    assert (feb.holdback, feb.held_back) == (Decimal("-100.00"), Decimal("300.00"))
    # March ends the quarter: the 300 held comes back.
    assert (mar.holdback, mar.held_back, mar.payout) == (
        Decimal("300.00"),
        Decimal("0.00"),
        Decimal("300.00"),
    )
    assert (apr.holdback, apr.held_back) == (Decimal("-60.00"), Decimal("60.00"))
    assert [line.rule for line in jan.lines if line.kind is LineKind.HOLDBACK] == [
        "holdback: 20% of commission held until the quarter's end"
    ]


def test_a_rep_who_leaves_gets_what_was_held_in_their_last_period() -> None:
    plan = Plan.model_validate({**HELD, "holdback": {"share": "0.25"}})  # until year end
    left = Rep("r1", end_date=date(2026, 5, 20))
    deal_list = [month_deal("J", "10000", 1), month_deal("M", "4000", 5)]
    result = calculate([plan], [left], deal_list, period_kind=MONTH, as_of=date(2026, 6, 30))
    may = next(s for s in result.statements if s.period == "2026-05")
    assert may.held_back == 0
    assert may.holdback == Decimal("250.00")  # 100 held on May's 400, then all 350 released
    assert sum(s.earnings for s in result.statements) == Decimal("1400.00")


def test_a_payment_holdback_releases_each_deal_when_its_customer_pays() -> None:
    plan = Plan.model_validate({
        **HELD, "holdback": {"share": "0.2", "release": "payment", "paid_on": "payment_date"},
        "clawback": {"window_days": 90},
    })  # fmt: skip
    deal_list = [
        month_deal("A", "10000", 1)._replace(properties={"payment_date": "2026-02-15"}),
        month_deal("B", "5000", 1),  # never paid
        Deal("C", "r1", Decimal(3000), date(2026, 2, 10), DealStatus.CANCELLED,
             cancel_date=date(2026, 3, 10)),
    ]  # fmt: skip
    result = calculate([plan], [Rep("r1")], deal_list, period_kind=MONTH, as_of=date(2026, 3, 31))
    jan, feb, mar = (s for s in result.statements)
    assert (jan.holdback, jan.held_back) == (Decimal("-300.00"), Decimal("300.00"))
    # February: C's 60 held; A is paid, its 200 comes back.
    assert (feb.holdback, feb.held_back) == (Decimal("140.00"), Decimal("160.00"))
    # March: C is cancelled; its 300 clawed back and its 60 released. B's 100 stays held.
    assert (mar.clawbacks, mar.holdback, mar.held_back) == (
        Decimal("-300.00"), Decimal("60.00"), Decimal("100.00"))  # fmt: skip
    rules = [ln.rule for ln in feb.lines if ln.kind is LineKind.HOLDBACK]
    assert "holdback released: deal A paid 2026-02-15" in rules
    # Closing January keeps what each deal holds: February releases A from the books.
    books = Books("2026-01", [jan])
    again = calculate([plan], [Rep("r1")], deal_list, period_kind=MONTH,
                      as_of=date(2026, 3, 31), books=books)  # fmt: skip
    assert [s.held_back for s in again.statements] == [s.held_back for s in result.statements]
    # A payment date that is not a date stops the calculation, naming the deal.
    bad = [deal_list[0]._replace(properties={"payment_date": "soon"})]
    with pytest.raises(CalculationError, match="deal A: payment_date 'soon' is not a date"):
        calculate([plan], [Rep("r1")], bad, period_kind=MONTH, as_of=date(2026, 3, 31))
    with pytest.raises(ValidationError, match="paid_on"):
        Plan.model_validate({**HELD, "holdback": {"share": "0.2", "release": "payment"}})


@common
@given(
    plans(),
    reps(),
    deals(),
    st.sampled_from(["quarter_end", "year_end", "payment"]),
    st.integers(1, 99),
)
def test_over_a_year_a_holdback_pays_everything_it_held(
    plan: Plan, rep_list: list[Rep], deal_list: list[Deal], release: str, share: int
) -> None:
    spec = plan.model_dump(mode="json")
    spec["holdback"] = {"share": str(Decimal(share) / 100), "release": release}
    if release == "payment":  # every other deal paid on the fifth of the month after it closed
        spec["holdback"]["paid_on"] = "paid"
        deal_list = [
            d._replace(
                properties={**d.properties, "paid": f"{d.close_date + timedelta(days=31):%Y-%m}-05"}
            )
            if i % 2
            else d
            for i, d in enumerate(deal_list)
        ]
    held = Plan.model_validate(spec)
    year_end = date(2026, 12, 31)
    plain = calculate([plan], rep_list, deal_list, period_kind=MONTH, as_of=year_end)
    with_holdback = calculate([held], rep_list, deal_list, period_kind=MONTH, as_of=year_end)
    for before, after in zip(plain.statements, with_holdback.statements, strict=True):
        assert before.commission == after.commission
        assert after.held_back >= 0
    assert sum(s.earnings for s in plain.statements) == sum(
        s.earnings for s in with_holdback.statements
    )
    assert all(s.held_back == 0 for s in with_holdback.statements if s.period == "2026-12")
