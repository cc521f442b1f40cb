"""Small builders for engine tests: plans from dicts, deals from one-liners."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from connector.core.models import Deal, DealStatus, Rep, Split, Statement
from connector.core.periods import PeriodKind
from connector.core.plans import Plan
from connector.core.statements import Calculation, calculate

TIERS_10_15_20 = [
    {"up_to": "1.0", "rate": "0.10"},
    {"up_to": "1.5", "rate": "0.15"},
    {"rate": "0.20"},
]


def plan(**overrides: Any) -> Plan:
    spec: dict[str, Any] = {
        "id": "p",
        "start": date(2026, 1, 1),
        "end": date(2026, 12, 31),
        "members": ["r1"],
        "quota": "10000",
        "commission": {"tiers": TIERS_10_15_20},
    }
    spec.update(overrides)
    return Plan.model_validate(spec)


def deal(
    deal_id: str,
    amount: str,
    close: date,
    status: str = "won",
    owner: str = "r1",
    cancel: date | None = None,
    splits: tuple[tuple[str, str], ...] = (),
    created: date | None = None,
    **properties: str,
) -> Deal:
    return Deal(
        id=deal_id,
        owner_id=owner,
        amount=Decimal(amount),
        close_date=close,
        status=DealStatus(status),
        cancel_date=cancel,
        type=properties.get("type"),
        properties=dict(properties),
        splits=tuple(Split(rep, Decimal(pct)) for rep, pct in splits),
        created_date=created,
    )


def run(
    plans: list[Plan] | Plan,
    deals: list[Deal],
    reps: list[Rep] | None = None,
    as_of: date = date(2026, 12, 31),
    kind: PeriodKind = PeriodKind.MONTH,
    **inputs: Any,
) -> Calculation:
    """``inputs``: calculate's keyword inputs (teams, crm_quotas, leads, rep_ids)."""
    plan_list = plans if isinstance(plans, list) else [plans]
    return calculate(plan_list, reps or [], deals, period_kind=kind, as_of=as_of, **inputs)


def by_period(calculation: Calculation, rep_id: str = "r1") -> dict[str, Statement]:
    return {s.period: s for s in calculation.statements if s.rep_id == rep_id}


def money(text: str) -> Decimal:
    return Decimal(text)
