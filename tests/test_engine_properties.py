"""Property tests for the invariants listed in calculation.md."""

from __future__ import annotations

import os
import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.core.models import Deal, DealStatus, LineKind, Rep, Split
from connector.core.periods import PeriodKind
from connector.core.plans import Plan
from connector.core.statements import Calculation, calculate

REPS = ("r1", "r2", "r3")
YEAR_START = date(2026, 1, 1)

cents = st.integers(min_value=-50_000, max_value=4_000_000).map(lambda c: Decimal(c) / 100)
positive_cents = st.integers(min_value=1, max_value=4_000_000).map(lambda c: Decimal(c) / 100)
rates = st.integers(min_value=0, max_value=40).map(lambda r: Decimal(r) / 100)
days = st.integers(min_value=0, max_value=364).map(lambda d: YEAR_START + timedelta(days=d))


@st.composite
def plans(draw: st.DrawFn, draw_kind: str | None = None, with_clawback: bool | None = None) -> Plan:
    tiers_on = draw(st.sampled_from(["attainment", "amount"]))
    bounds = sorted(set(draw(st.lists(st.integers(1, 300), min_size=0, max_size=3))))
    scale = Decimal("0.01") if tiers_on == "attainment" else Decimal(100)
    tiers: list[dict[str, Any]] = [
        {"up_to": str(Decimal(b) * scale), "rate": str(draw(rates))} for b in bounds
    ]
    tiers.append({"rate": str(draw(rates))})
    spec: dict[str, Any] = {
        "id": "p",
        "start": YEAR_START,
        "end": date(2026, 12, 31),
        "members": list(REPS),
        "quota": str(draw(positive_cents)) if tiers_on == "attainment" else None,
        "ramp": [str(Decimal(f) / 100) for f in draw(st.lists(st.integers(10, 100), max_size=3))],
        "commission": {
            "method": draw(st.sampled_from(["marginal", "retroactive"])),
            "tiers_on": tiers_on,
            "tiers": tiers,
            "cap": str(draw(positive_cents)) if draw(st.booleans()) else None,
        },
        "spiffs": [
            {
                "name": "nb",
                "when": {"type": "New Business"},
                **({"amount": "250.00"} if draw(st.booleans()) else {"rate": "0.02"}),
            }
        ],
    }
    if spec["quota"] is not None and draw(st.booleans()):
        spec["bonuses"] = [{"at": "1.0", "amount": "500"}, {"at": "0.5", "amount": "100"}]
    kind = draw_kind or draw(st.sampled_from(["none", "recoverable", "non_recoverable"]))
    if kind != "none":
        spec["draw"] = {
            "type": kind,
            "amount": str(Decimal(draw(st.integers(0, 500_000))) / 100),
            "periods": draw(st.one_of(st.none(), st.integers(1, 12))),
            "recovery_cap": str(draw(st.integers(1, 100)) / Decimal(100)),
            "forgive": draw(st.sampled_from(["never", "on_termination", "at_plan_end"])),
        }
    claw = draw(st.booleans()) if with_clawback is None else with_clawback
    if claw:
        spec["clawback"] = {"window_days": draw(st.integers(0, 200))}
    return Plan.model_validate(spec)


@st.composite
def deals(draw: st.DrawFn) -> list[Deal]:
    result: list[Deal] = []
    for index in range(draw(st.integers(0, 25))):
        close = draw(days)
        status = draw(st.sampled_from(list(DealStatus)))
        cancel = (
            close + timedelta(days=draw(st.integers(0, 200))) if status == "cancelled" else None
        )
        splits: tuple[Split, ...] = ()
        if draw(st.integers(0, 4)) == 0:
            first = draw(st.integers(1, 99))
            splits = (Split("r1", Decimal(first)), Split("r2", Decimal(100 - first)))
        deal_type = draw(st.sampled_from(["New Business", "Renewal"]))
        result.append(
            Deal(
                id=f"d{index:03d}",
                owner_id=draw(st.sampled_from(REPS)),
                amount=draw(cents),
                close_date=close,
                status=status,
                cancel_date=cancel,
                type=deal_type,
                properties={"type": deal_type},
                splits=splits,
            )
        )
    return result


@st.composite
def reps(draw: st.DrawFn) -> list[Rep]:
    result = []
    for rep_id in REPS:
        start = draw(st.one_of(st.none(), days))
        end = draw(st.one_of(st.none(), days))
        if start and end and end < start:
            start, end = end, start
        result.append(Rep(rep_id, start_date=start, end_date=end))
    return result


as_of_dates = st.integers(0, 500).map(lambda d: YEAR_START + timedelta(days=d))


def compute(plan: Plan, rep_list: list[Rep], deal_list: list[Deal], as_of: date) -> Calculation:
    return calculate([plan], rep_list, deal_list, period_kind=PeriodKind.MONTH, as_of=as_of)


# bench/mutation.sh runs these once per mutant: it asks for fewer examples.
EXAMPLES = int(os.environ.get("SPM_PROPERTY_EXAMPLES", "150"))
common = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@common
@given(plans(), reps(), deals(), as_of_dates)
def test_lines_sum_to_totals(
    plan: Plan, rep_list: list[Rep], deal_list: list[Deal], as_of: date
) -> None:
    for s in compute(plan, rep_list, deal_list, as_of).statements:
        totals = {kind: Decimal(0) for kind in LineKind}
        for line in s.lines:
            assert line.amount == line.amount.quantize(Decimal("0.01"))
            totals[line.kind] += line.amount
        assert totals[LineKind.COMMISSION] == s.commission
        assert totals[LineKind.SPIFF] == s.spiffs
        assert totals[LineKind.BONUS] == s.bonuses
        assert totals[LineKind.CLAWBACK] == s.clawbacks
        assert s.earnings == s.commission + s.spiffs + s.bonuses + s.clawbacks


@common
@given(plans(), reps(), deals(), as_of_dates)
def test_balance_and_payout_bounds(
    plan: Plan, rep_list: list[Rep], deal_list: list[Deal], as_of: date
) -> None:
    for s in compute(plan, rep_list, deal_list, as_of).statements:
        assert s.draw_balance >= 0
        assert s.payout >= 0
        assert s.payout >= s.draw


@common
@given(
    plans(draw_kind="non_recoverable", with_clawback=False),
    reps(),
    deals().map(lambda ds: [d for d in ds if d.amount >= 0]),
    as_of_dates,
)
def test_non_recoverable_balance_is_zero_forever(
    plan: Plan, rep_list: list[Rep], deal_list: list[Deal], as_of: date
) -> None:
    # Without credit notes or clawbacks earnings never go negative, so nothing is ever owed.
    for s in compute(plan, rep_list, deal_list, as_of).statements:
        assert s.draw_balance == 0


@common
@given(plans(), reps(), deals(), as_of_dates)
def test_ledger_reconciles(
    plan: Plan, rep_list: list[Rep], deal_list: list[Deal], as_of: date
) -> None:
    history: dict[str, list[Any]] = {}
    for s in compute(plan, rep_list, deal_list, as_of).statements:
        history.setdefault(s.rep_id, []).append(s)
    for statements in history.values():
        paid = sum(s.payout for s in statements)
        earned = sum(s.earnings for s in statements)
        unrecoverable = sum(s.draw_paid - s.draw_advanced for s in statements)
        forgiven = sum(s.draw_forgiven for s in statements)
        assert paid == earned + unrecoverable + statements[-1].draw_balance + forgiven


@common
@given(plans(), reps(), deals(), as_of_dates, st.randoms(use_true_random=False))
def test_order_independence_and_determinism(
    plan: Plan, rep_list: list[Rep], deal_list: list[Deal], as_of: date, rnd: random.Random
) -> None:
    first = compute(plan, rep_list, deal_list, as_of)
    shuffled_deals = deal_list[:]
    shuffled_reps = rep_list[:]
    rnd.shuffle(shuffled_deals)
    rnd.shuffle(shuffled_reps)
    again = compute(plan, shuffled_reps, shuffled_deals, as_of)
    # repr shows each Decimal's exponent, so this is stricter than ==.
    assert repr(first) == repr(again)
    assert repr(compute(plan, rep_list, deal_list, as_of)) == repr(first)
