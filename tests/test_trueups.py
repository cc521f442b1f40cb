"""Quarterly and annual true-ups, and gates over the quarter or year to date.

Each worked example of docs/calculation.md §17 is a test here.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.core.models import Deal, DealStatus, LineKind, Rep, Statement
from connector.core.periods import PeriodKind
from connector.core.plans import Plan
from connector.core.statements import calculate
from tests.test_engine_properties import common

MONTH = PeriodKind.MONTH
TIERS = [{"up_to": "1.0", "rate": "0.08"}, {"rate": "0.12"}]
BASE: dict[str, Any] = {"id": "ae", "start": "2026-01-01", "members": ["r1"], "quota": "10000"}


def won(deal_id: str, amount: str, day: date, kind: str = "Renewal") -> Deal:
    return Deal(deal_id, "r1", Decimal(amount), day, DealStatus.WON, type=kind)


def months(plan: Plan, deals: list[Deal], as_of: date = date(2026, 3, 31),
           rep: Rep | None = None) -> dict[str, Statement]:  # fmt: skip
    result = calculate([plan], [rep or Rep("r1")], deals, period_kind=MONTH, as_of=as_of)
    return {s.period: s for s in result.statements}


def true_ups(statement: Statement) -> list[Decimal]:
    return [ln.amount for ln in statement.lines if ln.rule.startswith("true-up")]


def test_a_quarter_true_up_pays_the_quarter_as_a_whole() -> None:
    plan = Plan.model_validate({**BASE, "commission": {"tiers": TIERS, "true_up": "quarter"}})
    got = months(plan, [won("J", "15000", date(2026, 1, 10)), won("F", "5000", date(2026, 2, 10)),
                        won("M", "10000", date(2026, 3, 10))])  # fmt: skip
    assert [got[m].commission for m in ("2026-01", "2026-02")] == [Decimal("1400.00"),
                                                                  Decimal("400.00")]  # fmt: skip
    # 30,000 against a quarter's quota of 30,000 earns 2,400; the months paid 2,600.
    assert true_ups(got["2026-03"]) == [Decimal("-200.00")]
    assert got["2026-03"].commission == Decimal("600.00")  # 800 for March, less 200
    assert sum(s.commission for s in got.values()) == Decimal("2400.00")
    rule = next(ln.rule for ln in got["2026-03"].lines if ln.deal_id is None)
    assert rule.startswith("true-up 2026-01 to 2026-03: 30000.00 booked against a quota of")


def test_a_true_up_recovers_what_a_slow_month_decelerated() -> None:
    plan = Plan.model_validate({**BASE, "commission": {
        "tiers": [{"rate": "0.08"}], "true_up": "quarter",
        "decelerator": {"below": "0.4", "factor": "0.5"}}})  # fmt: skip
    got = months(plan, [won("J", "3000", date(2026, 1, 10)), won("F", "3000", date(2026, 2, 10)),
                        won("M", "10000", date(2026, 3, 10))])  # fmt: skip
    assert got["2026-01"].commission == Decimal("120.00")  # 30 %: half rate
    # 16,000 of 30,000 is 53 %: no deceleration over the quarter, 1,280 against 1,040 paid.
    assert true_ups(got["2026-03"]) == [Decimal("240.00")]


def test_no_true_up_before_the_quarter_closes_and_one_when_the_rep_leaves() -> None:
    plan = Plan.model_validate({**BASE, "commission": {"tiers": TIERS, "true_up": "quarter"}})
    deals = [won("J", "15000", date(2026, 1, 10)), won("F", "5000", date(2026, 2, 10))]
    assert true_ups(months(plan, deals, date(2026, 2, 28))["2026-02"]) == []
    left = months(plan, deals, date(2026, 3, 31), Rep("r1", end_date=date(2026, 2, 20)))
    # Two months: 20,000 against 20,000 earns 1,600; they paid 1,800.
    assert true_ups(left["2026-02"]) == [Decimal("-200.00")]


def test_a_quarter_gate_counts_the_quarter_to_date() -> None:
    gate: dict[str, Any] = {"goal": "new_customers", "at": "0.5", "above": "1.0"}
    rules: dict[str, Any] = {
        **BASE, "goals": [{"metric": "new_customers", "target": "2"}],
        "commission": {"tiers": TIERS, "gate": gate},
    }  # fmt: skip
    deals = [won("N1", "1000", date(2026, 1, 5), "New Business"),
             won("N2", "1000", date(2026, 1, 6), "New Business"),
             won("F", "12000", date(2026, 2, 10))]  # fmt: skip
    by_period = months(Plan.model_validate(rules), deals)
    assert by_period["2026-02"].commission == Decimal("960.00")  # 0 of 2 in February: held
    quarter = {**rules, "commission": {"tiers": TIERS, "gate": {**gate, "level": "quarter"}}}
    by_quarter = months(Plan.model_validate(quarter), deals)
    # 2 of 4 over January and February: the gate is open, 10,000 × 8 % + 2,000 × 12 %.
    assert by_quarter["2026-02"].commission == Decimal("1040.00")


def test_the_plan_refuses_a_true_up_it_cannot_compute() -> None:
    for commission, said in (
        ({"tiers_on": "amount", "tiers": [{"rate": "0.1"}], "true_up": "quarter"}, "attainment"),
        ({"tiers": TIERS, "true_up": "period"}, "quarter or year"),
        ({"tiers": TIERS, "true_up": "month"}, "true_up"),
    ):
        with pytest.raises(ValidationError, match=said):
            Plan.model_validate({**BASE, "commission": commission})
    mid_quarter = {**BASE, "commission": {"tiers": TIERS, "true_up": "quarter"},
                   "versions": [{"effective_from": "2026-02-01", "quota": "12000"}]}  # fmt: skip
    with pytest.raises(ValidationError, match="first day of a quarter"):
        Plan.model_validate(mid_quarter)
    Plan.model_validate({**mid_quarter, "versions": [{"effective_from": "2026-04-01"}]})


AMOUNTS = st.integers(-200_000, 3_000_000).map(lambda c: Decimal(c) / 100)


@common
@given(
    st.lists(st.tuples(st.integers(0, 11), st.integers(1, 28), AMOUNTS), max_size=25),
    st.sampled_from(["quarter", "year"]),
    st.sampled_from(["marginal", "retroactive"]),
    st.booleans(),
)
def test_trued_up_months_pay_exactly_what_each_window_earns(
    sales: list[tuple[int, int, Decimal]], level: str, method: str, capped: bool
) -> None:
    """Over each closed window, the months plus the true-up pay what one computation over
    the whole window pays, to the cent."""
    commission: dict[str, Any] = {"method": method, "tiers": TIERS}
    if capped:
        commission["cap"] = "1500"
    deals = [won(f"d{i:02d}", str(amount), date(2026, month + 1, day))
             for i, (month, day, amount) in enumerate(sales)]  # fmt: skip
    trued = months(Plan.model_validate({**BASE, "commission": {**commission, "true_up": level}}),
                   deals, date(2026, 12, 31))  # fmt: skip
    size = 3 if level == "quarter" else 12
    for start in range(0, 12, size):
        periods = [f"2026-{m + 1:02d}" for m in range(start, start + size)]
        paid = sum((trued[p].commission for p in periods), Decimal(0))
        # One computation over the window: the same plan on a window-long period.
        inside = [d for d in deals if start <= d.close_date.month - 1 < start + size]
        whole = Plan.model_validate({
            **BASE, "quota": str(10000 * size),
            "commission": {**commission, **({"cap": str(1500 * size)} if capped else {})},
        })  # fmt: skip
        # All on the window's first day, renamed so that id order is the (close date, id)
        # order in which the true-up fills the tiers.
        ordered = sorted(inside, key=lambda d: (d.close_date, d.id))
        first = date(2026, 1 + start, 1)
        moved = [d._replace(id=f"m{rank:03d}", close_date=first) for rank, d in enumerate(ordered)]
        once = months(whole, moved, date(2026, 1 + start, 28))[f"2026-{start + 1:02d}"]
        assert paid == once.commission, (periods, paid, once.commission)
    assert all(ln.kind is LineKind.COMMISSION for s in trued.values() for ln in s.lines)
