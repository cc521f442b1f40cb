"""Effective-dated plan versions: a change applies from its date on, the ledger runs on."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.config import load_config
from connector.core.models import Deal, DealStatus, Rep
from connector.core.periods import PeriodKind
from connector.core.plans import Plan
from connector.core.statements import calculate
from connector.errors import ConfigError

BASE: dict[str, Any] = {
    "id": "ae",
    "start": "2026-01-01",
    "members": ["r1"],
    "quota": "10000",
    "ramp": ["0.5", "0.5", "1", "1", "1", "1", "1"],
    "commission": {"tiers": [{"up_to": "1.0", "rate": "0.10"}, {"rate": "0.15"}]},
    "draw": {"type": "recoverable", "amount": "1000", "periods": 8},
    "bonuses": [{"at": "1.0", "amount": "500"}],
}


def won(deal_id: str, amount: str, day: date) -> Deal:
    return Deal(deal_id, "r1", Decimal(amount), day, DealStatus.WON)


def test_a_version_changes_only_the_periods_from_its_date_and_the_ledger_runs_on() -> None:
    plan = Plan.model_validate(
        {
            **BASE,
            "versions": [
                {
                    "effective_from": "2026-07-01",
                    "quota": "20000",
                    "commission": {"tiers": [{"up_to": "1.0", "rate": "0.20"}, {"rate": "0.30"}]},
                    "bonuses": [{"at": "1.0", "amount": "900"}],
                }
            ],
        }
    )
    deals = [won("J", "12000", date(2026, 6, 10)), won("A", "25000", date(2026, 8, 10))]
    result = calculate([plan], [Rep("r1")], deals, period_kind=PeriodKind.MONTH,
                       as_of=date(2026, 8, 31))  # fmt: skip
    by_period = {s.period: s for s in result.statements}
    june, august = by_period["2026-06"], by_period["2026-08"]
    # June, the old rules: 10,000 × 10 % + 2,000 × 15 %, and the 500 bonus.
    assert (june.quota, june.commission, june.bonuses) == (
        Decimal("10000"),
        Decimal("1300.00"),
        Decimal("500.00"),
    )
    # August, the version: quota 20,000 (the ramp is over), 20,000 × 20 % + 5,000 × 30 %.
    assert (august.quota, august.commission, august.bonuses) == (
        Decimal("20000"),
        Decimal("5500.00"),
        Decimal("900.00"),
    )
    # One ledger: the draw's 8 periods run on across the version (paid in July, the 7th).
    assert by_period["2026-07"].draw == Decimal("1000") and by_period["2026-08"].draw == 1000
    assert by_period["2026-08"].draw_recovered > 0  # July's advance, recovered in August


def test_without_versions_nothing_changes() -> None:
    plan = Plan.model_validate(BASE)
    assert plan.in_force(date(2026, 9, 1)) is plan


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        ([{"effective_from": "2025-12-01"}], "must be after 2026-01-01"),
        (
            [{"effective_from": "2026-05-01"}, {"effective_from": "2026-03-01"}],
            "must be after 2026-05-01",
        ),
        ([{"effective_from": "2026-03-15"}], "is not the first day of a month"),
        (
            [
                {
                    "effective_from": "2026-03-01",
                    "bonuses": [{"at": "1", "amount": "1", "goal": "x"}],
                }
            ],
            "only quota bonuses",
        ),
    ],
)
def test_bad_versions_are_refused_naming_them(
    tmp_path: Path, versions: list[dict[str, Any]], message: str
) -> None:
    config = {"currency": "USD", "period": "month", "plans": [{**BASE, "versions": versions}]}
    path = tmp_path / "spm.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert "plans[0].versions[" in str(raised.value) or "versions[" in str(raised.value)
    assert message in str(raised.value)
