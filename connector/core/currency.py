"""Deals in other currencies, converted to the plans' currency exactly.

A rate says how much of the plan currency one unit of another currency is
worth from a date on (until the currency's next rate). Which date's rate a deal
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
from connector.core.money import format_money, round_cents
from connector.errors import CalculationError

FX = "fx"  # the deal property that carries what a converted deal was


class RateBasis(StrEnum):
    CLOSE_DATE = "close_date"
    YEAR_START = "year_start"


@dataclass(frozen=True)
class Rates:
    """Per currency, (from, rate) by date; ``source`` names where they came from."""

    by_currency: Mapping[str, tuple[tuple[date, Decimal], ...]]
    source: str = "the rates"
    basis: RateBasis = RateBasis.CLOSE_DATE
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

    def fingerprint(self) -> str:
        """The rates as text: what a recompute depends on."""
        return (
            ";".join(
                f"{currency}:{start}={rate}"
                for currency in sorted(self.by_currency)
                for start, rate in self.by_currency[currency]
            )
            + f"|{self.basis.value}"
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
        rate = rates.on(deal.currency, day) if rates is not None else None
        if rate is None:
            where = rates.source if rates is not None else "no rates file (calc --rates FILE)"
            raise CalculationError(
                f"deal {deal.id}: is in {deal.currency}, and {where} has no {deal.currency} "
                f"rate on or before {day}: add a row {deal.currency},<from date>,<{currency} "
                f"per {deal.currency}>"
            )
        said = f"{deal.currency} {format_money(deal.amount)} at {rate.normalize():f}"
        properties = {**deal.properties, FX: said}
        converted.append(
            deal._replace(amount=round_cents(deal.amount * rate), currency=currency,
                          properties=properties)
        )  # fmt: skip
    return converted
