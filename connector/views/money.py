"""Money as people read it: the currency's symbol, the locale's separators (Babel).

For terminal tables, statements and the reports page only. JSON and CSV keep
plain exact decimals (``1234.50``), which programs read. Nothing is rounded for
display: amounts are already exact to the cent, and a figure with more places
than the currency has (a yen amount with cents) shows them all.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency

DEFAULT_LOCALE = "en_US"


def known_locale(name: str) -> bool:
    try:
        Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        return False
    return True


@lru_cache(maxsize=4096)
def _shown(value: Decimal, currency: str, locale: str) -> str:
    return format_currency(value, currency, locale=locale, decimal_quantization=False)


def money(value: Decimal | None, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """``$1,234.50`` (en_US), ``1.234,50 €`` (de_DE); ``—`` for no figure."""
    return "—" if value is None else _shown(value, currency, locale)
