"""Deals in other currencies: converted once, exactly, at the rate of their date."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from connector.cli import cli
from connector.core.currency import RateBasis, Rates, convert
from connector.core.models import Deal, DealStatus
from connector.errors import CalculationError

RATES = Rates(
    {"EUR": ((date(2026, 1, 1), Decimal("1.08")), (date(2026, 4, 1), Decimal("1.10")))},
    "rates.csv",
)


def eur(amount: str, day: date, deal_id: str = "E1") -> Deal:
    return Deal(deal_id, "r1", Decimal(amount), day, DealStatus.WON, currency="EUR")


def test_a_deal_takes_the_rate_in_force_on_its_close_date_or_its_years_start() -> None:
    (march,) = convert([eur("10000", date(2026, 3, 31))], RATES, "USD")
    (april,) = convert([eur("10000", date(2026, 4, 1))], RATES, "USD")
    assert (march.amount, march.currency) == (Decimal("10800.00"), "USD")
    assert april.amount == Decimal("11000.00")
    assert march.properties["fx"] == "EUR 10000.00 at 1.08"
    yearly = Rates(RATES.by_currency, "rates.csv", RateBasis.YEAR_START)
    (fixed,) = convert([eur("10000", date(2026, 9, 1))], yearly, "USD")
    assert fixed.amount == Decimal("10800.00")  # the rate of 1 January


def test_a_deal_without_a_rate_is_an_error_naming_it() -> None:
    with pytest.raises(CalculationError) as raised:
        convert([eur("5", date(2025, 12, 31), "E-old")], RATES, "USD")
    assert "deal E-old" in str(raised.value) and "no EUR rate on or before 2025-12-31" in str(
        raised.value
    )
    usd = Deal("U", "r1", Decimal("5"), date(2026, 1, 2), DealStatus.WON, currency="USD")
    assert convert([usd], None, "USD") == [usd]


amounts = st.lists(st.integers(-(10**9), 10**9).map(lambda c: Decimal(c) / 100), max_size=40)


@given(amounts, st.integers(1, 10**6).map(lambda r: Decimal(r) / 10**5))
def test_converting_then_summing_is_summing_then_converting_within_half_a_cent_a_deal(
    values: list[Decimal], rate: Decimal
) -> None:
    rates = Rates({"EUR": ((date(2026, 1, 1), rate),)})
    deals = [eur(str(v), date(2026, 5, 1), f"d{i}") for i, v in enumerate(values)]
    converted = sum((d.amount for d in convert(deals, rates, "USD")), Decimal(0))
    exact = sum(values, Decimal(0)) * rate
    assert abs(converted - exact) <= Decimal("0.005") * len(values)


def test_calc_converts_with_a_rates_file_and_says_so_on_the_line(tmp_path: Path) -> None:
    config = {
        "currency": "USD",
        "period": "month",
        "plans": [{"id": "p", "start": "2026-01-01", "members": ["r1"], "quota": "10000",
                   "commission": {"tiers": [{"rate": "0.10"}]}}],
    }  # fmt: skip
    (tmp_path / "spm.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "deals.csv").write_text(
        "id,owner_id,amount,close_date,status,currency\n"
        "U1,r1,1000,2026-03-02,won,USD\n"
        "E1,r1,10000,2026-03-05,won,EUR\n"
    )
    (tmp_path / "rates.csv").write_text("currency,from,rate\nEUR,2026-01-01,1.0850\n")
    base = ["--config", str(tmp_path / "spm.yaml"), "calc", "--deals", str(tmp_path / "deals.csv"),
            "--as-of", "2026-03-31", "--period", "2026-03"]  # fmt: skip
    refused = CliRunner().invoke(cli, base)
    assert refused.exit_code == 2 and "calc --rates FILE" in refused.output
    done = CliRunner().invoke(cli, [*base, "--rates", str(tmp_path / "rates.csv")])
    assert done.exit_code == 0, done.output
    (statement,) = json.loads(done.stdout)["statements"]
    assert statement["bookings"] == "11850.00"  # 1,000 + 10,000 EUR × 1.085
    line = next(line for line in statement["lines"] if line["deal_id"] == "E1")
    assert line["amount"] == "1085.00" and "EUR 10000.00 at 1.085" in line["rule"]
    (tmp_path / "rates.csv").write_text("currency,from,rate\nEUR,2026-01-01,-1\n")
    bad = CliRunner().invoke(cli, [*base, "--rates", str(tmp_path / "rates.csv")])
    assert bad.exit_code == 2 and "rates.csv:2: rate: -1 must be greater than 0" in bad.output
