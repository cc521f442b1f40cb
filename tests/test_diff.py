"""Statements → desired CRM field values (canonical text)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from connector.core.diff import changes, deal_values, rep_values
from connector.core.fields import RecordKind
from connector.core.values import canonical

from .engine_helpers import deal, plan, run


def test_deal_values_total_split_commission_and_effective_rate() -> None:
    p = plan(members=["r1", "r2"], clawback={"window_days": 90})
    deals = [
        deal("split", "20000", date(2026, 1, 5), splits=(("r1", "50"), ("r2", "50"))),
        deal("gone", "5000", date(2026, 1, 6), "cancelled", cancel=date(2026, 2, 1)),
        deal("open", "7000", date(2026, 1, 7), "open"),
    ]
    result = run(p, deals, as_of=date(2026, 2, 28))
    values = deal_values(result.statements, ["split", "gone", "open"])
    # r1 and r2 each: 10,000 = 100 % of quota at 10 % → 1,000; together 2,000 on 20,000 credit.
    assert values["split"] == {
        "commission": "2000.00",
        "commission_rate": "0.100000",
        "commission_period": "2026-01",
        "clawback": "0.00",
        "estimated_commission": None,  # a closed deal
    }
    # gone: r1 already had 10,000 from the split, so its 5,000 earn 15 %: 750 clawed back in Feb.
    assert values["gone"] == {
        "commission": "750.00",
        "commission_rate": "0.150000",
        "commission_period": "2026-01",
        "clawback": "-750.00",
        "estimated_commission": None,
    }
    assert values["open"] == dict.fromkeys(
        ("commission", "commission_rate", "commission_period", "clawback", "estimated_commission")
    )
    estimated = deal_values(result.statements, ["open"], {"open": Decimal("700.00")})
    assert estimated["open"]["estimated_commission"] == "700.00"


def test_rep_values_use_as_of_period_and_year_to_date() -> None:
    p = plan(draw={"type": "recoverable", "amount": "1500"})
    deals = [deal("d1", "12000", date(2026, 1, 5)), deal("d2", "5000", date(2026, 2, 5))]
    result = run(p, deals, as_of=date(2026, 2, 10))
    values = rep_values(result.statements, "2026-02")["r1"]
    # Jan: 1,300 commission + 200 draw = 1,500 paid, owes 200. Feb: 500 earned, 1,000 drawn.
    assert values == {
        "period": "2026-02",
        "period_status": "preliminary",  # no period is closed
        "adjustments": "0.00",
        "held_back": "0.00",  # no holdback on this plan
        "overrides": "0.00",  # nor overrides
        "quota": "10000.00",
        "bookings": "5000.00",
        "attainment": "0.5000",
        "earnings": "500.00",
        "draw_paid": "1000.00",
        "draw_recovered": "0.00",
        "draw_balance": "1200.00",
        "payout": "1500.00",
        "payout_ytd": "3000.00",
        # KPIs: 1 won, 0 lost; 10 of February's 28 days gone: pace 0.5 / (10/28) = 1.4.
        "win_rate": "1.0000",
        "average_deal_size": "5000.00",
        "sales_cycle_days": None,  # no creation dates
        "pipeline_coverage": "0.0000",  # no open deals, 5,000 still to book
        "pace": "1.4000",
        "to_next_tier": "5000.00",
        "lead_to_sale": None,  # leads not read
        # No goals on this plan: their fields are cleared.
        "deals_won_attainment": None,
        "new_customers_attainment": None,
        "team_attainment": None,
        "team_deals_won_attainment": None,
        "team_new_customers_attainment": None,
        "deals_won_pace": None,
        "new_customers_pace": None,
        "team_pace": None,
        "team_deals_won_pace": None,
        "team_new_customers_pace": None,
    }
    closed = rep_values(result.statements, "2026-02", statuses={"2026-02": "paid"})["r1"]
    assert closed["period_status"] == "paid"


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("commission", 1234.5, "1234.50"),  # what a JSON client hands back
        ("commission", "-0.004", "0.00"),
        ("commission_rate", "0.125", "0.125000"),
        ("attainment", "1.23456", "1.2346"),
        ("period", "2026-03", "2026-03"),
        ("commission", None, None),
        ("commission", "", None),
        (
            "updated_at",
            datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
            "2026-03-01T10:00:00Z",
        ),
    ],
)
def test_canonical(key: str, raw: object, expected: str | None) -> None:
    assert canonical(key, raw) == expected


def test_naive_timestamp_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        canonical("updated_at", datetime(2026, 3, 1))


def test_changes_lists_before_and_after() -> None:
    planned = changes(
        RecordKind.REP,
        {"u2": {"payout": "10.00"}, "u1": {"quota": None}},
        {("u2", "payout"): "9.00"},
    )
    assert [(c.record_id, c.key, c.before, c.after) for c in planned] == [
        ("u1", "quota", None, None),
        ("u2", "payout", "9.00", "10.00"),
    ]
