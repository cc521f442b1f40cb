"""Hand-checked numbers for every rule of calculation.md.

Each expected figure was worked out by hand (the arithmetic is in the
comments) before the test was run; the public worked examples are cited.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from connector.core.models import LineKind, Rep
from connector.core.periods import PeriodKind
from connector.errors import CalculationError

from .engine_helpers import by_period, deal, plan, run

D = Decimal
JAN5, JAN20, FEB10 = date(2026, 1, 5), date(2026, 1, 20), date(2026, 2, 10)


# --- Tiers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "amounts", "expected_lines", "expected_total"),
    [
        # Marginal, spec example: 120 % of a 10,000 quota = 10 % × 10,000 + 15 % × 2,000.
        ("marginal", ["12000"], ["1300.00"], "1300.00"),
        # Crossing a bound inside a deal: 8,000 at 10 %; then 2,000 at 10 % + 2,000 at 15 %.
        ("marginal", ["8000", "4000"], ["800.00", "500.00"], "1300.00"),
        # Crossing two bounds: 16,000 → 1,000 + 750 + 200.
        ("marginal", ["16000"], ["1950.00"], "1950.00"),
        # Exactly on the bound: 10,000 at 10 %; the next deal starts in tier 2.
        ("marginal", ["10000", "1000"], ["1000.00", "150.00"], "1150.00"),
        # Retroactive: 120 % → every deal at 15 %.
        ("retroactive", ["8000", "4000"], ["1200.00", "600.00"], "1800.00"),
        # Retroactive, exactly 100 % is in the ≤100 % tier (inclusive bounds).
        ("retroactive", ["6000", "4000"], ["600.00", "400.00"], "1000.00"),
        # Retroactive above 150 %: 20 % on everything.
        ("retroactive", ["15000.01"], ["3000.00"], "3000.00"),
    ],
)
def test_tier_methods(
    method: str, amounts: list[str], expected_lines: list[str], expected_total: str
) -> None:
    commission = {
        "method": method,
        "tiers": [
            {"up_to": "1.0", "rate": "0.10"},
            {"up_to": "1.5", "rate": "0.15"},
            {"rate": "0.20"},
        ],
    }
    deals = [deal(f"d{i}", amount, date(2026, 1, 1 + i)) for i, amount in enumerate(amounts)]
    jan = by_period(run(plan(commission=commission), deals))["2026-01"]
    assert [str(line.amount) for line in jan.lines] == expected_lines
    assert jan.commission == D(expected_total)


def test_marginal_example_sparrowgenie_amount_tiers() -> None:
    # sparrowgenie.com "Non-Retroactive Commission": 3 % to 300,000, 5 % to 500,000,
    # 7 % above; 600,000 of quarterly sales earn 9,000 + 10,000 + 7,000 = 26,000.
    commission = {
        "tiers_on": "amount",
        "tiers": [
            {"up_to": "300000", "rate": "0.03"},
            {"up_to": "500000", "rate": "0.05"},
            {"rate": "0.07"},
        ],
    }
    p = plan(quota=None, commission=commission)
    q1 = by_period(run(p, [deal("d", "600000", JAN5)], kind=PeriodKind.QUARTER))["2026-Q1"]
    assert q1.commission == D("26000.00")
    assert q1.quota is None and q1.attainment is None


@pytest.mark.parametrize(
    ("method", "expected"), [("marginal", "98000.00"), ("retroactive", "108000.00")]
)
def test_retroactive_vs_incremental_earnbase(method: str, expected: str) -> None:
    # earnbase.no "Retroactive Tier Jumping": 50 % to 100K, 60 % above; 180K of sales
    # earn 108K retroactively (all at 60 %) and 98K incrementally (50K + 48K).
    commission = {
        "method": method,
        "tiers_on": "amount",
        "tiers": [{"up_to": "100000", "rate": "0.50"}, {"rate": "0.60"}],
    }
    p = plan(quota=None, commission=commission)
    jan = by_period(run(p, [deal("d", "180000", JAN5)]))["2026-01"]
    assert jan.commission == D(expected)


def test_marginal_blend_referello() -> None:
    # referello.com tiered commission calculator: 10 % to 10,000, 20 % above;
    # 15,000 earns 1,000 + 1,000 = 2,000, an effective rate of 13.33 %.
    commission = {
        "tiers_on": "amount",
        "tiers": [{"up_to": "10000", "rate": "0.10"}, {"rate": "0.20"}],
    }
    jan = by_period(run(plan(quota=None, commission=commission), [deal("d", "15000", JAN5)]))[
        "2026-01"
    ]
    (line,) = jan.lines
    assert line.amount == D("2000.00")
    assert line.rate == D("0.1333")
    assert line.rule == "tiers 1-2 blended (marginal)"


def test_deals_fill_tiers_in_close_date_then_id_order() -> None:
    # Given in reverse order; d-a (Jan 5) fills first, then d-b and d-c (Jan 20, by id).
    deals = [deal("d-c", "3000", JAN20), deal("d-b", "4000", JAN20), deal("d-a", "6000", JAN5)]
    jan = by_period(run(plan(), deals))["2026-01"]
    # d-a 600.00; d-b: 4,000 at 10 % = 400.00 (cumulative 10,000); d-c 3,000 at 15 % = 450.00.
    assert [(line.deal_id, str(line.amount)) for line in jan.lines] == [
        ("d-a", "600.00"),
        ("d-b", "400.00"),
        ("d-c", "450.00"),
    ]


def test_lines_round_half_up_then_sum() -> None:
    # Three deals of 0.05 at 10 %: each 0.005 → 0.01, so the period pays 0.03, not 0.02.
    commission = {"tiers_on": "amount", "tiers": [{"rate": "0.10"}]}
    deals = [deal(f"d{i}", "0.05", JAN5) for i in range(3)]
    jan = by_period(run(plan(quota=None, commission=commission), deals))["2026-01"]
    assert [str(line.amount) for line in jan.lines] == ["0.01", "0.01", "0.01"]
    assert jan.commission == D("0.03")


def test_negative_half_cent_rounds_away_from_zero() -> None:
    commission = {"tiers_on": "amount", "tiers": [{"rate": "0.10"}]}
    jan = by_period(
        run(plan(quota=None, commission=commission), [deal("credit-note", "-0.05", JAN5)])
    )["2026-01"]
    assert jan.lines[0].amount == D("-0.01")


def test_credit_note_first_extends_first_tier_below_zero() -> None:
    # -2,000 first: F(-2,000) = -200; then 14,000 takes bookings from -2,000 to 12,000:
    # F(12,000) - F(-2,000) = 1,300 + 200 = 1,500.
    deals = [deal("d1", "-2000", JAN5), deal("d2", "14000", JAN20)]
    jan = by_period(run(plan(), deals))["2026-01"]
    assert [str(line.amount) for line in jan.lines] == ["-200.00", "1500.00"]
    assert jan.commission == D("1300.00")


# --- Cap ---------------------------------------------------------------------------


def test_cap_cuts_the_crossing_line_and_zeroes_later_ones() -> None:
    commission = {"tiers": [{"rate": "0.10"}], "cap": "500"}
    deals = [
        deal("d1", "3000", JAN5),
        deal("d2", "4000", date(2026, 1, 6)),
        deal("d3", "1000", date(2026, 1, 7)),
    ]
    jan = by_period(run(plan(commission=commission), deals))["2026-01"]
    assert [str(line.amount) for line in jan.lines] == ["300.00", "200.00", "0.00"]
    assert "cut by the period cap of 500.00" in jan.lines[1].rule
    assert jan.commission == D("500.00")


def test_negative_line_passes_the_cap_and_frees_room() -> None:
    commission = {"tiers": [{"rate": "0.10"}], "cap": "500"}
    deals = [
        deal("d1", "5000", JAN5),
        deal("d2", "-1000", date(2026, 1, 6)),
        deal("d3", "3000", date(2026, 1, 7)),
    ]
    jan = by_period(run(plan(commission=commission), deals))["2026-01"]
    assert [str(line.amount) for line in jan.lines] == ["500.00", "-100.00", "100.00"]


def test_spiffs_are_not_capped() -> None:
    commission = {"tiers": [{"rate": "0.10"}], "cap": "100"}
    spiffs = [{"name": "nl", "when": {"type": "New Business"}, "amount": "250"}]
    jan = by_period(
        run(
            plan(commission=commission, spiffs=spiffs),
            [deal("d1", "5000", JAN5, type="New Business")],
        )
    )["2026-01"]
    assert (jan.commission, jan.spiffs) == (D("100.00"), D("250.00"))


# --- Credit: splits and cancellations ------------------------------------------------


def test_split_credits_each_rep_exactly() -> None:
    p = plan(
        members=["r1", "r2"],
        commission={"tiers_on": "amount", "tiers": [{"rate": "0.10"}]},
        quota=None,
    )
    result = run(p, [deal("d", "1000.01", JAN5, splits=(("r1", "33.3"), ("r2", "66.7")))])
    r1, r2 = by_period(result, "r1")["2026-01"], by_period(result, "r2")["2026-01"]
    # 1,000.01 × 33.3 % = 333.00333; × 10 % = 33.300333 → 33.30. r2: 667.00667 → 66.70.
    assert (r1.bookings, r1.commission) == (D("333.003330"), D("33.30"))
    assert (r2.bookings, r2.commission) == (D("667.006670"), D("66.70"))
    assert r1.won_count == r2.won_count == 1


def test_split_share_of_non_member_is_ignored() -> None:
    result = run(plan(), [deal("d", "1000", JAN5, splits=(("r1", "40"), ("outsider", "60")))])
    assert by_period(result)["2026-01"].bookings == D("400")
    assert {s.rep_id for s in result.statements} == {"r1"}


def test_same_period_cancellation_counts_as_lost() -> None:
    p = plan(clawback={"window_days": 90})
    jan = by_period(run(p, [deal("d", "5000", JAN5, "cancelled", cancel=JAN20)]))["2026-01"]
    assert (jan.bookings, jan.commission, jan.clawbacks) == (D(0), D(0), D(0))
    assert (jan.won_count, jan.lost_count) == (0, 1)


def test_deals_of_non_members_are_ignored() -> None:
    result = run(plan(), [deal("d", "5000", JAN5, owner="stranger")])
    assert by_period(result)["2026-01"].bookings == 0


# --- Clawbacks -------------------------------------------------------------------------


def test_clawback_inside_window_reverses_commission_and_spiff() -> None:
    p = plan(
        clawback={"window_days": 90},
        spiffs=[{"name": "nl", "when": {"type": "New Business"}, "amount": "250"}],
    )
    d = deal("d", "5000", JAN5, "cancelled", cancel=date(2026, 3, 2), type="New Business")
    periods = by_period(run(p, [d]))
    jan, mar = periods["2026-01"], periods["2026-03"]
    assert (jan.commission, jan.spiffs) == (D("500.00"), D("250.00"))
    assert jan.won_count == 1  # a later-cancelled deal counts as won in its close period
    (line,) = mar.lines
    assert (line.kind, line.deal_id, line.amount, line.paid_period) == (
        LineKind.CLAWBACK,
        "d",
        D("-750.00"),
        "2026-01",
    )
    assert mar.clawbacks == D("-750.00")


def test_no_clawback_outside_window_or_without_clawback_block() -> None:
    d = deal("d", "5000", JAN5, "cancelled", cancel=date(2026, 4, 6))  # 91 days later
    assert by_period(run(plan(clawback={"window_days": 90}), [d]))["2026-04"].clawbacks == 0
    inside = deal("d", "5000", JAN5, "cancelled", cancel=date(2026, 4, 5))  # 90 days: inside
    assert by_period(run(plan(clawback={"window_days": 90}), [inside]))["2026-04"].clawbacks == D(
        "-500.00"
    )
    assert by_period(run(plan(), [inside]))["2026-04"].clawbacks == 0


def test_clawback_reverses_only_what_the_cap_let_through() -> None:
    p = plan(clawback={"window_days": 90}, commission={"tiers": [{"rate": "0.10"}], "cap": "300"})
    d = deal("d", "5000", JAN5, "cancelled", cancel=FEB10)
    assert by_period(run(p, [d]))["2026-02"].clawbacks == D("-300.00")


def test_clawback_deficit_without_draw_is_recovered_in_full() -> None:
    # Feb: earnings -1,000 → balance 1,000. Mar: earns 1,500 → recovers 1,000, pays 500.
    p = plan(clawback={"window_days": 90}, commission={"tiers": [{"rate": "0.10"}]})
    deals = [
        deal("d", "10000", JAN5, "cancelled", cancel=FEB10),
        deal("e", "15000", date(2026, 3, 3)),
    ]
    periods = by_period(run(p, deals))
    feb, mar = periods["2026-02"], periods["2026-03"]
    assert (feb.earnings, feb.payout, feb.draw_balance) == (D("-1000.00"), 0, D("1000.00"))
    assert (mar.draw_recovered, mar.payout, mar.draw_balance) == (D("1000.00"), D("500.00"), 0)


def test_clawback_dropped_when_rep_has_left() -> None:
    p = plan(clawback={"window_days": 90})
    reps = [Rep("r1", end_date=date(2026, 1, 31))]
    result = run(p, [deal("d", "5000", JAN5, "cancelled", cancel=FEB10)], reps=reps)
    assert [s.period for s in result.statements] == ["2026-01"]
    assert "dropped" in result.warnings[0].message


# --- SPIFFs and bonuses -------------------------------------------------------------------


def test_flat_spiff_in_proportion_to_split_and_only_on_positive_credit() -> None:
    spiffs = [{"name": "nl", "when": {"type": "New Business"}, "amount": "250"}]
    p = plan(members=["r1", "r2"], spiffs=spiffs)
    deals = [
        deal("d1", "1000", JAN5, splits=(("r1", "40"), ("r2", "60")), type="New Business"),
        deal("d2", "-500", JAN20, type="New Business"),
    ]
    result = run(p, deals)
    r1 = by_period(result, "r1")["2026-01"]
    assert [(line.deal_id, str(line.amount)) for line in r1.lines if line.kind == "spiff"] == [
        ("d1", "100.00")
    ]
    assert by_period(result, "r2")["2026-01"].spiffs == D("150.00")


def test_rate_spiff_and_multi_property_match() -> None:
    spiffs = [{"name": "multi", "when": {"type": "Renewal", "region": "EMEA"}, "rate": "0.02"}]
    deals = [
        deal("d1", "1234.25", JAN5, type="Renewal", region="EMEA"),
        deal("d2", "5000", JAN5, type="Renewal", region="APAC"),
    ]
    jan = by_period(run(plan(spiffs=spiffs), deals))["2026-01"]
    # 1,234.25 × 2 % = 24.685 → 24.69; d2 does not match region.
    assert jan.spiffs == D("24.69")


def test_bonuses_compare_exact_attainment() -> None:
    bonuses = [{"at": "1.0", "amount": "1000"}, {"at": "0.5", "amount": "200"}]
    p = plan(bonuses=bonuses, quota="30000")
    # 29,999.99 / 30,000 = 0.9999997 rounds to "1.0000" but is below 100 %: only the 50 % bonus.
    jan = by_period(run(p, [deal("d", "29999.99", JAN5)]))["2026-01"]
    assert jan.bonuses == D("200.00")
    feb = by_period(run(p, [deal("d", "30000", FEB10)]))["2026-02"]
    assert feb.bonuses == D("1200.00")
    assert all(line.deal_id is None for line in feb.lines if line.kind == "bonus")


# --- Quota, ramp, overrides, periods --------------------------------------------------


def test_ramp_and_override() -> None:
    p = plan(
        members=["r1", "dana@acme.example"],
        quota="50000",
        quota_overrides={"dana@acme.example": "60000"},
        ramp=["0.25", "0.5"],
    )
    reps = [Rep("r1"), Rep("r2", email="Dana@Acme.example", start_date=date(2026, 3, 15))]
    result = run(p, [], reps=reps, as_of=date(2026, 5, 31))
    assert [s.quota for s in by_period(result, "r1").values()] == [
        D("12500.00"),
        D("25000.0"),
        D(50000),
        D(50000),
        D(50000),
    ]
    # r2 starts mid-March: k = 1 is March.
    assert {k: s.quota for k, s in by_period(result, "r2").items()} == {
        "2026-03": D("15000.00"),
        "2026-04": D("30000.0"),
        "2026-05": D(60000),
    }


def test_periods_run_from_start_to_end_and_deals_place_by_period() -> None:
    reps = [Rep("r1", start_date=date(2026, 2, 20), end_date=date(2026, 4, 10))]
    deals = [
        deal("early", "1000", date(2026, 2, 1)),  # before start_date, in the first period
        deal("late", "1000", date(2026, 4, 30)),  # after end_date, in the last period
        deal("outside", "1000", date(2026, 5, 2)),
    ]
    result = run(plan(), deals, reps=reps)
    periods = by_period(result)
    assert list(periods) == ["2026-02", "2026-03", "2026-04"]
    assert periods["2026-02"].bookings == periods["2026-04"].bookings == D(1000)


def test_quarters_and_as_of_period_counts_whole() -> None:
    result = run(
        plan(),
        [deal("d", "1000", date(2026, 6, 30))],
        as_of=date(2026, 4, 1),
        kind=PeriodKind.QUARTER,
    )
    periods = by_period(result)
    assert list(periods) == ["2026-Q1", "2026-Q2"]
    assert periods["2026-Q2"].bookings == D(1000)


def test_unmatched_email_member_is_warned_and_skipped() -> None:
    result = run(plan(members=["nobody@acme.example"]), [])
    assert result.statements == ()
    assert result.warnings[0].message == (
        "plan p: member nobody@acme.example matches no rep; skipped"
    )


def test_consecutive_plans_keep_separate_ledgers() -> None:
    draw = {"type": "recoverable", "amount": "1000"}
    h1 = plan(id="h1", end=date(2026, 6, 30), draw=draw, ramp=["0.5"])
    h2 = plan(id="h2", start=date(2026, 7, 1), draw=draw, ramp=["0.5"])
    result = run([h1, h2], [], as_of=date(2026, 7, 31))
    periods = [(s.plan_id, s.period, s.quota, s.draw_balance) for s in result.statements]
    assert periods[5] == ("h1", "2026-06", D(10000), D("6000"))
    # k restarts (ramp again) and the h1 balance does not move into h2.
    assert periods[6] == ("h2", "2026-07", D("5000.0"), D("1000"))


def test_overlapping_plans_for_one_rep_are_an_error() -> None:
    a = plan(id="a", members=["r1"])
    b = plan(id="b", members=["dana@acme.example"], start=date(2026, 6, 1))
    with pytest.raises(CalculationError, match="rep r1 is in plans a and b"):
        run([a, b], [], reps=[Rep("r1", email="dana@acme.example")])


# --- Draws -------------------------------------------------------------------------------


def _earnings_plan(draw: dict[str, object], **extra: object) -> object:
    # 100 % flat commission so each period's earnings equal its bookings.
    return plan(
        quota=None, commission={"tiers_on": "amount", "tiers": [{"rate": "1"}]}, draw=draw, **extra
    )


def _monthly_deals(amounts: list[str]) -> list[object]:
    return [deal(f"d{m}", a, date(2026, m, 15)) for m, a in enumerate(amounts, start=1) if a != "0"]


def test_recoverable_draw_oracle_scenario() -> None:
    # Oracle Siebel Incentive Compensation, "Recoverable Draw Scenario"
    # (docs.oracle.com/cd/E05553_01/books/InCompAdm/InCompAdmPlanDesign8.html): a 2,000
    # monthly draw; earnings 2,750, 3,000, 1,500, 2,375, 3,000, 2,750 are paid as
    # 2,750, 3,000, 2,000, 2,000 (375 recovered), 2,875 (125 recovered), 2,750.
    p = _earnings_plan({"type": "recoverable", "amount": "2000", "periods": 6})
    deals = _monthly_deals(["2750", "3000", "1500", "2375", "3000", "2750"])
    periods = list(by_period(run(p, deals, as_of=date(2026, 6, 30))).values())
    assert [s.payout for s in periods] == [D(x) for x in (2750, 3000, 2000, 2000, 2875, 2750)]
    assert [s.draw_balance for s in periods] == [0, 0, 500, D("125.00"), 0, 0]
    assert [s.draw_recovered for s in periods] == [0, 0, 0, D("375.00"), D("125.00"), 0]


@pytest.mark.parametrize(
    ("draw_type", "september_payout", "september_balance"),
    [
        ("recoverable", "2000.00", "0.00"),
        ("non_recoverable", "3000", "0"),
    ],
)
def test_draw_types_xactly_example(
    draw_type: str, september_payout: str, september_balance: str
) -> None:
    # Xactly, "The Non-Recoverable Draw Against Commission": a 1,500 draw; August earns
    # 500 and is paid 1,500; September earns 3,000: a recoverable draw takes back the
    # 1,000 advanced (paid 2,000), a non-recoverable one does not (paid 3,000).
    p = _earnings_plan({"type": draw_type, "amount": "1500"}, start=date(2026, 8, 1))
    deals = [deal("aug", "500", date(2026, 8, 10)), deal("sep", "3000", date(2026, 9, 10))]
    periods = by_period(run(p, deals, as_of=date(2026, 9, 30)))
    assert periods["2026-08"].payout == D(1500)
    assert periods["2026-09"].payout == D(september_payout)
    assert periods["2026-09"].draw_balance == D(september_balance)


def test_recovery_cap_and_draw_periods() -> None:
    # Draw 3,000 for 2 periods, recovery cap 50 %.
    # Jan earns 1,000: paid 3,000, balance 2,000. Feb earns 0: paid 3,000, balance 5,000.
    # Mar (no draw): earns 4,000.01 → excess 4,000.01 × 0.5 = 2,000.005 → 2,000.01 recovered,
    # paid 2,000.00, balance 2,999.99.
    p = _earnings_plan(
        {"type": "recoverable", "amount": "3000", "periods": 2, "recovery_cap": "0.5"}
    )
    periods = list(
        by_period(
            run(p, _monthly_deals(["1000", "0", "4000.01"]), as_of=date(2026, 3, 31))
        ).values()
    )
    assert [s.draw for s in periods] == [D(3000), D(3000), 0]
    assert [s.payout for s in periods] == [D(3000), D(3000), D("2000.00")]
    assert periods[2].draw_recovered == D("2000.01")
    assert periods[2].draw_balance == D("2999.99")


def test_non_recoverable_draw_is_a_guaranteed_minimum() -> None:
    p = _earnings_plan({"type": "non_recoverable", "amount": "2000"})
    periods = list(
        by_period(run(p, _monthly_deals(["500", "2500"]), as_of=date(2026, 2, 28))).values()
    )
    assert [s.payout for s in periods] == [D(2000), D(2500)]
    assert [s.draw_balance for s in periods] == [0, 0]


@pytest.mark.parametrize(
    ("forgive", "end_date", "expected_forgiven", "expected_balance"),
    [
        ("on_termination", date(2026, 2, 15), "2000", "0"),
        ("never", date(2026, 2, 15), "0", "2000"),
        ("at_plan_end", date(2026, 2, 15), "0", "2000"),  # left before the plan ended: still owed
    ],
)
def test_forgiveness_on_termination(
    forgive: str, end_date: date, expected_forgiven: str, expected_balance: str
) -> None:
    p = _earnings_plan({"type": "recoverable", "amount": "1000", "forgive": forgive})
    periods = by_period(run(p, [], reps=[Rep("r1", end_date=end_date)]))
    last = periods["2026-02"]
    assert list(periods) == ["2026-01", "2026-02"]
    assert (last.draw_forgiven, last.draw_balance) == (D(expected_forgiven), D(expected_balance))


def test_forgiveness_at_plan_end_only_once_the_plan_is_over() -> None:
    p = _earnings_plan(
        {"type": "recoverable", "amount": "1000", "forgive": "at_plan_end"}, end=date(2026, 3, 31)
    )
    running = by_period(run(p, [], as_of=date(2026, 3, 30)))["2026-03"]
    assert (running.draw_forgiven, running.draw_balance) == (0, D(3000))
    ended = by_period(run(p, [], as_of=date(2026, 4, 30)))["2026-03"]
    assert (ended.draw_forgiven, ended.draw_balance) == (D(3000), 0)


def test_on_termination_forgives_clawback_deficits_too() -> None:
    p = plan(
        clawback={"window_days": 90},
        commission={"tiers": [{"rate": "0.10"}]},
        draw={"type": "recoverable", "amount": "0", "forgive": "on_termination"},
    )
    reps = [Rep("r1", end_date=date(2026, 2, 20))]
    d = deal("d", "10000", JAN5, "cancelled", cancel=FEB10)
    feb = by_period(run(p, [d], reps=reps))["2026-02"]
    assert (feb.draw_forgiven, feb.draw_balance) == (D("1000.00"), 0)


# --- KPIs ----------------------------------------------------------------------------------


def test_kpis() -> None:
    deals = [
        deal("w1", "3000", JAN5),
        deal("w2", "1000", JAN5),
        deal("l1", "9999", JAN5, "lost"),
        deal("o1", "4000", JAN20, "open"),
        deal("o2", "500.5", JAN20, "open"),
        deal("o3", "700", FEB10, "open"),
    ]
    jan = by_period(run(plan(), deals, as_of=date(2026, 1, 31)))["2026-01"]
    assert (jan.won_count, jan.lost_count) == (2, 1)
    assert jan.win_rate == D("0.6667")
    assert jan.average_deal_size == D("2000.00")
    assert jan.open_pipeline == D("4500.5")


def test_empty_period_kpis_are_null() -> None:
    jan = by_period(run(plan(), [], as_of=date(2026, 1, 31)))["2026-01"]
    assert (jan.win_rate, jan.average_deal_size) == (None, None)
    assert jan.lines == ()


# --- Input errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            deal("d", "1", FEB10, "cancelled", cancel=JAN5),
            "deal d: cancel_date 2026-01-05 is before",
        ),
        (deal("d", "1", JAN5, "cancelled"), "deal d: a cancelled deal needs a cancel_date"),
        (
            deal("d", "1", JAN5, splits=(("r1", "50"), ("r1", "50"))),
            "deal d: a rep is listed twice",
        ),
        (deal("d", "1", JAN5, splits=(("r1", "50"), ("r2", "40"))), "split percents sum to 90"),
    ],
)
def test_input_errors(bad: object, message: str) -> None:
    with pytest.raises(CalculationError, match=message):
        run(plan(), [bad])  # type: ignore[list-item]


def test_duplicate_deal_ids() -> None:
    with pytest.raises(CalculationError, match="deal d: the id appears twice"):
        run(plan(), [deal("d", "1", JAN5), deal("d", "2", JAN20)])
