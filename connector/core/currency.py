"""Deals in other currencies, converted to the plans' currency exactly.

A rate says how much of the plan currency one unit of another currency is
worth from a date on (until the currency's next rate). Rates read from a CRM
are relative to the CRM's own base currency instead: HubSpot's say what one
unit is worth in the company currency, Salesforce's how many units one unit of
the corporate currency buys (``inverse``). A deal then converts through the
base, ``amount × value(deal currency) ÷ value(plan currency)``, computed as one
division of exact products so that it, too, is rounded once. Which date's rate a deal
takes is the ``basis``: its close date (the default), or the first day of its
close date's year (a fixed plan-year rate). Each deal is converted once, and
rounded once, half up to the cent: the converted amount is what every rule
then sees, and the deal's commission lines say what it was (``EUR 10,000.00 at
1.085``). A deal in a currency without a rate for its date is an error naming
the deal and the rate it needs.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from connector.core.models import Deal
from connector.core.money import ONE, format_money, round_cents
from connector.errors import CalculationError

FX = "fx"  # the deal property that carries what a converted deal was
SHOWN = Decimal("0.000001")  # a rate derived from a CRM's, as a line shows it


class RateBasis(StrEnum):
    CLOSE_DATE = "close_date"
    YEAR_START = "year_start"


@dataclass(frozen=True)
class Rates:
    """Per currency, (from, rate) by date; ``source`` names where they came from."""

    by_currency: Mapping[str, tuple[tuple[date, Decimal], ...]]
    source: str = "the rates"
    basis: RateBasis = RateBasis.CLOSE_DATE
    # The currency the rates are relative to; None: the plan currency (a rates file).
    base: str | None = None
    # Rates say units of the currency per one unit of the base (Salesforce's ConversionRate).
    inverse: bool = False
    # How to add a missing rate, said in the error.
    hint: str = "add a row {currency},<from date>,<{plan} per {currency}>"
    _days: dict[str, list[date]] = field(default_factory=dict, compare=False, repr=False)

    def on(self, currency: str, day: date) -> Decimal | None:
        """The rate in force on ``day`` (None before the currency's first rate)."""
        rows = self.by_currency.get(currency)
        if not rows:
            return None
        days = self._days.get(currency)
        if days is None:
            days = self._days[currency] = [start for start, _ in rows]
        index = bisect.bisect_right(days, day) - 1
        return rows[index][1] if index >= 0 else None

    def value(self, currency: str, day: date, plan: str) -> tuple[Decimal, Decimal] | None:
        """One unit of ``currency`` in the base currency as (numerator, denominator)."""
        if currency == (self.base or plan):
            return ONE, ONE
        rate = self.on(currency, day)
        if rate is None:
            return None
        return (ONE, rate) if self.inverse else (rate, ONE)

    def fingerprint(self) -> str:
        """The rates as text: what a recompute depends on."""
        return (
            ";".join(
                f"{currency}:{start}={rate}"
                for currency in sorted(self.by_currency)
                for start, rate in self.by_currency[currency]
            )
            + f"|{self.basis.value}|{self.base}|{self.inverse}"
        )


def convert(deals: Sequence[Deal], rates: Rates | None, currency: str) -> list[Deal]:
    """The deals with every amount in ``currency``; other currencies converted by ``rates``."""
    converted: list[Deal] = []
    for deal in deals:
        if not deal.currency or deal.currency == currency:
            converted.append(deal)
            continue
        day = deal.close_date
        if rates is not None and rates.basis is RateBasis.YEAR_START:
            day = date(day.year, 1, 1)
        if rates is None:
            raise CalculationError(
                f"deal {deal.id}: is in {deal.currency}, and there are no exchange rates "
                "(calc --rates FILE, or currency_rates in spm.yaml)"
            )
        value = rates.value(deal.currency, day, currency)
        plan = rates.value(currency, day, currency)
        if value is None or plan is None:
            missing = deal.currency if value is None else currency
            hint = rates.hint.format(currency=missing, plan=currency)
            raise CalculationError(
                f"deal {deal.id}: is in {deal.currency}, and {rates.source} has no {missing} "
                f"rate on or before {day}: {hint}"
            )
        numerator, denominator = value[0] * plan[1], value[1] * plan[0]
        exact = deal.amount * numerator / denominator
        rate = numerator / denominator
        shown = rate.normalize() if denominator == ONE else rate.quantize(SHOWN)
        said = f"{deal.currency} {format_money(deal.amount)} at {shown:f}"
        properties = {**deal.properties, FX: said}
        converted.append(
            deal._replace(amount=round_cents(exact), currency=currency, properties=properties)
        )
    return converted
