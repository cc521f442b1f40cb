"""Worked examples, numbers checked by hand, that pin each money rule of the core.

Invariants (lines sum to totals, order does not matter) hold whatever the rounding or
the sign; these tests say what the figure must be.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from connector.core.money import (
    format_count,
    format_days,
    format_fraction,
    format_money,
    is_whole_cents,
    parse_decimal,
    ratio,
    round_cents,
)
from connector.core.periods import PeriodKind, first_day, label, parse_label, period_of

D = Decimal
MONTH, QUARTER = PeriodKind.MONTH, PeriodKind.QUARTER


# --- money --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        ("1", "3", "0.3333"),  # 0.33333… down
        ("2", "3", "0.6667"),  # 0.66666… up
        ("1", "8", "0.1250"),  # exact
        ("1", "80000", "0.0000"),  # 0.0000125: under half a step
        ("1", "20000", "0.0001"),  # 0.00005 exactly: the tie goes up (half-up)
        ("-1", "20000", "-0.0001"),  # and away from zero below it
        ("3", "-20000", "-0.0002"),  # 0.00015: the sign of a credit note is kept
        ("-12000", "10000", "-1.2000"),
        ("-6", "-4", "1.5000"),  # two negatives make a positive
        ("-1", "80000", "0.0000"),  # rounds to zero: no "-0.0000"
        ("12000", "10000", "1.2000"),
        ("1", "0.5", "2.0000"),  # a divisor under 1 is still positive
        ("-1", "0.5", "-2.0000"),
    ],
)
def test_ratio_rounds_half_up_once_and_keeps_the_sign(
    numerator: str, denominator: str, expected: str
) -> None:
    result = ratio(D(numerator), D(denominator))
    assert str(result) == expected


def test_ratio_to_other_places_and_at_absurd_widths() -> None:
    assert ratio(D("1"), D("8"), D("0.01")) == D("0.13")  # 0.125: tie, up
    assert ratio(D("-1"), D("8"), D("0.01")) == D("-0.13")
    assert ratio(D("10") ** 30, D("3")) == D("333333333333333333333333333333.3333")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.005", "0.01"),
        ("-0.005", "-0.01"),  # half away from zero
        ("0.0049", "0.00"),
        ("-0.004", "0.00"),  # never -0.00
        ("1234.565", "1234.57"),
        ("2.675", "2.68"),
    ],
)
def test_round_cents(value: str, expected: str) -> None:
    assert str(round_cents(D(value))) == expected


@pytest.mark.parametrize(
    ("value", "money", "fraction", "days", "count"),
    [
        ("30", "30.00", "30.0000", "30.0", "30"),
        ("2.50", "2.50", "2.5000", "2.5", "2.5"),
        ("0.33335", "0.33", "0.3334", "0.3", "0.33335"),
        ("-0.00001", "0.00", "0.0000", "0.0", "-0.00001"),
        ("100", "100.00", "100.0000", "100.0", "100"),
        ("0", "0.00", "0.0000", "0.0", "0"),
        ("-0", "0.00", "0.0000", "0.0", "0"),
        ("12.05", "12.05", "12.0500", "12.1", "12.05"),
        # Ties round half up at every step (half-even would give 0.02, 0.0002, 0.2).
        ("0.025", "0.03", "0.0250", "0.0", "0.025"),
        ("0.00025", "0.00", "0.0003", "0.0", "0.00025"),
        ("0.25", "0.25", "0.2500", "0.3", "0.25"),
        # Counts: trailing zeros go, a whole number loses its point, no exponent.
        ("3.00", "3.00", "3.0000", "3.0", "3"),
        ("1E+1", "10.00", "10.0000", "10.0", "10"),
        ("0.0000001", "0.00", "0.0000", "0.0", "0.0000001"),
    ],
)
def test_formats(value: str, money: str, fraction: str, days: str, count: str) -> None:
    number = D(value)
    assert format_money(number) == money
    assert format_fraction(number) == fraction
    assert format_days(number) == days
    assert format_count(number) == count


@pytest.mark.parametrize(
    ("value", "whole"), [("1.00", True), ("1.5", True), ("1.005", False), ("-0.01", True)]
)
def test_whole_cents(value: str, whole: bool) -> None:
    assert is_whole_cents(D(value)) is whole


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.1, "0.1 is a binary float; give the number as text"),
        (True, "True is not a number"),
        ("abc", "'abc' is not a number"),
        ("NaN", "'NaN' is not a finite number"),
        ("Infinity", "'Infinity' is not a finite number"),
        ([1], "[1] is not a number"),
        ("1e21", "1e21 is beyond any plausible amount"),
    ],
)
def test_parse_decimal_refuses_with_a_message(value: object, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_decimal(value)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [(" 12.50 ", "12.50"), (7, "7"), (D("1.5"), "1.5"), ("1e20", "1E+20"), ("-3", "-3")],
)
def test_parse_decimal_reads(value: object, expected: str) -> None:
    assert str(parse_decimal(value)) == expected


# --- periods --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "month", "quarter", "month_start", "quarter_start"),
    [
        (date(2026, 1, 1), "2026-01", "2026-Q1", date(2026, 1, 1), date(2026, 1, 1)),
        (date(2026, 3, 31), "2026-03", "2026-Q1", date(2026, 3, 1), date(2026, 1, 1)),
        (date(2026, 4, 1), "2026-04", "2026-Q2", date(2026, 4, 1), date(2026, 4, 1)),
        (date(2026, 6, 30), "2026-06", "2026-Q2", date(2026, 6, 1), date(2026, 4, 1)),
        (date(2026, 7, 15), "2026-07", "2026-Q3", date(2026, 7, 1), date(2026, 7, 1)),
        (date(2026, 12, 31), "2026-12", "2026-Q4", date(2026, 12, 1), date(2026, 10, 1)),
        (date(999, 5, 2), "0999-05", "0999-Q2", date(999, 5, 1), date(999, 4, 1)),
    ],
)
def test_periods_of_a_day(
    day: date, month: str, quarter: str, month_start: date, quarter_start: date
) -> None:
    m, q = period_of(day, MONTH), period_of(day, QUARTER)
    assert (label(m, MONTH), label(q, QUARTER)) == (month, quarter)
    assert (first_day(m, MONTH), first_day(q, QUARTER)) == (month_start, quarter_start)
    assert (parse_label(month, MONTH), parse_label(quarter, QUARTER)) == (m, q)


def test_period_ordinals_are_plain_arithmetic() -> None:
    assert period_of(date(2026, 1, 1), MONTH) == 2026 * 12
    assert period_of(date(2026, 12, 1), MONTH) == 2026 * 12 + 11
    assert period_of(date(2026, 1, 1), QUARTER) == 2026 * 4
    assert period_of(date(2026, 10, 1), QUARTER) == 2026 * 4 + 3
    assert parse_label("2027-01", MONTH) - parse_label("2026-12", MONTH) == 1
    assert parse_label("2027-Q1", QUARTER) - parse_label("2026-Q4", QUARTER) == 1


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("2026-13", MONTH, "'2026-13' is not a month like 2026-03"),
        ("2026-00", MONTH, "'2026-00' is not a month like 2026-03"),
        ("2026-Q1", MONTH, "'2026-Q1' is not a month like 2026-03"),
        ("2026-3", MONTH, "'2026-3' is not a month like 2026-03"),
        ("2026-Q5", QUARTER, "'2026-Q5' is not a quarter like 2026-Q1"),
        ("2026-03", QUARTER, "'2026-03' is not a quarter like 2026-Q1"),
        ("x2026-Q1", QUARTER, "'x2026-Q1' is not a quarter like 2026-Q1"),
    ],
)
def test_parse_label_refuses(text: str, kind: PeriodKind, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_label(text, kind)
    assert str(raised.value) == message


# --- commission -------------------------------------------------------------------------

from connector.core.commission import (  # noqa: E402
    Credit,
    Schedule,
    bonus_lines,
    commission_lines,
    deal_matcher,
    deal_value,
    percent_text,
    spiff_lines,
)
from connector.core.models import Deal, DealStatus, LineKind  # noqa: E402
from connector.core.plans import Bonus, Commission, Spiff  # noqa: E402


def a_deal(deal_id: str, amount: str = "1000", **properties: str) -> Deal:
    return Deal(
        id=deal_id,
        owner_id="r1",
        amount=D(amount),
        close_date=date(2026, 1, 10),
        status=DealStatus.WON,
        type=properties.pop("type", None),
        properties=properties,
        currency="USD",
    )


def credit(deal_id: str, amount: str, share: str = "1", **properties: str) -> Credit:
    return Credit(a_deal(deal_id, amount, **properties), D(amount), D(share))


def schedule(quota: str | None = "10000", **commission: object) -> Schedule:
    spec: dict[str, object] = {
        "tiers": [
            {"up_to": "1.0", "rate": "0.10"},
            {"up_to": "1.5", "rate": "0.15"},
            {"rate": "0.20"},
        ]
    }
    spec.update(commission)
    return Schedule.build(Commission.model_validate(spec), None if quota is None else D(quota))


@pytest.mark.parametrize(
    ("fraction", "text"),
    [("0.1", "10%"), ("0.125", "12.5%"), ("1", "100%"), ("1.5", "150%"), ("0", "0%"),
     ("1E-9", "0.0000001%"), ("0.10", "10%")],
)  # fmt: skip
def test_percent_text(fraction: str, text: str) -> None:
    assert percent_text(D(fraction)) == text


def test_schedule_on_attainment_scales_bounds_by_the_quota() -> None:
    built = schedule()
    assert built.bounds == (D("10000"), D("15000"))
    assert built.rates == (D("0.10"), D("0.15"), D("0.20"))
    assert built.at_bounds == (D("1000"), D("1750"))  # 10 % of 10,000; + 15 % of 5,000
    assert built.labels == ("tier 1 (<=100%) 10%", "tier 2 (<=150%) 15%", "tier 3 (>150%) 20%")


def test_schedule_on_amount_keeps_bounds_as_money_even_with_a_quota() -> None:
    tiers = [{"up_to": "5000", "rate": "0.05"}, {"rate": "0.08"}]
    built = schedule("10000", tiers_on="amount", tiers=tiers)
    assert built.bounds == (D("5000"),)
    assert built.at_bounds == (D("250"),)
    assert built.labels == ("tier 1 (<=5000.00) 5%", "tier 2 (>5000.00) 8%")
    assert schedule(None, tiers_on="amount", tiers=tiers).bounds == (D("5000"),)


def test_one_tier_is_all() -> None:
    built = schedule(tiers=[{"rate": "0.07"}])
    assert built.labels == ("tier 1 (all) 7%",)
    assert built.tier_of(D("-5")) == 0 and built.tier_of(D("10") ** 12) == 0


def test_attainment_tiers_without_a_quota_are_refused() -> None:
    with pytest.raises(ValueError) as raised:
        schedule(None)
    assert str(raised.value) == "attainment tiers need a quota"


@pytest.mark.parametrize(
    ("bookings", "tier"),
    [("-1", 0), ("0", 0), ("10000", 0), ("10000.01", 1), ("15000", 1), ("15000.01", 2)],
)
def test_tier_of_has_inclusive_upper_bounds(bookings: str, tier: int) -> None:
    assert schedule().tier_of(D(bookings)) == tier


@pytest.mark.parametrize(
    ("start", "end", "spanned"),
    [
        ("0", "5000", (0, 0)),
        ("10000", "12000", (1, 1)),  # starts on a bound: wholly in the tier above
        ("9000", "12000", (0, 1)),
        ("12000", "9000", (0, 1)),  # a credit note runs backwards over the same slice
        ("5000", "20000", (0, 2)),
        ("15000", "15000", (1, 1)),
        ("16000", "20000", (2, 2)),  # wholly past the last bound
    ],
)
def test_tiers_spanned(start: str, end: str, spanned: tuple[int, int]) -> None:
    assert schedule().tiers_spanned(D(start), D(end)) == spanned


def test_marginal_lines_name_their_tiers_and_blend_across_bounds() -> None:
    credits = [credit("a", "8000"), credit("b", "4000"), credit("c", "5000"), credit("d", "-2000")]
    lines = commission_lines(credits, schedule())
    assert [(ln.deal_id, str(ln.amount), str(ln.rate), ln.rule) for ln in lines] == [
        ("a", "800.00", "0.10", "tier 1 (<=100%) 10%"),
        # 2,000 at 10 % + 2,000 at 15 % = 500 over 4,000: 12.5 %
        ("b", "500.00", "0.1250", "tiers 1-2 blended (marginal)"),
        # 12,000 → 17,000: 3,000 at 15 % + 2,000 at 20 % = 850 over 5,000
        ("c", "850.00", "0.1700", "tiers 2-3 blended (marginal)"),
        # 17,000 → 15,000: back over the 20 % tier: -400
        ("d", "-400.00", "0.20", "tier 3 (>150%) 20%"),
    ]
    assert [ln.credit for ln in lines] == [D("8000"), D("4000"), D("5000"), D("-2000")]
    assert all(ln.kind is LineKind.COMMISSION and ln.paid_period is None for ln in lines)


def test_a_credit_that_lands_on_a_bound_stays_in_its_tier() -> None:
    lines = commission_lines([credit("a", "6000"), credit("b", "4000")], schedule())
    assert [ln.rule for ln in lines] == ["tier 1 (<=100%) 10%", "tier 1 (<=100%) 10%"]
    after = commission_lines(
        [credit("a", "10000"), credit("b", "1000")], schedule()
    )  # 10,000 → 11,000 lies wholly in tier 2
    assert (after[1].rule, after[1].amount) == ("tier 2 (<=150%) 15%", D("150.00"))


def test_retroactive_lines_say_the_tier_and_the_method() -> None:
    credits = [credit("a", "8000"), credit("b", "4000.10")]
    lines = commission_lines(credits, schedule(method="retroactive"))
    assert [(ln.deal_id, str(ln.amount), str(ln.rate), ln.rule) for ln in lines] == [
        ("a", "1200.00", "0.15", "tier 2 (<=150%) 15% on all bookings (retroactive)"),
        ("b", "600.02", "0.15", "tier 2 (<=150%) 15% on all bookings (retroactive)"),  # 600.015
    ]
    assert [(ln.kind, ln.paid_period, ln.credit) for ln in lines] == [
        (LineKind.COMMISSION, None, D("8000")),
        (LineKind.COMMISSION, None, D("4000.10")),
    ]


@pytest.mark.parametrize(
    ("amounts", "cap", "paid"),
    [
        # 1,000 + 500 + 300 against a cap of 1,200: the second is cut to 200, the third to 0.
        (["10000", "3333.33", "2000"], "1200", ["1000.00", "200.00", "0.00"]),
        # Exactly at the cap: nothing is cut.
        (["10000", "1333.33"], "1200", ["1000.00", "200.00"]),
        # A credit note after the cap is reached comes off what was paid: 15,000 → 14,000
        # lies in the 15 % tier.
        (["10000", "5000", "-1000"], "1200", ["1000.00", "200.00", "-150.00"]),
        # A line under 1.00 never overshoots the cap.
        (["9.90", "5"], "1.00", ["0.99", "0.01"]),
    ],
)
def test_the_period_cap(amounts: list[str], cap: str, paid: list[str]) -> None:
    credits = [credit(f"d{i}", amount) for i, amount in enumerate(amounts)]
    lines = commission_lines(credits, schedule(cap=cap))
    assert [str(ln.amount) for ln in lines] == paid
    uncapped = commission_lines(credits, schedule())
    cut = [ln.rule.endswith(f"; cut by the period cap of {D(cap):.2f}") for ln in lines]
    assert cut == [str(ln.amount) != str(r.amount) for ln, r in zip(lines, uncapped, strict=True)]
    assert sum(ln.amount for ln in lines) <= D(cap)


def test_spiffs_every_one_checked_for_every_deal() -> None:
    spiffs = [
        Spiff(name="renewals", when={"type": "Renewal"}, amount=D("25")),  # matches nothing
        Spiff(name="new-logo", when={"type": "New Business"}, amount=D("100")),
        Spiff(name="east", when={"region": "East"}, rate=D("0.02")),
    ]
    credits = [
        credit("a", "1000", type="New Business", region="East"),
        credit("b", "500", share="0.4", type="New Business"),
        credit("z", "0", type="New Business"),  # a zero credit earns no flat SPIFF
        credit("n", "-300", type="New Business", region="East"),  # nor does a credit note
        credit("p", "0.50", type="New Business"),  # any positive credit does
    ]
    lines = spiff_lines(credits, spiffs)
    assert [(ln.deal_id, str(ln.amount), ln.rate, ln.rule) for ln in lines] == [
        ("a", "100.00", None, "SPIFF new-logo: 100.00 per deal"),
        ("a", "20.00", D("0.02"), "SPIFF east: 2% of credit"),
        ("b", "40.00", None, "SPIFF new-logo: 100.00 per deal × 40% split"),
        ("n", "-6.00", D("0.02"), "SPIFF east: 2% of credit"),
        ("p", "100.00", None, "SPIFF new-logo: 100.00 per deal"),
    ]
    assert all(ln.kind is LineKind.SPIFF for ln in lines)
    assert spiff_lines(credits, []) == []


def test_deal_matcher_and_values() -> None:
    deal = a_deal("d9", type="Renewal", region="West")
    assert deal_value(deal, "type") == "Renewal"
    assert deal_value(deal, "region") == "West"
    assert deal_value(deal, "status") == "won"
    assert deal_value(deal, "currency") == "USD"
    assert deal_value(deal, "owner_id") == "r1"
    assert deal_value(deal, "id") == "d9"
    assert deal_value(deal, "nothing") is None
    assert deal_matcher({"type": "Renewal"})(deal)
    assert not deal_matcher({"type": "New Business"})(deal)
    # The type as a column only (a CRM's "Type" read into the properties).
    by_property = Deal("d8", "r1", D("1"), date(2026, 1, 1), DealStatus.WON,
                       properties={"type": "Renewal"})  # fmt: skip
    assert deal_matcher({"type": "Renewal"})(by_property)
    assert not deal_matcher({"type": "New Business"})(by_property)
    assert deal_matcher({"type": "Renewal", "region": "West"})(deal)
    assert not deal_matcher({"type": "Renewal", "region": "East"})(deal)
    assert deal_matcher({"region": "West"})(deal)


def test_bonuses_compare_exact_bookings_with_the_threshold() -> None:
    bonuses = [Bonus(at=D("1.0"), amount=D("100")), Bonus(at=D("1.2"), amount=D("250.5"))]
    assert bonus_lines(D("9999.99"), D("10000"), bonuses) == []
    reached = bonus_lines(D("10000"), D("10000"), bonuses)
    assert [(str(ln.amount), ln.rule, ln.deal_id, ln.rate) for ln in reached] == [
        ("100.00", "bonus for attainment >= 100%", None, None)
    ]
    both = bonus_lines(D("12000"), D("10000"), bonuses)
    assert [str(ln.amount) for ln in both] == ["100.00", "250.50"]
    assert [ln.rule for ln in both][1] == "bonus for attainment >= 120%"
    assert bonus_lines(D("99999"), None, bonuses) == []


# --- credit -----------------------------------------------------------------------------

from connector.core.credit import activity_by_rep, validate_deals  # noqa: E402
from connector.core.models import Split  # noqa: E402
from connector.errors import CalculationError  # noqa: E402
from tests.engine_helpers import deal as dealt  # noqa: E402

PLAIN = dealt("ok", "100", date(2026, 1, 5))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            dealt("c", "100", date(2026, 1, 5), "cancelled"),
            "deal c: a cancelled deal needs a cancel_date",
        ),
        (
            dealt("e", "100", date(2026, 2, 5), "cancelled", cancel=date(2026, 1, 5)),
            "deal e: cancel_date 2026-01-05 is before close_date 2026-02-05",
        ),
        (
            dealt("t", "100", date(2026, 1, 5), splits=(("r1", "50"), ("r1", "50"))),
            "deal t: a rep is listed twice in its splits",
        ),
        (
            dealt("s", "100", date(2026, 1, 5), splits=(("r1", "60"), ("r2", "30"))),
            "deal s: split percents sum to 90, not 100",
        ),
    ],
)
def test_validation_names_the_deal_even_after_plain_ones(bad: Deal, message: str) -> None:
    # A plain deal first, and a good split deal: every deal is checked, not just the first.
    good_split = dealt("g", "100", date(2026, 1, 5), splits=(("r1", "60"), ("r2", "40")))
    with pytest.raises(CalculationError) as raised:
        validate_deals([PLAIN, good_split, bad])
    assert str(raised.value) == message


def test_validation_accepts_what_is_right_and_names_a_repeated_id() -> None:
    same_day = dealt("x", "100", date(2026, 1, 5), "cancelled", cancel=date(2026, 1, 5))
    validate_deals([PLAIN, same_day])
    with pytest.raises(CalculationError) as raised:
        validate_deals(
            [dealt("y", "1", date(2026, 1, 1)), PLAIN, dealt("ok", "1", date(2026, 1, 1))]
        )
    assert str(raised.value) == "deal ok: the id appears twice"


def test_activity_buckets_each_deal_by_rep_and_period() -> None:
    deals = [
        dealt("w2", "200", date(2026, 1, 20)),
        dealt("w1", "100", date(2026, 1, 20)),  # same day: ordered by id
        dealt("w0", "50", date(2026, 1, 2)),
        dealt("sp", "1000", date(2026, 2, 3), splits=(("r1", "25"), ("r2", "75"))),
        dealt("lo", "70", date(2026, 1, 9), "lost"),
        dealt("op", "80", date(2026, 3, 9), "open"),
        dealt("cx", "90", date(2026, 1, 9), "cancelled", cancel=date(2026, 1, 30)),  # same month
        dealt("cl", "40", date(2026, 1, 9), "cancelled", cancel=date(2026, 4, 1)),  # later
        dealt("xx", "999", date(2026, 1, 9), owner="stranger"),
        dealt("sc", "400", date(2026, 1, 9), "cancelled", cancel=date(2026, 2, 1),
              splits=(("r1", "50"), ("r2", "50"))),
    ]  # fmt: skip
    activity = activity_by_rep(deals, {"r1", "r2"}, MONTH)
    jan, feb, mar = (parse_label(p, MONTH) for p in ("2026-01", "2026-02", "2026-03"))
    r1, r2 = activity["r1"], activity["r2"]
    assert [(c.deal.id, c.amount, c.share) for c in r1.credits[jan]] == [
        ("w0", D("50"), D("1")),
        ("cl", D("40"), D("1")),
        ("sc", D("200"), D("0.5")),
        ("w1", D("100"), D("1")),
        ("w2", D("200"), D("1")),
    ]
    assert [(c.deal.id, c.amount, c.share) for c in r1.credits[feb]] == [
        ("sp", D("250"), D("0.25"))
    ]
    assert [(c.deal.id, c.amount) for c in r2.credits[feb]] == [("sp", D("750"))]
    assert [d.id for d in r1.lost[jan]] == ["cx", "lo"] or [d.id for d in r1.lost[jan]] == [
        "lo",
        "cx",
    ]
    assert [d.id for d in r1.lost[jan]] == ["lo", "cx"]
    assert [d.id for d in r1.open_deals[mar]] == ["op"]
    assert [(r.deal.id, r.close_period, r.cancel_period) for r in r1.reversals] == [
        ("cl", jan, parse_label("2026-04", MONTH)),
        ("sc", jan, feb),
    ]
    assert [r.deal.id for r in r2.reversals] == ["sc"]
    assert set(activity) == {"r1", "r2"}
    assert r2.lost == {} and r2.open_deals == {}


def test_activity_by_quarter() -> None:
    deals = [
        dealt("a", "10", date(2026, 3, 31)),
        dealt("b", "20", date(2026, 4, 1)),
        dealt("c", "30", date(2026, 2, 1), "cancelled", cancel=date(2026, 3, 30)),
    ]
    activity = activity_by_rep(deals, {"r1"}, QUARTER)["r1"]
    q1, q2 = parse_label("2026-Q1", QUARTER), parse_label("2026-Q2", QUARTER)
    assert [c.deal.id for c in activity.credits[q1]] == ["a"]
    assert [c.deal.id for c in activity.credits[q2]] == ["b"]
    assert [d.id for d in activity.lost[q1]] == ["c"]


# --- diff: the values our CRM fields should hold ---------------------------------------------

import dataclasses  # noqa: E402

from connector.core.diff import deal_values, rep_values  # noqa: E402
from connector.core.models import GoalResult, Line, Statement, TeamResult  # noqa: E402

Z = D(0)
BASE = Statement(
    rep_id="r1", plan_id="p", period="2026-01", quota=D("1000"), bookings=Z, attainment=Z,
    commission=Z, spiffs=Z, bonuses=Z, clawbacks=Z, earnings=Z, draw=Z, draw_paid=Z,
    draw_recovered=Z, draw_balance=Z, draw_forgiven=Z, payout=Z, won_count=0, lost_count=0,
    win_rate=None, average_deal_size=None, open_pipeline=Z, lines=(),
)  # fmt: skip


def stmt(period: str, payout: str = "0", **changes: object) -> Statement:
    return dataclasses.replace(BASE, period=period, payout=D(payout), **changes)  # type: ignore[arg-type]


def goal(
    metric: str, attainment: str | None, team: str | None = None, gid: str = "g"
) -> GoalResult:
    value = None if attainment is None else D(attainment)
    return GoalResult(gid, metric, team, D("10"), D("5"), value)


def test_payout_ytd_stops_at_the_year_boundary() -> None:
    history = [
        stmt("2025-11", "50"),
        stmt("2025-12", "100"),
        stmt("2026-01", "200"),
        stmt("2026-02", "300"),
        stmt("2026-03", "400"),  # after the as-of period: not in the year to date
    ]
    assert rep_values(history, "2026-02")["r1"]["payout_ytd"] == "500.00"
    assert rep_values(history, "2026-02")["r1"]["period"] == "2026-02"
    assert rep_values(history, "2025-12")["r1"]["payout_ytd"] == "150.00"
    # Before every statement: the rep's latest one stands.
    early = rep_values(history, "2025-01")["r1"]
    assert (early["period"], early["payout_ytd"]) == ("2026-03", "900.00")  # 200 + 300 + 400


def test_the_current_statement_of_two_plans_is_the_last_by_plan_id() -> None:
    history = [
        stmt("2026-01", "7", plan_id="b", bookings=D("2")),
        stmt("2026-01", "5", plan_id="a", bookings=D("1")),
    ]
    values = rep_values(history, "2026-01")["r1"]
    assert values["bookings"] == "2.00"
    assert values["payout_ytd"] == "12.00"


def test_goal_fields_hold_each_metrics_attainment() -> None:
    goals = (
        goal("deals_won", "0.5"),
        goal("deals_won", "0.9", gid="second"),  # a second goal of one metric: the first stands
        goal("revenue", "1.2345", team="t1"),
        goal("new_customers", None),
    )
    values = rep_values([stmt("2026-01", goals=goals)], "2026-01")["r1"]
    assert values["deals_won_attainment"] == "0.5000"
    assert values["team_attainment"] == "1.2345"
    assert values["new_customers_attainment"] is None
    assert values["team_deals_won_attainment"] is None
    assert values["team_new_customers_attainment"] is None


def test_a_manager_gets_the_latest_team_goal_up_to_the_as_of_period() -> None:
    def team(
        period: str, attainment: str, manager: str | None = "m", team_id: str = "t1"
    ) -> TeamResult:
        return TeamResult(
            "p", period, team_id, manager, ("r1",), goal("revenue", attainment, team_id)
        )

    teams = [
        team("2026-01", "0.4"),
        team("2026-02", "0.6"),
        team("2026-03", "0.9"),  # after the as-of period
        team("2026-02", "0.7", team_id="t2"),  # a second team of the same manager: t1 first
        team("2026-02", "0.1", manager=None, team_id="t3"),  # no manager: nobody's record
        team("2026-01", "0.3", manager="n"),
    ]
    values = rep_values([stmt("2026-02")], "2026-02", teams)
    # A manager on no plan: team fields only (no pace: these results were made without one).
    assert values["m"] == {"team_attainment": "0.6000", "team_pace": None}
    assert values["n"] == {"team_attainment": "0.3000", "team_pace": None}
    assert set(values) == {"r1", "m", "n"}
    # A manager who is also a rep keeps their own figures beside the team's.
    mixed = rep_values([stmt("2026-02", rep_id="m", bookings=D("3"))], "2026-02", teams)["m"]
    assert (mixed["bookings"], mixed["team_attainment"]) == ("3.00", "0.6000")


def line(kind: LineKind, deal_id: str | None, amount: str, credit: str | None = None) -> Line:
    return Line(kind, deal_id, D(amount), None, "r", None, None if credit is None else D(credit))


def test_deal_values_sum_every_statement_and_name_the_last_period() -> None:
    statements = [
        stmt("2026-01", lines=(line(LineKind.COMMISSION, "a", "100", "1000"),
                               line(LineKind.COMMISSION, "b", "5", "0"),
                               line(LineKind.SPIFF, "a", "50"),
                               line(LineKind.BONUS, None, "70"),
                               line(LineKind.COMMISSION, "other", "9", "90"))),
        stmt("2026-02", rep_id="r2", lines=(line(LineKind.COMMISSION, "a", "60", "500"),)),
        stmt("2026-03", lines=(line(LineKind.CLAWBACK, "a", "-100"),
                               line(LineKind.CLAWBACK, "a", "-60"))),
    ]  # fmt: skip
    values = deal_values(statements, ["a", "b", "none"])
    # 160 on 1,500 of credit: 0.106666… → 0.106667
    assert values["a"] == {
        "commission": "160.00",
        "commission_rate": "0.106667",
        "commission_period": "2026-02",
        "clawback": "-160.00",
        "estimated_commission": None,
    }
    assert values["b"] == {
        "commission": "5.00",
        "commission_rate": None,  # no credit to divide by
        "commission_period": "2026-01",
        "clawback": "0.00",
        "estimated_commission": None,
    }
    assert values["none"] == dict.fromkeys(
        ("commission", "commission_rate", "commission_period", "clawback", "estimated_commission")
    )
    assert set(values) == {"a", "b", "none"}


# --- snapshots: what we remember of a deal, and what the engine may compute ------------------

from datetime import UTC, datetime  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from connector.core.members import resolve, resolve_members  # noqa: E402
from connector.core.models import (  # noqa: E402
    CrmDeal,
    CrmUser,
    Outcome,
    Rep,
)
from connector.core.plans import Plan  # noqa: E402
from connector.core.snapshots import (  # noqa: E402
    as_deleted,
    business_key,
    carries_credit,
    credited,
    currency_warning,
    engine_deals,
    rep_of,
    snapshot_of,
    touched_reps,
)
from connector.errors import ConfigError  # noqa: E402

BERLIN = ZoneInfo("Europe/Berlin")


def crm_deal(
    outcome: Outcome = Outcome.WON,
    at: datetime = datetime(2026, 3, 10, 23, 30, tzinfo=UTC),  # 11 March in Berlin
    close: date | None = date(2026, 3, 5),
    deleted: bool = False,
    amount: str | None = "100",
    **extra: object,
) -> CrmDeal:
    return CrmDeal(
        id=str(extra.pop("id", "d1")),
        owner_id=str(extra.pop("owner", "r1")),
        amount=None if amount is None else D(amount),
        close_date=close,
        outcome=outcome,
        modified_at=at,
        deleted=deleted,
        **extra,  # type: ignore[arg-type]
    )


def test_a_won_deal_remembers_the_day_it_was_first_seen_won() -> None:
    won = snapshot_of(crm_deal(), None, BERLIN)
    assert (won.status, won.first_won_on, won.cancel_date) == (
        DealStatus.WON, date(2026, 3, 11), None,
    )  # fmt: skip
    later = snapshot_of(crm_deal(at=datetime(2026, 4, 1, tzinfo=UTC)), won, BERLIN)
    assert later.first_won_on == date(2026, 3, 11)


def test_a_deal_won_once_then_lost_is_cancelled_on_the_day_seen() -> None:
    won = snapshot_of(crm_deal(), None, BERLIN)
    lost = snapshot_of(crm_deal(Outcome.LOST, at=datetime(2026, 4, 2, 8, tzinfo=UTC)), won, BERLIN)
    assert (lost.status, lost.cancel_date, lost.first_won_on) == (
        DealStatus.CANCELLED, date(2026, 4, 2), date(2026, 3, 11),
    )  # fmt: skip
    # Seen again later, still lost: the cancel date stays the first one.
    again = snapshot_of(crm_deal(Outcome.OPEN, at=datetime(2026, 5, 1, tzinfo=UTC)), lost, BERLIN)
    assert (again.status, again.cancel_date) == (DealStatus.CANCELLED, date(2026, 4, 2))
    # Deleted after winning: cancelled too.
    gone = snapshot_of(crm_deal(deleted=True, at=datetime(2026, 4, 9, tzinfo=UTC)), won, BERLIN)
    assert (gone.status, gone.cancel_date, gone.deleted) == (
        DealStatus.CANCELLED, date(2026, 4, 9), True,
    )  # fmt: skip


def test_reversed_before_its_close_date_is_cancelled_on_the_close_date() -> None:
    won = snapshot_of(crm_deal(close=date(2026, 6, 30)), None, BERLIN)
    lost = snapshot_of(crm_deal(Outcome.LOST, close=date(2026, 6, 30)), won, BERLIN)
    assert lost.cancel_date == date(2026, 6, 30)


def test_never_won_is_lost_or_open() -> None:
    assert snapshot_of(crm_deal(Outcome.LOST), None, BERLIN).status is DealStatus.LOST
    assert snapshot_of(crm_deal(Outcome.OPEN), None, BERLIN).status is DealStatus.OPEN
    deleted = snapshot_of(crm_deal(Outcome.OPEN, deleted=True), None, BERLIN)
    assert (deleted.status, deleted.first_won_on) == (DealStatus.OPEN, None)


def test_snapshot_keeps_every_field_and_as_deleted_gives_it_back() -> None:
    deal = crm_deal(
        currency="EUR", type="Renewal", name="Big", properties={"region": "East"},
        created_date=date(2026, 1, 2),
    )  # fmt: skip
    snap = snapshot_of(deal, None, BERLIN)
    assert (snap.id, snap.owner_id, snap.amount, snap.currency, snap.close_date) == (
        "d1", "r1", D("100"), "EUR", date(2026, 3, 5),
    )  # fmt: skip
    assert (snap.type, snap.name, dict(snap.properties), snap.created_date) == (
        "Renewal", "Big", {"region": "East"}, date(2026, 1, 2),
    )  # fmt: skip
    assert (snap.outcome, snap.modified_at, snap.deleted) == (Outcome.WON, deal.modified_at, False)
    back = as_deleted(snap)
    assert back.deleted is True
    assert (back.id, back.owner_id, back.amount, back.close_date, back.outcome) == (
        "d1", "r1", D("100"), date(2026, 3, 5), Outcome.WON,
    )  # fmt: skip
    assert (back.currency, back.type, back.name, dict(back.properties), back.created_date) == (
        "EUR", "Renewal", "Big", {"region": "East"}, date(2026, 1, 2),
    )  # fmt: skip
    assert back.modified_at == deal.modified_at


@pytest.mark.parametrize(
    "change",
    [
        {"owner": "r2"}, {"amount": "101"}, {"currency": "EUR"}, {"close": date(2026, 3, 6)},
        {"outcome": Outcome.LOST}, {"type": "Renewal"}, {"properties": {"a": "b"}},
        {"deleted": True}, {"created_date": date(2026, 1, 1)},
    ],
)  # fmt: skip
def test_every_business_field_touches_the_reps(change: dict[str, object]) -> None:
    before = snapshot_of(crm_deal(), None, BERLIN)
    after = snapshot_of(crm_deal(**change), before, BERLIN)  # type: ignore[arg-type]
    assert business_key(before) != business_key(after)
    assert touched_reps(before, after) == {"r1", str(change.get("owner", "r1"))}
    assert touched_reps(None, after) == {after.owner_id}


def test_a_rename_or_a_new_stamp_touches_nobody() -> None:
    before = snapshot_of(crm_deal(name="A"), None, BERLIN)
    after = snapshot_of(crm_deal(name="B", at=datetime(2026, 3, 20, tzinfo=UTC)), before, BERLIN)
    assert touched_reps(before, after) == set()


def test_who_a_deal_credits_and_whether_it_can() -> None:
    assert carries_credit(snapshot_of(crm_deal(), None, BERLIN))
    # Open: its estimate credits its split reps, so its splits are read.
    assert carries_credit(snapshot_of(crm_deal(Outcome.OPEN), None, BERLIN))
    assert not carries_credit(snapshot_of(crm_deal(Outcome.LOST), None, BERLIN))
    won = snapshot_of(crm_deal(), None, BERLIN)
    assert carries_credit(snapshot_of(crm_deal(Outcome.LOST), won, BERLIN))
    plain = Deal("d", "o", D("1"), date(2026, 1, 1), DealStatus.WON)
    assert credited(plain) == ["o"]
    split = plain._replace(splits=(Split("a", D("60")), Split("b", D("40"))))
    assert credited(split) == ["a", "b"]


def test_rep_of_and_the_currency_warning() -> None:
    user = CrmUser("u", "Ann", "a@x", False, manager_id="m", team_id="t")
    assert rep_of(user) == Rep(
        id="u", name="Ann", email="a@x", active=False, manager_id="m", team_id="t"
    )
    snap = snapshot_of(crm_deal(currency="EUR"), None, BERLIN)
    assert currency_warning(snap, "USD") == (
        "deal d1 is in EUR, not the plan currency USD: left out of the calculation"
    )
    assert currency_warning(snap, "EUR") is None
    assert currency_warning(snapshot_of(crm_deal(), None, BERLIN), "USD") is None


def test_engine_deals_leave_out_and_report_what_cannot_be_computed() -> None:
    won = snapshot_of(crm_deal(id="ok", currency="USD"), None, BERLIN)
    snaps = [
        won,
        snapshot_of(crm_deal(Outcome.OPEN, id="del", deleted=True), None, BERLIN),
        snapshot_of(crm_deal(id="eur", currency="EUR"), None, BERLIN),
        snapshot_of(crm_deal(id="noamount", amount=None), None, BERLIN),
        snapshot_of(crm_deal(id="noclose", close=None), None, BERLIN),
        snapshot_of(crm_deal(Outcome.OPEN, id="openclose", close=None), None, BERLIN),
        snapshot_of(crm_deal(id="huge", amount="100000000000000"), None, BERLIN),
        snapshot_of(crm_deal(id="almost", amount="99999999999999.99"), None, BERLIN),
        snapshot_of(crm_deal(id="neg", amount="-100000000000000"), None, BERLIN),
        snapshot_of(crm_deal(id="split"), None, BERLIN),
        snapshot_of(crm_deal(id="badsplit"), None, BERLIN),
        snapshot_of(crm_deal(id="twice"), None, BERLIN),
        snapshot_of(crm_deal(deleted=True, id="gone"), won, BERLIN),  # won, then deleted
    ]
    splits = {
        "split": [("a", D("60")), ("b", D("40"))],
        "badsplit": [("a", D("60")), ("b", D("30"))],
        "twice": [("a", D("50")), ("a", D("50"))],
    }
    deals, warnings = engine_deals(reversed(snaps), splits, "USD")
    assert [d.id for d in deals] == ["almost", "badsplit", "gone", "ok", "split", "twice"]
    by_id = {d.id: d for d in deals}
    assert by_id["split"].splits == (Split("a", D("60")), Split("b", D("40")))
    assert by_id["badsplit"].splits == () and by_id["twice"].splits == ()
    assert by_id["gone"].status is DealStatus.CANCELLED
    ok = by_id["ok"]
    assert (ok.owner_id, ok.amount, ok.close_date, ok.currency) == (
        "r1", D("100"), date(2026, 3, 5), "USD",
    )  # fmt: skip
    assert [w.message for w in warnings] == [
        "deal badsplit: splits sum to 90, not 100 (or name a rep twice); credited to the owner",
        "deal huge: amount 100000000000000 is beyond any plausible deal (10^14 or more): "
        "left out of the calculation",
        "deal neg: amount -100000000000000 is beyond any plausible deal (10^14 or more): "
        "left out of the calculation",
        "deal noamount is won but has no amount: left out of the calculation",
        "deal noclose is won but has no close date: left out of the calculation",
        "deal twice: splits sum to 100, not 100 (or name a rep twice); credited to the owner",
    ]


# --- members ------------------------------------------------------------------------------


def test_members_resolve_by_id_or_by_email_in_any_case() -> None:
    users = {
        "005A": CrmUser("005A", "Ann", "Ann@Acme.example", True),
        "005B": CrmUser("005B", "Bo", "", True),
    }
    plans = [
        Plan.model_validate({"id": "p1", "start": "2026-01-01", "end": "2026-12-31",
                             "members": ["005B", "ann@acme.EXAMPLE"], "quota": "1",
                             "commission": {"tiers": [{"rate": "0.1"}]}}),
        Plan.model_validate({"id": "p2", "start": "2026-01-01", "end": "2026-12-31",
                             "members": ["005X", "nobody@acme.example", "005A"], "quota": "1",
                             "commission": {"tiers": [{"rate": "0.1"}]}}),
    ]  # fmt: skip
    members, problems = resolve(plans, users)
    assert members == {"005A", "005B"}
    assert problems == [
        "plans[1].members: 005X is not a CRM user id (plan p2)",
        "plans[1].members: nobody@acme.example matches no CRM user (plan p2)",
    ]
    with pytest.raises(ConfigError) as raised:
        resolve_members(plans, users)
    assert str(raised.value) == "\n".join(problems)
    assert resolve_members(plans[:1], users) == {"005A", "005B"}


# --- goals and teams ---------------------------------------------------------------------------

from connector.core.goals import (  # noqa: E402
    TeamIndex,
    crm_team_spells,
    goal_matcher,
    listed_team_spells,
    measure,
    prepare,
    team_spells,
)
from connector.core.models import TeamSpell  # noqa: E402
from connector.core.plans import Goal, GoalMetric, Team, TeamMember  # noqa: E402


def test_measure_sums_revenue_with_its_sign_and_counts_deals_by_share() -> None:
    credits = [
        credit("a", "1000", type="New Business"),
        credit("b", "500", share="0.4", type="Renewal"),
        credit("c", "-200", type="New Business"),  # a credit note
    ]
    assert measure(True, credits, None) == D("1300")
    new = goal_matcher(
        Goal(metric=GoalMetric.REVENUE, team=True, target=D("1"), when={"type": "New Business"})
    )
    assert measure(True, credits, new) == D("800")  # 1,000 − 200
    assert measure(False, credits, None) == D("1.4")  # 1 + 0.4; a credit note is no deal
    assert measure(False, credits, new) == D("1")
    assert measure(False, [], None) == D("0") and measure(True, [], None) == D("0")


def test_a_won_deal_of_zero_is_a_deal_won_as_won_count_says() -> None:
    free = [credit("z", "0.00", type="New Business"), credit("y", "0", share="0.5")]
    assert measure(False, free, None) == D("1.5")
    new = goal_matcher(Goal(metric=GoalMetric.NEW_CUSTOMERS, target=D("1")))
    assert measure(False, free, new) == D("1")
    assert measure(True, free, None) == D("0")


@pytest.mark.parametrize(
    ("type_", "column", "counts"),
    [
        ("New Customer", None, True),  # Salesforce
        ("newbusiness", None, True),  # HubSpot
        ("New Business", None, True),
        ("Renewal", None, False),
        (None, "New Business", True),  # the type as a column only
        (None, "Existing Business", False),
        (None, None, False),
    ],
)
def test_new_customers_count_the_crms_new_business_types(
    type_: str | None, column: str | None, counts: bool
) -> None:
    matches = goal_matcher(Goal(metric=GoalMetric.NEW_CUSTOMERS, target=D("1")))
    assert matches is not None
    properties = {"type": column} if column else {}
    deal = Deal(
        "d", "r1", D("1"), date(2026, 1, 1), DealStatus.WON, type=type_, properties=properties
    )
    assert matches(deal) is counts
    assert goal_matcher(Goal(metric=GoalMetric.DEALS_WON, target=D("1"))) is None
    filtered = goal_matcher(
        Goal(metric=GoalMetric.NEW_CUSTOMERS, target=D("1"), when={"region": "East"})
    )
    assert filtered is not None and not filtered(deal)


def test_prepared_goals_carry_their_bonuses_and_rules() -> None:
    plan_ = Plan.model_validate({
        "id": "p", "start": "2026-01-01", "end": "2026-12-31", "members": ["r1"],
        "quota": "100", "commission": {"tiers": [{"rate": "0.1"}]}, "ramp": ["0.5"],
        "goals": [
            {"metric": "deals_won", "target": "4"},
            {"id": "team_rev", "metric": "revenue", "team": True, "target": "1000"},
            {"metric": "new_customers", "target": "2", "ramp": []},
        ],
        "bonuses": [
            {"goal": "deals_won", "at": "1.0", "amount": "100.01"},
            {"goal": "team_rev", "at": "1.25", "amount": "50", "pay": "manager"},
            {"goal": "team_rev", "at": "1.5", "amount": "70"},
            {"at": "1.0", "amount": "10"},
        ],
    })  # fmt: skip
    individual, team = prepare(plan_)
    assert [(g.key, g.metric, g.revenue, g.ramp) for g in individual] == [
        ("deals_won", "deals_won", False, (D("0.5"),)),  # the plan's ramp
        ("new_customers", "new_customers", False, ()),  # its own (none)
    ]
    assert individual[0].bonuses == (
        (D("1.0"), D("100.01"), "members", "bonus for deals_won attainment >= 100%"),
    )
    assert individual[0].matches is None and individual[1].matches is not None
    assert [(g.key, g.revenue) for g in team] == [("team_rev", True)]
    assert team[0].bonuses == (
        (D("1.25"), D("50.00"), "manager",
         "team bonus for team_rev attainment >= 125% (to the manager)"),
        (D("1.5"), D("70.00"), "members", "team bonus for team_rev attainment >= 150%"),
    )  # fmt: skip


def test_crm_teams_lead_by_managers_and_follow_the_history() -> None:
    reps = [
        Rep("boss"),
        Rep("ann", manager_id="boss"),
        Rep("bo", manager_id="boss"),
        Rep("cy", team_id="t-9"),  # a CRM team wins over a manager
        Rep("dee"),  # no manager, leads nobody: on no team
    ]
    spells = crm_team_spells(reps)
    assert sorted(spells) == sorted([
        TeamSpell("ann", "boss", "boss"),
        TeamSpell("bo", "boss", "boss"),
        TeamSpell("boss", "boss", "boss"),  # a manager leads their own team
        TeamSpell("cy", "t-9", None),
    ])  # fmt: skip
    # Ann moved from boss to cy's team on 1 March; the history says so.
    history = {
        "ann": [(date(2026, 3, 1), "cy", None), (None, "boss", None)],
        "cy": [(None, None, None)],
    }
    moved = [s for s in crm_team_spells(reps, history) if s.rep_id in ("ann", "cy")]
    assert moved == [
        TeamSpell("ann", "boss", "boss", None, date(2026, 2, 28)),
        TeamSpell("ann", "cy", "cy", date(2026, 3, 1), None),
        TeamSpell("cy", "cy", "cy", None, None),  # cy manages ann at some time: leads
    ]


def test_listed_teams_resolve_emails_and_add_the_manager() -> None:
    reps = [Rep("r1", email="Ann@x.example"), Rep("r2"), Rep("m1", email="m@x.example")]
    teams = [
        Team(id="east", manager="M@x.example", members=(
            "ann@x.example",
            TeamMember.model_validate({"id": "r2", "from": "2026-02-01", "until": "2026-05-31"}),
            "ghost@x.example",  # nobody: left out
        )),
        Team(id="west", manager="r2", members=("r2x", TeamMember.model_validate(
            {"id": "r2", "from": "2026-06-01"}))),
        Team(id="solo", members=("r9",)),
    ]  # fmt: skip
    spells = listed_team_spells(teams, reps)
    assert spells == [
        TeamSpell("r1", "east", "m1", None, None),
        TeamSpell("r2", "east", "m1", date(2026, 2, 1), date(2026, 5, 31)),
        TeamSpell("m1", "east", "m1"),  # the manager, not listed, counts for the team
        TeamSpell("r2x", "west", "r2", None, None),
        TeamSpell("r2", "west", "r2", date(2026, 6, 1), None),
        TeamSpell("r9", "solo", None, None, None),
    ]
    assert team_spells(teams, reps) == spells
    assert team_spells(None, reps) == []
    assert team_spells("crm", [Rep("a", manager_id="b"), Rep("b")]) == [
        TeamSpell("a", "b", "b"), TeamSpell("b", "b", "b"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("first", "second", "overlaps"),
    [
        (("2026-01-01", "2026-03-31"), ("2026-04-01", None), False),
        (("2026-01-01", "2026-04-01"), ("2026-04-01", None), True),  # one shared day
        ((None, None), ("2026-04-01", None), True),
        (("2026-05-01", None), (None, "2026-04-30"), False),
    ],
)
def test_a_rep_on_two_listed_teams_on_one_day_is_refused(
    first: tuple[str | None, str | None], second: tuple[str | None, str | None], overlaps: bool
) -> None:
    def member(span: tuple[str | None, str | None]) -> TeamMember:
        return TeamMember.model_validate({"id": "r1", "from": span[0], "until": span[1]})

    teams = [Team(id="a", members=(member(first),)), Team(id="b", members=(member(second),))]
    if not overlaps:
        assert len(listed_team_spells(teams, [])) == 2
        return
    with pytest.raises(CalculationError) as raised:
        listed_team_spells(teams, [])
    assert str(raised.value).startswith("teams: rep r1 is on teams ")
    assert str(raised.value).endswith(
        " on the same days; give `from` / `until` dates that do not overlap"
    )


def test_the_team_index_answers_by_day() -> None:
    index = TeamIndex([
        TeamSpell("ann", "east", "m", None, date(2026, 2, 28)),
        TeamSpell("ann", "west", "w", date(2026, 3, 1), None),
        TeamSpell("bo", "east", None),
        TeamSpell("m", "east", "m"),
        TeamSpell("cy", "north", None, date(2026, 5, 1), date(2026, 5, 31)),
    ])  # fmt: skip
    assert bool(index) and not bool(TeamIndex([]))
    assert index.team_of("ann", date(2026, 2, 28)) == "east"
    assert index.team_of("ann", date(2026, 3, 1)) == "west"
    assert index.team_of("bo", date(1990, 1, 1)) == "east"
    assert index.team_of("cy", date(2026, 4, 30)) is None
    assert index.team_of("cy", date(2026, 5, 31)) == "north"
    assert index.team_of("cy", date(2026, 6, 1)) is None
    assert index.team_of("nobody", date(2026, 1, 1)) is None
    assert index.always("bo") == "east" and index.always("ann") is None
    assert index.managers == {"east": "m", "west": "w", "north": None}  # a named manager wins
    assert index.teammates({"bo"}) == {"ann", "bo", "m"}
    assert index.teammates({"ann"}) == {"ann", "bo", "m"}
    assert index.teammates({"cy"}) == {"cy"}
    assert index.teammates({"stranger"}) == {"stranger"}
    later = TeamIndex([TeamSpell("dan", "east", None, date(2026, 5, 1), None)])
    assert later.team_of("dan", date(2026, 4, 30)) is None
    assert later.team_of("dan", date(2026, 5, 1)) == "east"
    assert later.always("dan") is None


# --- statements: the calculation's own rules ------------------------------------------------

from connector.core.models import CrmQuota  # noqa: E402
from connector.core.statements import calculate, reps_to_compute  # noqa: E402


def a_plan(**overrides: object) -> Plan:
    spec: dict[str, object] = {
        "id": "p", "start": "2026-01-01", "end": "2026-12-31", "members": ["r1"],
        "quota": "10000", "commission": {"tiers": [{"rate": "0.1"}]},
    }  # fmt: skip
    spec.update(overrides)
    return Plan.model_validate(spec)


def calc(plans: list[Plan], deals: list[Deal], **inputs: object) -> list[Statement]:
    inputs.setdefault("as_of", date(2026, 12, 31))
    result = calculate(plans, [], deals, period_kind=MONTH, **inputs)  # type: ignore[arg-type]
    return list(result.statements)


def test_missing_crm_quotas_are_one_error_listing_runs_of_periods() -> None:
    members = [f"r{i}" for i in range(1, 13)]
    plan_ = a_plan(members=members, quota=None, quota_source="crm",
                   commission={"tiers": [{"rate": "0.1"}]}, end="2026-04-30")  # fmt: skip
    # r1 has January and March; r2 has January only; the others have none.
    quotas = [CrmQuota("r1", date(2026, m, 1), D("100")) for m in (1, 3)]
    quotas.append(CrmQuota("r2", date(2026, 1, 15), D("100")))
    with pytest.raises(CalculationError) as raised:
        calc([plan_], [], crm_quotas=quotas, as_of=date(2026, 4, 30))
    assert str(raised.value) == (
        "plan p: the CRM has no quota for rep r1 2026-02, 2026-04, rep r10 2026-01 to 2026-04, "
        "rep r11 2026-01 to 2026-04, rep r12 2026-01 to 2026-04, rep r2 2026-02 to 2026-04, "
        "rep r3 2026-01 to 2026-04, rep r4 2026-01 to 2026-04, rep r5 2026-01 to 2026-04, "
        "rep r6 2026-01 to 2026-04, rep r7 2026-01 to 2026-04 and 2 more reps: enter them "
        "in the CRM, or set the plan's quota in spm.yaml to fall back on"
    )


def test_exactly_ten_reps_missing_are_all_listed() -> None:
    members = [f"r{i}" for i in range(10)]
    plan_ = a_plan(members=members, quota=None, quota_source="crm", end="2026-01-31")
    with pytest.raises(CalculationError) as raised:
        calc([plan_], [], as_of=date(2026, 1, 31))
    assert "rep r9 2026-01: enter them" in str(raised.value)
    assert "more reps" not in str(raised.value)


def test_missing_crm_goal_targets_name_the_goal() -> None:
    plan_ = a_plan(goals=[{"metric": "deals_won", "target_source": "crm"}], end="2026-01-31")
    with pytest.raises(CalculationError) as raised:
        calc([plan_], [], as_of=date(2026, 1, 31))
    assert str(raised.value) == (
        "plan p: the CRM has no deals_won target for rep r1 2026-01: enter them in the CRM, "
        "or set the deals_won goal's target in spm.yaml to fall back on"
    )


def test_crm_quotas_add_up_by_period_and_a_zero_falls_back() -> None:
    plan_ = a_plan(quota_source="crm", end="2026-03-31")
    quotas = [
        CrmQuota("r1", date(2026, 1, 1), D("300")),
        CrmQuota("r1", date(2026, 1, 20), D("200")),  # same month: added
        CrmQuota("r1", date(2026, 2, 1), D("0")),  # zero: no quota, the plan's stands
    ]
    statements = calc([plan_], [], crm_quotas=quotas, as_of=date(2026, 3, 31))
    assert [(s.period, s.quota) for s in statements] == [
        ("2026-01", D("500")), ("2026-02", D("10000")), ("2026-03", D("10000")),
    ]  # fmt: skip


def test_a_one_day_plan_on_the_first_day_of_another_overlaps_it() -> None:
    long = a_plan(id="a", start="2026-07-01", end=None)
    one_day = a_plan(id="b", start="2026-07-01", end="2026-07-01")
    with pytest.raises(CalculationError, match="rep r1 is in plans a and b"):
        calc([long, one_day], [], as_of=date(2026, 7, 31))


def test_a_months_team_is_the_one_on_its_last_day_not_the_as_of_day() -> None:
    team_goal = {"id": "team_rev", "metric": "revenue", "team": True, "target": "100"}
    plan_ = a_plan(members=["r1"], end="2026-12-31", goals=[team_goal])
    spells = [TeamSpell("r1", "t", None, None, date(2026, 2, 9)),
              TeamSpell("r1", "u", None, date(2026, 2, 10), None)]  # fmt: skip
    result = calculate([plan_], [], [], period_kind=MONTH, as_of=date(2026, 2, 28), teams=spells)
    jan = next(s for s in result.statements if s.period == "2026-01")
    assert [g.team_id for g in jan.goals] == ["t"]


@pytest.mark.parametrize(
    ("first_end", "second_start", "overlap"),
    [("2026-06-30", "2026-07-01", False), ("2026-07-01", "2026-07-01", True),
     (None, "2027-01-01", True)],
)  # fmt: skip
def test_a_rep_in_two_plans_on_one_day_is_refused(
    first_end: str | None, second_start: str, overlap: bool
) -> None:
    first = a_plan(id="a", end=first_end)
    second = a_plan(id="b", start=second_start, end=None)
    if not overlap:
        assert calc([first, second], [], as_of=date(2026, 7, 31))
        return
    with pytest.raises(CalculationError) as raised:
        calc([first, second], [], as_of=date(2027, 1, 31))
    assert str(raised.value) == "rep r1 is in plans a and b, which cover the same days"


def test_a_mid_month_plan_change_counts_each_deal_in_the_plan_covering_its_day() -> None:
    first = a_plan(id="a", end="2026-03-15", commission={"tiers": [{"rate": "0.1"}]})
    second = a_plan(id="b", start="2026-03-16", commission={"tiers": [{"rate": "0.2"}]})
    deals = [
        Deal("early", "r1", D("1000"), date(2026, 3, 10), DealStatus.WON),
        Deal("late", "r1", D("3000"), date(2026, 3, 20), DealStatus.WON),
    ]
    march = [s for s in calc([first, second], deals, as_of=date(2026, 3, 31))
             if s.period == "2026-03"]  # fmt: skip
    # early on plan a at 10 %, late on plan b at 20 %.
    assert [(s.plan_id, s.commission) for s in march] == [("a", D("100.00")), ("b", D("600.00"))]


def test_reps_to_compute_adds_teammates_only_with_team_goals() -> None:
    spells = [TeamSpell("r1", "t", "m"), TeamSpell("r2", "t", "m"), TeamSpell("r3", "u", None)]
    plain = [a_plan()]
    assert reps_to_compute(plain, spells, {"r1"}) == {"r1"}
    team = [a_plan(goals=[{"metric": "revenue", "team": True, "target": "1"}])]
    assert reps_to_compute(team, spells, {"r1"}) == {"r1", "r2"}
    assert reps_to_compute(team, spells, {"r1"}, TeamIndex(spells)) == {"r1", "r2"}


def test_a_team_goal_worked_through_by_hand() -> None:
    """Team t: manager m (on the plan too), r1 and r2; r1 moves to team u on 16 January.

    January's credits: r1 5,000 on the 10th (team t) and 3,000 on the 20th (team u);
    r2 6,000 on the 5th; m 1,000 on the 8th. Team t: 12,000 of 10,000 → 120 %;
    team u: 3,000 → 30 %. On 31 January r1 is on u, r2 and m on t: they are t's
    members, paid t's member bonus of 100; m also gets the manager's 500.
    """
    plan_ = a_plan(
        members=["m", "r1", "r2"],
        goals=[{"id": "team_rev", "metric": "revenue", "team": True, "target": "10000"}],
        bonuses=[
            {"goal": "team_rev", "at": "1.0", "amount": "100"},
            {"goal": "team_rev", "at": "1.0", "amount": "500", "pay": "manager"},
            {"goal": "team_rev", "at": "1.5", "amount": "999"},
        ],
        end="2026-01-31",
    )
    spells = [
        TeamSpell("m", "t", "m"),
        TeamSpell("r2", "t", "m"),
        TeamSpell("r1", "t", "m", None, date(2026, 1, 15)),
        TeamSpell("r1", "u", None, date(2026, 1, 16), None),
    ]
    deals = [
        Deal("a", "r1", D("5000"), date(2026, 1, 10), DealStatus.WON),
        Deal("b", "r1", D("3000"), date(2026, 1, 20), DealStatus.WON),
        Deal("c", "r2", D("6000"), date(2026, 1, 5), DealStatus.WON),
        Deal("d", "m", D("1000"), date(2026, 1, 8), DealStatus.WON),
    ]
    result = calculate([plan_], [], deals, period_kind=MONTH, as_of=date(2026, 1, 31),
                       teams=spells)  # fmt: skip
    teams = [(t.team_id, t.manager_id, t.members, t.goal.actual, t.goal.attainment)
             for t in result.teams]  # fmt: skip
    assert teams == [
        ("t", "m", ("m", "r2"), D("12000"), D("1.2000")),
        ("u", None, ("r1",), D("3000"), D("0.3000")),
    ]
    by_rep = {s.rep_id: s for s in result.statements}
    member_rule = "team bonus for team_rev attainment >= 100%"
    manager_rule = "team bonus for team_rev attainment >= 100% (to the manager)"
    bonuses = {
        rep: [(str(ln.amount), ln.rule) for ln in s.lines if ln.kind is LineKind.BONUS]
        for rep, s in by_rep.items()
    }
    assert bonuses == {
        "m": [("100.00", member_rule), ("500.00", manager_rule)],
        "r2": [("100.00", member_rule)],
        "r1": [],
    }
    assert [(g.team_id, g.attainment) for g in by_rep["r1"].goals] == [("u", D("0.3000"))]
    assert [(g.team_id, g.attainment) for g in by_rep["r2"].goals] == [("t", D("1.2000"))]
    assert by_rep["m"].bonuses == D("600.00")
    assert result.warnings == ()


def test_a_manager_bonus_without_a_manager_statement_is_a_warning() -> None:
    plan_ = a_plan(
        members=["r1"],
        goals=[{"id": "team_rev", "metric": "revenue", "team": True, "target": "100"}],
        bonuses=[{"goal": "team_rev", "at": "1.0", "amount": "500", "pay": "manager"}],
        end="2026-01-31",
    )
    deals = [Deal("a", "r1", D("100"), date(2026, 1, 10), DealStatus.WON)]
    for spells, why in (
        ([TeamSpell("r1", "t", "boss")], "manager boss has no statement in 2026-01"),
        ([TeamSpell("r1", "t", None)], "has no manager (list it under teams: with a manager)"),
    ):
        result = calculate([plan_], [], deals, period_kind=MONTH, as_of=date(2026, 1, 31),
                           teams=spells)  # fmt: skip
        assert [w.message for w in result.warnings] == [
            f"team t: {why}; the manager's team bonus is not paid"
        ]
        assert result.statements[0].bonuses == D("0")


def test_clawbacks_inside_and_outside_the_window_and_with_nowhere_to_land() -> None:
    spiff = {"name": "any", "when": {"status": "cancelled"}, "amount": "20"}
    plan_ = a_plan(clawback={"window_days": 30}, end="2026-03-31", spiffs=[spiff])
    deals = [
        # 10 % of 1,000 and a 20 SPIFF, reversed 20 days later: 120 back in February.
        Deal("in", "r1", D("1000"), date(2026, 1, 25), DealStatus.CANCELLED,
             cancel_date=date(2026, 2, 14)),
        # Reversed 31 days after closing: outside the 30-day window, kept.
        Deal("out", "r1", D("500"), date(2026, 1, 10), DealStatus.CANCELLED,
             cancel_date=date(2026, 2, 10)),
        # Exactly 30 days: inside.
        Deal("edge", "r1", D("300"), date(2026, 1, 1), DealStatus.CANCELLED,
             cancel_date=date(2026, 1, 31)),
    ]  # fmt: skip
    statements = calc([plan_], deals, as_of=date(2026, 3, 31))
    feb = next(s for s in statements if s.period == "2026-02")
    assert [(ln.deal_id, str(ln.amount), ln.paid_period, ln.rule) for ln in feb.lines
            if ln.kind is LineKind.CLAWBACK] == [
        ("in", "-120.00", "2026-01",
         "deal cancelled 2026-02-14, 20 days after closing; reverses what it earned in 2026-01"),
    ]  # fmt: skip
    jan = next(s for s in statements if s.period == "2026-01")
    # "edge" was cancelled inside its close month: it counts as lost, never credited.
    assert [ln.deal_id for ln in jan.lines if ln.kind is LineKind.COMMISSION] == ["out", "in"]
    assert feb.clawbacks == D("-120.00") and feb.earnings == D("-120.00")

    # A reversal after the rep's last period has no statement to land in.
    short = a_plan(clawback={"window_days": 90}, end="2026-01-31")
    late = [Deal("x", "r1", D("1000"), date(2026, 1, 5), DealStatus.CANCELLED,
                 cancel_date=date(2026, 2, 20))]  # fmt: skip
    result = calculate([short], [], late, period_kind=MONTH, as_of=date(2026, 3, 31))
    assert [w.message for w in result.warnings] == [
        "rep r1: clawback of -100.00 for deal x dropped: no statement in 2026-02"
    ]


@pytest.mark.parametrize(
    ("forgive", "rep_end", "as_of", "forgiven"),
    [
        ("never", None, date(2027, 1, 31), "0"),
        ("at_plan_end", None, date(2026, 12, 31), "600.00"),  # the plan is over
        ("at_plan_end", None, date(2026, 12, 30), "0"),  # not yet
        ("at_plan_end", date(2026, 6, 30), date(2026, 12, 31), "0"),  # left before its end
        ("on_termination", date(2026, 2, 28), date(2026, 3, 31), "600.00"),
        ("on_termination", date(2026, 2, 28), date(2026, 2, 27), "0"),  # not yet left
        ("on_termination", None, date(2026, 12, 31), "0"),
        ("on_termination", date(2026, 2, 28), date(2026, 2, 28), "600.00"),  # left today
        ("at_plan_end", date(2026, 12, 31), date(2026, 12, 31), "600.00"),  # stayed to the end
    ],
)
def test_draw_forgiveness(forgive: str, rep_end: date | None, as_of: date, forgiven: str) -> None:
    plan_ = a_plan(draw={"type": "recoverable", "amount": "300", "periods": 2,
                         "forgive": forgive})  # fmt: skip
    rep = Rep("r1", end_date=rep_end)
    result = calculate([plan_], [rep], [], period_kind=MONTH, as_of=as_of)
    last = result.statements[-1]
    assert last.draw_forgiven == D(forgiven)
    assert last.draw_balance == (D("0") if forgiven != "0" else D("600.00"))


def test_win_rate_average_and_counts() -> None:
    plan_ = a_plan(end="2026-01-31")
    deals = [
        Deal("w1", "r1", D("100"), date(2026, 1, 2), DealStatus.WON),
        Deal("w2", "r1", D("200.01"), date(2026, 1, 3), DealStatus.WON,
             splits=(Split("r1", D("50")), Split("r2", D("50")))),
        Deal("l1", "r1", D("999"), date(2026, 1, 4), DealStatus.LOST),
        Deal("o1", "r1", D("70"), date(2026, 1, 5), DealStatus.OPEN),
    ]  # fmt: skip
    jan = calc([plan_], deals, as_of=date(2026, 1, 31))[0]
    assert (jan.won_count, jan.lost_count) == (2, 1)
    assert jan.win_rate == D("0.6667")  # 2 of 3
    assert jan.bookings == D("200.005")  # 100 + half of 200.01
    assert jan.average_deal_size == D("100.00")  # 100.0025 → 100.00
    assert jan.open_pipeline == D("70")
    assert jan.attainment == D("0.0200")  # 200.005 / 10,000
    nothing = calc([plan_], [], as_of=date(2026, 1, 31))[0]
    assert (nothing.win_rate, nothing.average_deal_size) == (None, None)


# --- KPIs ----------------------------------------------------------------------------------

from connector.core import kpis  # noqa: E402
from connector.core.models import Lead  # noqa: E402

JAN_2026 = parse_label("2026-01", MONTH)


@pytest.mark.parametrize(
    ("as_of", "gone"),
    [
        (date(2025, 12, 31), 0),  # before the period
        (date(2026, 1, 1), 1),  # today counts
        (date(2026, 1, 10), 10),
        (date(2026, 1, 31), 31),
        (date(2026, 3, 1), 31),  # after it: the whole period
    ],
)
def test_elapsed_days(as_of: date, gone: int) -> None:
    assert kpis.elapsed_days(JAN_2026, MONTH, as_of) == (gone, 31)


def test_elapsed_days_of_a_quarter() -> None:
    q2 = parse_label("2026-Q2", QUARTER)
    assert kpis.elapsed_days(q2, QUARTER, date(2026, 4, 30)) == (30, 91)


@pytest.mark.parametrize(
    ("bookings", "quota", "as_of", "expected"),
    [
        ("5000", "10000", date(2026, 1, 10), "1.5500"),  # 0.5 / (10/31)
        ("10000", "10000", date(2026, 3, 1), "1.0000"),  # over: its attainment
        ("5000", None, date(2026, 1, 10), None),
        ("5000", "10000", date(2025, 12, 1), None),  # not begun
        # Under a fifth of the period gone by, a projection means nothing (one deal on
        # the 1st would "pace" at 3,100 %): empty. 6/31 is under a fifth, 7/31 over.
        ("1000", "10000", date(2026, 1, 1), None),
        ("1000", "10000", date(2026, 1, 6), None),
        ("1000", "10000", date(2026, 1, 7), "0.4429"),  # 0.1 / (7/31)
    ],
)
def test_pace(bookings: str, quota: str | None, as_of: date, expected: str | None) -> None:
    result = kpis.pace(D(bookings), None if quota is None else D(quota), JAN_2026, MONTH, as_of)
    assert (None if result is None else str(result)) == expected


@pytest.mark.parametrize(
    ("period", "kind", "as_of", "expected"),
    [
        ("2026-02", MONTH, date(2026, 2, 5), None),  # 5/28, under a fifth
        ("2026-02", MONTH, date(2026, 2, 6), "0.4667"),  # 6/28 = 0.214…: 0.1 / (6/28)
        ("2026-04", MONTH, date(2026, 4, 6), "0.5000"),  # 6/30: exactly a fifth counts
        ("2026-Q1", QUARTER, date(2026, 1, 18), "0.5000"),  # 18/90: exactly a fifth
        ("2026-Q2", QUARTER, date(2026, 4, 18), None),  # 18/91 = 0.198
        ("2026-Q2", QUARTER, date(2026, 4, 19), "0.4789"),  # 19/91: 0.1 / (19/91)
    ],
)
def test_pace_starts_once_a_fifth_of_the_period_is_gone(
    period: str, kind: PeriodKind, as_of: date, expected: str | None
) -> None:
    result = kpis.pace(D("1000"), D("10000"), parse_label(period, kind), kind, as_of)
    assert (None if result is None else str(result)) == expected


def test_sales_cycle_days() -> None:
    def cycle(close: date, created: date | None, amount: str = "1") -> Credit:
        deal = Deal("d", "r1", D(amount), close, DealStatus.WON, created_date=created)
        return Credit(deal, D(amount), D("1"))

    credits = [
        cycle(date(2026, 1, 31), date(2026, 1, 1)),  # 30 days
        cycle(date(2026, 1, 31), date(2026, 1, 30)),  # 1 day
        cycle(date(2026, 1, 31), None),  # no creation date: left out
        cycle(date(2026, 1, 31), date(2025, 1, 1), "-5"),  # a credit note: left out
    ]
    assert kpis.sales_cycle_days(credits) == D("15.5")
    free = cycle(date(2026, 1, 31), date(2026, 1, 21), "0.00")  # won at 0.00: 10 days, counts
    assert kpis.sales_cycle_days([*credits, free]) == D("13.7")  # 41 / 3
    assert kpis.sales_cycle_days(credits[:1] + credits[1:2] * 2) == D("10.7")  # 32 / 3
    assert kpis.sales_cycle_days(credits[2:]) is None


@pytest.mark.parametrize(
    ("pipeline", "bookings", "quota", "expected"),
    [
        ("15000", "5000", "10000", "3.0000"),
        ("1", "9999.50", "10000", "2.0000"),  # half a dollar still to book
        ("0", "5000", "10000", "0.0000"),
        ("100", "10000", "10000", None),  # quota met
        ("100", "12000", "10000", None),
        ("100", "0", None, None),
    ],
)
def test_pipeline_coverage(
    pipeline: str, bookings: str, quota: str | None, expected: str | None
) -> None:
    result = kpis.pipeline_coverage(D(pipeline), D(bookings), None if quota is None else D(quota))
    assert (None if result is None else str(result)) == expected


@pytest.mark.parametrize(
    ("bookings", "expected"),
    [("0", "10000.00"), ("9999.995", "0.01"), ("10000", "5000.00"), ("14999", "1.00"),
     ("15000", None), ("20000", None)],
)  # fmt: skip
def test_to_next_tier(bookings: str, expected: str | None) -> None:
    result = kpis.to_next_tier(D(bookings), (D("10000"), D("15000")))
    assert (None if result is None else str(result)) == expected


def test_lead_to_sale() -> None:
    day = date(2026, 1, 1)
    leads = [Lead("a", "r1", day, True), Lead("b", "r1", day, False), Lead("c", "r1", day, False)]
    assert kpis.lead_to_sale(leads) == D("0.3333")
    assert kpis.lead_to_sale([]) is None and kpis.lead_to_sale(None) is None


# --- pinned after mutation testing -----------------------------------------------------------

from connector.core.diff import PlannedWrite, changes  # noqa: E402
from connector.core.fields import RecordKind  # noqa: E402


def test_a_managers_latest_team_period_whatever_the_order() -> None:
    late = TeamResult("p", "2026-02", "t1", "m", ("r1",), goal("revenue", "0.6", "t1"))
    early = TeamResult("p", "2026-01", "t1", "m", ("r1",), goal("revenue", "0.4", "t1"))
    assert rep_values([], "2026-03", [late, early])["m"] == {
        "team_attainment": "0.6000", "team_pace": None}  # fmt: skip


def test_changes_name_the_record_kind() -> None:
    planned = changes(RecordKind.REP, {"r2": {"b": "2", "a": None}, "r1": {"a": "1"}},
                      {("r1", "a"): "0"})  # fmt: skip
    assert planned == [
        PlannedWrite(RecordKind.REP, "r1", "a", "0", "1"),
        PlannedWrite(RecordKind.REP, "r2", "a", None, None),
        PlannedWrite(RecordKind.REP, "r2", "b", None, "2"),
    ]


def test_deal_values_read_past_lines_of_no_deal() -> None:
    statements = [stmt("2026-01", lines=(line(LineKind.BONUS, None, "70"),
                                         line(LineKind.COMMISSION, "a", "10", "100")))]  # fmt: skip
    assert deal_values(statements, ["a"])["a"]["commission"] == "10.00"


def test_crm_team_history_of_three_changes_and_of_crm_teams() -> None:
    # Managers named against the calendar: the order is by date, not by name.
    reps = [Rep("amy"), Rep("zed"), Rep("kim"), Rep("cy")]
    history = {
        "kim": [
            (date(2026, 6, 1), "amy", None),
            (None, "zed", None),
            (date(2026, 3, 1), "amy", None),
        ],
        "cy": [(None, None, "t-1"), (date(2026, 4, 1), None, "t-2")],
    }  # fmt: skip
    spells = crm_team_spells(reps, history)
    assert [s for s in spells if s.rep_id == "kim"] == [
        TeamSpell("kim", "zed", "zed", None, date(2026, 2, 28)),
        TeamSpell("kim", "amy", "amy", date(2026, 3, 1), date(2026, 5, 31)),
        TeamSpell("kim", "amy", "amy", date(2026, 6, 1), None),
    ]
    assert [s for s in spells if s.rep_id == "cy"] == [
        TeamSpell("cy", "t-1", None, None, date(2026, 3, 31)),
        TeamSpell("cy", "t-2", None, date(2026, 4, 1), None),
    ]
    assert team_spells("crm", reps, history) == spells


def test_a_listed_member_nobody_is_skipped_not_the_rest() -> None:
    teams = [Team(id="t", members=("ghost@x.example", "r1", "r2"))]
    assert [s.rep_id for s in listed_team_spells(teams, [])] == ["r1", "r2"]


def test_engine_deals_carry_every_field_the_engine_reads() -> None:
    extra: dict[str, object] = {
        "type": "Renewal", "properties": {"region": "East"}, "created_date": date(2026, 1, 2)
    }  # fmt: skip
    won = snapshot_of(crm_deal(**extra), None, BERLIN)  # type: ignore[arg-type]
    later = datetime(2026, 4, 2, 8, tzinfo=UTC)
    lost = snapshot_of(crm_deal(Outcome.LOST, at=later, **extra), won, BERLIN)  # type: ignore[arg-type]
    for snap, cancel in ((won, None), (lost, date(2026, 4, 2))):
        for splits in ({}, {"d1": [("a", D("60")), ("b", D("40"))]}):
            (deal,), _ = engine_deals([snap], splits, "USD")
            assert (deal.cancel_date, deal.type, dict(deal.properties), deal.created_date) == (
                cancel, "Renewal", {"region": "East"}, date(2026, 1, 2),
            )  # fmt: skip


def test_the_average_deal_size_rounds_half_up() -> None:
    deals = [
        Deal("a", "r1", D("0.10"), date(2026, 1, 2), DealStatus.WON),
        Deal("b", "r1", D("0.15"), date(2026, 1, 3), DealStatus.WON),
    ]
    jan = calc([a_plan(end="2026-01-31")], deals, as_of=date(2026, 1, 31))[0]
    assert jan.average_deal_size == D("0.13")  # 0.125: half-even would say 0.12
    empty = calc([a_plan(end="2026-01-31")], [], as_of=date(2026, 1, 31))[0]
    assert type(empty.bookings) is Decimal and str(empty.bookings) == "0"


def two_plans_in_march(**both: object) -> list[Plan]:
    first = a_plan(id="a", end="2026-03-15", commission={"tiers": [{"rate": "0.1"}]}, **both)
    second = a_plan(id="b", start="2026-03-16", commission={"tiers": [{"rate": "0.2"}]}, **both)
    return [first, second]


def test_a_plan_change_mid_month_splits_lost_and_open_deals_by_day_too() -> None:
    deals = [
        Deal("l1", "r1", D("1"), date(2026, 3, 10), DealStatus.LOST),
        Deal("l2", "r1", D("1"), date(2026, 3, 11), DealStatus.LOST),
        Deal("l3", "r1", D("1"), date(2026, 3, 20), DealStatus.LOST),
        Deal("o1", "r1", D("700"), date(2026, 3, 12), DealStatus.OPEN),
        Deal("o2", "r1", D("40"), date(2026, 3, 28), DealStatus.OPEN),
    ]
    march = {s.plan_id: s for s in calc(two_plans_in_march(), deals, as_of=date(2026, 3, 31))
             if s.period == "2026-03"}  # fmt: skip
    assert (march["a"].lost_count, march["a"].open_pipeline) == (2, D("700"))
    assert (march["b"].lost_count, march["b"].open_pipeline) == (1, D("40"))


def test_a_clawback_across_a_plan_change_reverses_what_the_first_plan_paid() -> None:
    plans = two_plans_in_march(clawback={"window_days": 90})
    deals = [Deal("x", "r1", D("1000"), date(2026, 3, 10), DealStatus.CANCELLED,
                  cancel_date=date(2026, 4, 5))]  # fmt: skip
    statements = calc(plans, deals, as_of=date(2026, 4, 30))
    april = next(s for s in statements if s.period == "2026-04")
    assert (april.plan_id, april.clawbacks) == ("b", D("-100.00"))  # plan a's 10 %


def test_an_individual_goal_bonus_adds_to_the_lines() -> None:
    plan_ = a_plan(end="2026-01-31", goals=[{"metric": "deals_won", "target": "1"}],
                   bonuses=[{"goal": "deals_won", "at": "1.0", "amount": "50"}])  # fmt: skip
    deals = [Deal("a", "r1", D("1000"), date(2026, 1, 5), DealStatus.WON)]
    jan = calc([plan_], deals, as_of=date(2026, 1, 31))[0]
    assert [(ln.kind, str(ln.amount)) for ln in jan.lines] == [
        (LineKind.COMMISSION, "100.00"),
        (LineKind.BONUS, "50.00"),
    ]
    # Earnings add every kind of line: 100 commission + 50 bonus.
    assert (jan.commission, jan.bonuses, jan.earnings, jan.payout) == (
        D("100.00"), D("50.00"), D("150.00"), D("150.00"),
    )  # fmt: skip


def test_team_goals_keep_each_members_own_lines_and_name_their_plan() -> None:
    team_goal = {"id": "team_rev", "metric": "revenue", "team": True, "target": "100"}
    plans = [
        a_plan(id="p2", members=["r2"], end="2026-01-31", goals=[team_goal],
               bonuses=[{"goal": "team_rev", "at": "1.0", "amount": "5"}]),
        a_plan(id="p1", members=["r1"], end="2026-01-31", goals=[team_goal]),
    ]  # fmt: skip
    spells = [TeamSpell("r1", "t", None), TeamSpell("r2", "t", None)]
    deals = [Deal("a", "r2", D("1000"), date(2026, 1, 5), DealStatus.WON)]
    result = calculate(plans, [], deals, period_kind=MONTH, as_of=date(2026, 1, 31), teams=spells)
    assert [(t.plan_id, t.members, t.goal.actual) for t in result.teams] == [
        ("p1", ("r1",), D("1000")),
        ("p2", ("r2",), D("1000")),
    ]
    r2 = next(s for s in result.statements if s.rep_id == "r2")
    assert [(ln.kind, str(ln.amount)) for ln in r2.lines] == [
        (LineKind.COMMISSION, "100.00"),
        (LineKind.BONUS, "5.00"),
    ]


def test_a_team_goal_of_a_later_plan_counts_a_rep_who_changed_plans() -> None:
    team_goal = {"id": "team_rev", "metric": "revenue", "team": True, "target": "100"}
    plans = [
        a_plan(id="a", end="2026-06-30"),
        a_plan(id="b", start="2026-07-01", goals=[team_goal]),
    ]
    spells = [TeamSpell("r1", "t", None)]
    result = calculate(plans, [], [], period_kind=MONTH, as_of=date(2026, 7, 31), teams=spells)
    assert [(t.plan_id, t.period, t.members) for t in result.teams] == [("b", "2026-07", ("r1",))]


def test_filtered_team_goals_count_only_matching_credits_on_every_path() -> None:
    goals = [
        {"id": "new_rev", "metric": "revenue", "team": True, "target": "100",
         "when": {"type": "New Business"}},
        {"id": "new_logos", "metric": "new_customers", "team": True, "target": "1"},
    ]  # fmt: skip
    plan_ = a_plan(members=["stay", "move"], end="2026-01-31", goals=goals)
    spells = [
        TeamSpell("stay", "t", None),  # one team for all time: summed by period
        TeamSpell("move", "t", None, None, date(2026, 1, 10)),  # by credit, with a gap
        TeamSpell("move", "t", None, date(2026, 1, 20), None),
    ]
    deals = [
        Deal("s1", "stay", D("300"), date(2026, 1, 5), DealStatus.WON, type="New Business"),
        Deal("s2", "stay", D("50"), date(2026, 1, 6), DealStatus.WON, type="Renewal"),
        Deal("m0", "move", D("999"), date(2026, 1, 15), DealStatus.WON, type="New Business"),
        Deal("m1", "move", D("20"), date(2026, 1, 25), DealStatus.WON, type="New Business"),
        Deal("m2", "move", D("7"), date(2026, 1, 26), DealStatus.WON, type="Renewal"),
    ]
    result = calculate([plan_], [], deals, period_kind=MONTH, as_of=date(2026, 1, 31), teams=spells)
    actual = {t.goal.goal_id: t.goal.actual for t in result.teams}
    # m0 closed while "move" was on no team; Renewals are neither new revenue nor new logos.
    assert actual == {"new_rev": D("320"), "new_logos": D("2")}


def test_a_leaders_own_spells_follow_the_history_too() -> None:
    reps = [Rep("boss"), Rep("ann", manager_id="boss")]
    history = {"boss": [(None, None, None), (date(2026, 3, 1), "big", None)]}
    spells = [s for s in crm_team_spells(reps, history) if s.rep_id == "boss"]
    # boss manages ann, so boss leads a team all along, whoever manages boss.
    assert spells == [
        TeamSpell("boss", "boss", "boss", None, date(2026, 2, 28)),
        TeamSpell("boss", "boss", "boss", date(2026, 3, 1), None),
    ]


def test_clawbacks_go_on_past_one_never_paid_or_dropped() -> None:
    plan_ = a_plan(start="2026-02-01", end="2026-03-31", clawback={"window_days": 90})
    deals = [
        # Closed before the plan began: never paid, nothing to claw back.
        Deal("before", "r1", D("500"), date(2026, 1, 10), DealStatus.CANCELLED,
             cancel_date=date(2026, 2, 5)),
        # Cancelled after the plan ended: the clawback has nowhere to land (a warning).
        Deal("after", "r1", D("300"), date(2026, 2, 5), DealStatus.CANCELLED,
             cancel_date=date(2026, 4, 10)),
        # Cancelled in March: clawed back there.
        Deal("mar", "r1", D("1000"), date(2026, 2, 20), DealStatus.CANCELLED,
             cancel_date=date(2026, 3, 10)),
    ]  # fmt: skip
    result = calculate([plan_], [], deals, period_kind=MONTH, as_of=date(2026, 4, 30))
    clawed = [(s.period, ln.deal_id, str(ln.amount)) for s in result.statements
              for ln in s.lines if ln.kind is LineKind.CLAWBACK]  # fmt: skip
    assert clawed == [("2026-03", "mar", "-100.00")]
    assert [w.message for w in result.warnings] == [
        "rep r1: clawback of -30.00 for deal after dropped: no statement in 2026-04"
    ]


def test_a_clawback_lands_in_the_plan_covering_the_cancel_day() -> None:
    plans = two_plans_in_march(clawback={"window_days": 90})
    deals = [Deal("x", "r1", D("1000"), date(2026, 1, 10), DealStatus.CANCELLED,
                  cancel_date=date(2026, 3, 20))]  # fmt: skip
    march = {s.plan_id: s for s in calc(plans, deals, as_of=date(2026, 3, 31))
             if s.period == "2026-03"}  # fmt: skip
    assert (march["a"].clawbacks, march["b"].clawbacks) == (D("0"), D("-100.00"))


def test_sales_cycle_skips_a_deal_without_a_creation_date_wherever_it_stands() -> None:
    def cycle(created: date | None) -> Credit:
        deal = Deal("d", "r1", D("1"), date(2026, 1, 31), DealStatus.WON, created_date=created)
        return Credit(deal, D("1"), D("1"))

    assert kpis.sales_cycle_days([cycle(None), cycle(date(2026, 1, 21))]) == D("10.0")


def test_quota_overrides_by_email_in_any_case_and_by_id_exactly() -> None:
    reps = [Rep("R1"), Rep("r2", email="ann@x.example")]
    plan_ = a_plan(members=["R1", "Ann@X.example"], end="2026-01-31",
                   quota_overrides={"R1": "7000", "Ann@X.example": "5000"})  # fmt: skip
    result = calculate([plan_], reps, [], period_kind=MONTH, as_of=date(2026, 1, 31))
    assert {s.rep_id: s.quota for s in result.statements} == {"R1": D("7000"), "r2": D("5000")}


def test_members_who_cannot_be_computed_are_skipped_not_the_rest() -> None:
    reps = [Rep("late", start_date=date(2026, 2, 1)), Rep("r1")]
    plan_ = a_plan(members=["nobody@x.example", "late", "r1"], end="2026-12-31")
    result = calculate([plan_], reps, [], period_kind=MONTH, as_of=date(2026, 1, 31))
    assert [s.rep_id for s in result.statements] == ["r1"]
    assert [w.message for w in result.warnings] == [
        "plan p: member nobody@x.example matches no rep; skipped"
    ]


def test_a_plan_that_starts_on_the_as_of_day_has_its_first_statement() -> None:
    statements = calc([a_plan()], [], as_of=date(2026, 1, 1))
    assert [s.period for s in statements] == ["2026-01"]


def test_a_deal_between_two_plans_in_one_month_counts_in_the_earlier() -> None:
    plans = [
        a_plan(id="z", end="2026-03-10", commission={"tiers": [{"rate": "0.1"}]}),
        a_plan(id="a", start="2026-03-20", commission={"tiers": [{"rate": "0.2"}]}),
    ]
    deals = [Deal("gap", "r1", D("1000"), date(2026, 3, 15), DealStatus.WON)]
    march = {s.plan_id: s.commission for s in calc(plans, deals, as_of=date(2026, 3, 31))
             if s.period == "2026-03"}  # fmt: skip
    assert march == {"z": D("100.00"), "a": D("0")}


def test_both_missing_crm_figures_in_one_error() -> None:
    plan_ = a_plan(quota=None, quota_source="crm", end="2026-01-31",
                   goals=[{"metric": "deals_won", "target_source": "crm"}])  # fmt: skip
    with pytest.raises(CalculationError) as raised:
        calc([plan_], [], as_of=date(2026, 1, 31))
    assert str(raised.value) == (
        "plan p: the CRM has no deals_won target for rep r1 2026-01: enter them in the CRM, "
        "or set the deals_won goal's target in spm.yaml to fall back on; "
        "plan p: the CRM has no quota for rep r1 2026-01: enter them in the CRM, "
        "or set the plan's quota in spm.yaml to fall back on"
    )


def test_crm_quantities_add_up_and_stand_for_a_goal_without_a_target() -> None:
    plan_ = a_plan(end="2026-01-31", ramp=["0.5"],
                   goals=[{"metric": "deals_won", "target_source": "crm"}])  # fmt: skip
    quotas = [CrmQuota("r1", date(2026, 1, 1), quantity=D("2")),
              CrmQuota("r1", date(2026, 1, 9), quantity=D("3"))]  # fmt: skip
    jan = calc([plan_], [], crm_quotas=quotas, as_of=date(2026, 1, 31))[0]
    assert [(g.goal_id, g.target) for g in jan.goals] == [("deals_won", D("5"))]


def test_a_negative_crm_quota_is_refused_with_the_rep_and_period() -> None:
    plan_ = a_plan(quota_source="crm", end="2026-02-28")
    quotas = [CrmQuota("r1", date(2026, 2, 1), D("-5"))]
    with pytest.raises(CalculationError) as raised:
        calc([plan_], [], crm_quotas=quotas, as_of=date(2026, 2, 28))
    assert str(raised.value) == (
        "plan p: rep r1 has a quota of -5 in 2026-02; a quota must be greater than 0"
    )


def test_totals_add_every_line_of_their_kind() -> None:
    spiffs = [{"name": "a", "when": {"status": "won"}, "amount": "10"},
              {"name": "b", "when": {"status": "won"}, "amount": "5"}]  # fmt: skip
    plan_ = a_plan(clawback={"window_days": 90}, spiffs=spiffs, end="2026-02-28")
    deals = [
        Deal("w", "r1", D("100"), date(2026, 1, 5), DealStatus.WON),
        Deal("x", "r1", D("1000"), date(2026, 1, 6), DealStatus.CANCELLED,
             cancel_date=date(2026, 2, 3)),
        Deal("y", "r1", D("2000"), date(2026, 1, 7), DealStatus.CANCELLED,
             cancel_date=date(2026, 2, 4)),
    ]  # fmt: skip
    jan, feb = calc([plan_], deals, as_of=date(2026, 2, 28))
    assert jan.spiffs == D("15.00")  # only "w" is won: both SPIFFs
    assert feb.clawbacks == D("-300.00")  # -100 and -200


@pytest.mark.parametrize(
    ("digits", "shown"),
    [
        (40, "1" + "0" * 39),  # forty characters: shown whole
        (41, "1" + "0" * 36 + "..."),  # longer: cut to 37 and an ellipsis
        (400, "1" + "0" * 36 + "..."),
    ],
)
def test_an_absurd_number_is_shown_short_in_its_error(digits: int, shown: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_decimal("1" + "0" * (digits - 1))
    assert str(raised.value) == f"{shown} is beyond any plausible amount"
