"""Closed periods and adjustments in the calculation (pay-cycle.md).

The property: after any changes to the deals, closed statements come back
unchanged, and closed figures plus adjustments sum to what recomputing
everything gives, to the cent, across two closes.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from connector.core.closing import Books, ManualAdjustment
from connector.core.models import Deal, DealStatus, LineKind, Rep, Statement
from connector.core.periods import PeriodKind
from connector.core.plans import Plan
from connector.core.statements import Calculation, calculate
from tests.test_engine_properties import REPS, common, deals, plans, reps

AS_OF = date(2026, 12, 31)
MONTH = PeriodKind.MONTH


def compute(plan: Plan, rep_list: list[Rep], deal_list: list[Deal], books: Books) -> Calculation:
    return calculate([plan], rep_list, deal_list, period_kind=MONTH, as_of=AS_OF, books=books)


def close_through(calculation: Calculation, period: str, deal_list: list[Deal]) -> Books:
    return Books(
        period,
        [s for s in calculation.statements if s.period <= period],
        {deal.id: deal for deal in deal_list},
    )


@st.composite
def changed(draw: st.DrawFn, deal_list: list[Deal], round_: int) -> list[Deal]:
    """The deals after the CRM changed some: amounts, owners, dates, status, deletions,
    and new deals dated in the past."""
    result: list[Deal] = []
    for deal in deal_list:
        what = draw(st.sampled_from(["keep", "keep", "amount", "owner", "date", "lost", "delete"]))
        if what == "amount":
            deal = deal._replace(amount=deal.amount + Decimal(draw(st.integers(-5000, 5000))))
        elif what == "owner":
            deal = deal._replace(owner_id=draw(st.sampled_from(REPS)), splits=())
        elif what == "date":
            moved = deal.close_date + timedelta(days=draw(st.integers(-90, 90)))
            moved = min(max(moved, date(2026, 1, 1)), date(2026, 12, 31))
            cancel = deal.cancel_date if deal.cancel_date is None else max(deal.cancel_date, moved)
            deal = deal._replace(close_date=moved, cancel_date=cancel)
        elif what == "lost" and deal.status is DealStatus.WON:
            deal = deal._replace(status=DealStatus.LOST)
        elif what == "delete":
            continue
        result.append(deal)
    for index in range(draw(st.integers(0, 3))):
        result.append(
            Deal(
                f"late{round_}-{index}",
                draw(st.sampled_from(REPS)),
                Decimal(draw(st.integers(1, 900_000))) / 100,
                date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 330))),
                DealStatus.WON,
            )
        )
    return result


def earnings(statements: tuple[Statement, ...]) -> Decimal:
    return sum((s.earnings for s in statements), Decimal(0))


@common
@given(plans(), reps(), deals(), st.integers(0, 8), st.integers(1, 2), st.data())
def test_closed_figures_plus_adjustments_equal_the_recomputation(
    plan: Plan,
    rep_list: list[Rep],
    before: list[Deal],
    first_close: int,
    later: int,
    data: st.DataObject,
) -> None:
    if data.draw(st.booleans()):  # a holdback too: its balance carries across the close
        spec = plan.model_dump(mode="json")
        release = data.draw(st.sampled_from(["quarter_end", "year_end"]))
        spec["holdback"] = {"share": "0.25", "release": release}
        plan = Plan.model_validate(spec)
    first = f"2026-{first_close + 1:02d}"
    second = f"2026-{first_close + 1 + later:02d}"
    books = close_through(compute(plan, rep_list, before, Books()), first, before)

    middle = data.draw(changed(before, 1))
    adjusted = compute(plan, rep_list, middle, books)
    for closed in books.of_rep("r1") + books.of_rep("r2") + books.of_rep("r3"):
        assert closed in adjusted.statements  # byte for byte as closed
    assert earnings(adjusted.statements) == earnings(
        compute(plan, rep_list, middle, Books()).statements
    )

    # A second close takes the carried adjustments with it; later changes are not
    # counted twice.
    books = close_through(adjusted, second, middle)
    after = data.draw(changed(middle, 2))
    final = compute(plan, rep_list, after, books)
    assert earnings(final.statements) == earnings(
        compute(plan, rep_list, after, Books()).statements
    )
    for s in final.statements:
        if s.period > second:
            continue
        assert s in books.of_rep(s.rep_id)


PLAN = Plan.model_validate(
    {
        "id": "ae",
        "start": date(2026, 1, 1),
        "members": ["r1"],
        "quota": "10000",
        "commission": {"tiers": [{"up_to": "1.0", "rate": "0.10"}, {"rate": "0.15"}]},
        "draw": {"type": "recoverable", "amount": "1000"},
    }
)
R1 = [Rep("r1", start_date=date(2026, 10, 1))]


def deal(deal_id: str, amount: str, day: date, owner: str = "r1") -> Deal:
    return Deal(deal_id, owner, Decimal(amount), day, DealStatus.WON)


def at(calculation: Calculation, period: str) -> Statement:
    (found,) = [s for s in calculation.statements if s.period == period]
    return found


def test_an_amount_changed_after_close_lands_in_the_next_open_period() -> None:
    october = [deal("D1", "12000", date(2026, 10, 14))]
    closed = calculate([PLAN], R1, october, period_kind=MONTH, as_of=date(2026, 11, 5))
    books = close_through(closed, "2026-10", october)
    assert at(closed, "2026-10").commission == Decimal("1300.00")  # 1,000 + 2,000 × 15 %

    now = [deal("D1", "10000", date(2026, 10, 14))]
    result = calculate([PLAN], R1, now, period_kind=MONTH, as_of=date(2026, 11, 20), books=books)

    assert at(result, "2026-10") == at(closed, "2026-10")
    november = at(result, "2026-11")
    (line,) = [line for line in november.lines if line.kind is LineKind.ADJUSTMENT]
    assert line.amount == Decimal("-300.00")
    assert line.deal_id == "D1"
    assert line.paid_period == "2026-10"
    assert "amount changed 12000.00 → 10000.00" in line.rule
    assert november.adjustments == Decimal("-300.00")
    assert november.earnings == Decimal("-300.00")
    # The draw: October paid no top-up (1,300 ≥ 1,000); November tops up to 1,000
    # and owes the 300 deficit plus the 1,000 advance.
    assert november.draw_paid == Decimal("1000.00")
    assert november.draw_balance == Decimal("1300.00")


def test_the_draw_balance_carries_over_from_the_closed_statement() -> None:
    september = [deal("D1", "2000", date(2026, 9, 3))]
    from_september = [Rep("r1", start_date=date(2026, 9, 1))]
    closed = calculate(
        [PLAN], from_september, september, period_kind=MONTH, as_of=date(2026, 10, 1)
    )
    books = close_through(closed, "2026-09", september)
    assert at(closed, "2026-09").draw_balance == Decimal("800.00")  # 1,000 − 200 earned
    # Recomputing September now would owe nothing (the deal moved out), but the
    # closed balance is what October starts from.
    moved = [deal("D1", "2000", date(2026, 10, 3))]
    result = calculate(
        [PLAN], from_september, moved, period_kind=MONTH, as_of=date(2026, 10, 31), books=books
    )
    october = at(result, "2026-10")
    assert [line.amount for line in october.lines if line.kind is LineKind.ADJUSTMENT] == [
        Decimal("-200.00")
    ]
    # October: 200 commission − 200 adjustment = 0 earned; a 1,000 top-up.
    assert october.draw_balance == Decimal("1800.00")


def test_a_rep_who_left_gets_a_settlement_period_without_a_draw() -> None:
    left = [Rep("r1", start_date=date(2026, 9, 1), end_date=date(2026, 9, 30))]
    september = [deal("D1", "20000", date(2026, 9, 3))]
    closed = calculate([PLAN], left, september, period_kind=MONTH, as_of=date(2026, 10, 2))
    books = close_through(closed, "2026-09", september)
    lower = [deal("D1", "15000", date(2026, 9, 3))]
    result = calculate([PLAN], left, lower, period_kind=MONTH, as_of=date(2026, 10, 9), books=books)
    october = at(result, "2026-10")
    assert october.draw == 0
    assert october.adjustments == Decimal("-750.00")  # 5,000 above quota at 15 %
    assert earnings(result.statements) == earnings(
        calculate([PLAN], left, lower, period_kind=MONTH, as_of=date(2026, 10, 9)).statements
    )


def test_adjustments_wait_when_the_as_of_date_is_still_in_the_closed_period() -> None:
    october = [deal("D1", "12000", date(2026, 10, 14))]
    closed = calculate([PLAN], R1, october, period_kind=MONTH, as_of=date(2026, 11, 5))
    books = close_through(closed, "2026-10", october)
    early = calculate(
        [PLAN], R1, [deal("D1", "1", date(2026, 10, 14))], period_kind=MONTH,
        as_of=date(2026, 10, 20), books=books,
    )  # fmt: skip
    assert [w.message for w in early.warnings] == [
        "rep r1: adjustments of -1299.90 wait for 2026-11, the first open period, "
        "which is after the as-of date"
    ]


def test_manual_adjustments_and_their_reversal_are_lines_of_their_period() -> None:
    adjustments = [
        ManualAdjustment(1, "r1", "ae", "2026-11", Decimal("-250.00"), "phone bill", "ana"),
        ManualAdjustment(2, "r1", "ae", "2026-11", Decimal("250.00"), "entered twice", "ana", 1),
        ManualAdjustment(3, "r1", "ae", "2026-11", Decimal("75.10"), "contest prize", "bo"),
    ]
    result = calculate(
        [PLAN], R1, [deal("D1", "12000", date(2026, 11, 2))], period_kind=MONTH,
        as_of=date(2026, 11, 20), books=Books(adjustments=adjustments),
    )  # fmt: skip
    november = at(result, "2026-11")
    manual = [line for line in november.lines if line.kind is LineKind.ADJUSTMENT]
    assert [line.rule for line in manual] == [
        "#1 phone bill (ana)",
        "#2 reverses adjustment #1: entered twice (ana)",
        "#3 contest prize (bo)",
    ]
    dated = ManualAdjustment(
        4, "r1", "ae", "2026-11", Decimal(1), "x", "ana", None, "2026-11-20T10:00"
    )
    assert dated.line().rule == "#4 x (ana, 2026-11-20)"
    assert november.adjustments == Decimal("75.10")
    assert november.earnings == Decimal("1375.10")
