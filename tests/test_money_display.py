"""Money on pages and tables reads exactly as Babel writes it, for every locale we try."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.views.money import money

LOCALES = ("en_US", "en_GB", "en_IN", "de_DE", "de_CH", "fr_FR", "fr_CH", "ja_JP", "sv_SE",
           "ar_EG", "he_IL", "pt_BR", "hi_IN", "nl_NL")  # fmt: skip
CURRENCIES = ("USD", "EUR", "JPY", "INR", "BHD", "CHF", "GBP")
AMOUNTS = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=3, allow_nan=False
)


@settings(max_examples=400, deadline=None)
@given(AMOUNTS, st.sampled_from(CURRENCIES), st.sampled_from(LOCALES))
def test_money_is_babels_format_currency_without_rounding(
    value: Decimal, currency: str, locale: str
) -> None:
    assert money(value, currency, locale) == format_currency(
        value, currency, locale=locale, decimal_quantization=False
    )


def test_worked_examples() -> None:
    assert money(Decimal("1234567.5"), "USD") == "$1,234,567.50"
    assert money(Decimal("-250"), "USD") == "-$250.00"  # a clawback
    assert money(Decimal("1234.005"), "USD") == "$1,234.005"  # never rounded away
    assert money(Decimal("-1234.5"), "EUR", "de_DE") == "-1.234,50\xa0€"
    assert money(Decimal("1234567.5"), "INR", "en_IN") == "₹12,34,567.50"
    assert money(None, "USD") == "—"
