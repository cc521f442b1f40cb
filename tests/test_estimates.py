"""Estimated commission on open deals: what the deal would pay if it closed today."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from connector.core.models import Deal, DealStatus, LineKind, Rep, Split
from connector.core.periods import PeriodKind
from connector.core.plans import Plan
from connector.core.statements import calculate
from tests.test_engine_properties import common, deals, plans, reps

AS_OF = date(2026, 9, 17)
MONTH = PeriodKind.MONTH


def earned_in(result_statements: tuple[object, ...], deal_id: str) -> Decimal:
    total = Decimal(0)
    for statement in result_statements:
        for line in statement.lines:  # type: ignore[attr-defined]
            if line.deal_id == deal_id and line.kind in (LineKind.COMMISSION, LineKind.SPIFF):
                total += line.amount
    return total


@common
@given(plans(), reps(), deals(), st.data())
def test_a_deal_closed_today_earns_exactly_its_last_estimate(
    plan: Plan, rep_list: list[Rep], deal_list: list[Deal], data: st.DataObject
) -> None:
    result = calculate([plan], rep_list, deal_list, period_kind=MONTH, as_of=AS_OF, estimate=True)
    open_deals = [d for d in deal_list if d.status is DealStatus.OPEN]
    if not open_deals:
        return
    chosen = data.draw(st.sampled_from(open_deals))
    closed = [
        d._replace(status=DealStatus.WON, close_date=AS_OF) if d.id == chosen.id else d
        for d in deal_list
    ]
    after = calculate([plan], rep_list, closed, period_kind=MONTH, as_of=AS_OF)
    assert result.estimates.get(chosen.id, Decimal(0)) == earned_in(after.statements, chosen.id)
    assert set(result.estimates) <= {d.id for d in open_deals}


PLAN = Plan.model_validate(
    {
        "id": "ae",
        "start": "2026-01-01",
        "members": ["r1", "r2"],
        "quota": "10000",
        "commission": {
            "tiers": [{"up_to": "1.0", "rate": "0.10"}, {"rate": "0.20"}],
            "cap": "1500",
        },
        "spiffs": [{"name": "new-logo", "when": {"type": "New Business"}, "amount": "100"}],
    }
)


def deal(deal_id: str, amount: str, status: DealStatus, **more: object) -> Deal:
    return Deal(deal_id, "r1", Decimal(amount), date(2026, 9, 3), status, **more)  # type: ignore[arg-type]


def test_an_estimate_counts_tier_position_caps_spiffs_and_splits() -> None:
    booked = deal("W", "8000", DealStatus.WON)
    crossing = deal("O1", "4000", DealStatus.OPEN, type="New Business",
                    properties={"type": "New Business"})  # fmt: skip
    capped = deal("O2", "30000", DealStatus.OPEN)
    split = deal("O3", "6000", DealStatus.OPEN,
                 splits=(Split("r1", Decimal(50)), Split("r2", Decimal(50))))  # fmt: skip
    result = calculate(
        [PLAN], [Rep("r1"), Rep("r2")], [booked, crossing, capped, split],
        period_kind=MONTH, as_of=AS_OF, estimate=True,
    )  # fmt: skip
    # O1: 2,000 at 10 % + 2,000 at 20 % = 600, and the 100 SPIFF.
    assert result.estimates["O1"] == Decimal("700.00")
    # O2: 2,000 at 10 % + 28,000 at 20 % = 5,800, but September is capped at 1,500 and
    # 800 is already earned: 700.
    assert result.estimates["O2"] == Decimal("700.00")
    # O3: r1's 3,000 (2,000 at 10 % + 1,000 at 20 % = 400) and r2's 3,000 at 10 % (300).
    assert result.estimates["O3"] == Decimal("700.00")
    assert "W" not in result.estimates
    september = {s.rep_id: s for s in result.statements if s.period == "2026-09"}
    assert september["r1"].estimated_commission == Decimal("1800.00")  # 700 + 700 + 400
    assert september["r2"].estimated_commission == Decimal("300.00")
    assert all(s.estimated_commission is None for s in result.statements if s.period != "2026-09")


def test_without_asking_nothing_is_estimated() -> None:
    result = calculate([PLAN], [Rep("r1")], [deal("O", "10", DealStatus.OPEN)],
                       period_kind=MONTH, as_of=AS_OF)  # fmt: skip
    assert result.estimates == {}
