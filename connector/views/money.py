"""Money as people read it: the currency's symbol, the locale's separators (Babel).

For terminal tables, statements and the reports page only. JSON and CSV keep
plain exact decimals (``1234.50``), which programs read. Nothing is rounded for
display: amounts are already exact to the cent, and a figure with more places
than the currency has (a yen amount with cents) shows them all.

Babel's ``format_currency`` gives the answer; a page of a thousand reps shows a few
thousand amounts, so each (currency, locale) gets a formatter built once from
Babel's own pattern, symbols and grouping, which a test holds equal to
``format_currency`` over random amounts and locales.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import (
    format_currency,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
)

DEFAULT_LOCALE = "en_US"


def known_locale(name: str) -> bool:
    try:
        Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        return False
    return True


def money(value: Decimal | None, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """``$1,234.50`` (en_US), ``1.234,50 €`` (de_DE); ``—`` for no figure."""
    return "—" if value is None else formatter(currency, locale)(value)


@lru_cache(maxsize=64)
def formatter(currency: str, locale: str) -> Callable[[Decimal], str]:
    """Babel's ``format_currency(value, currency, locale=…, decimal_quantization=False)``."""
    where = Locale.parse(locale)
    pattern = where.currency_formats["standard"]
    symbol = get_currency_symbol(currency, where)
    group, point = get_group_symbol(where), get_decimal_symbol(where)
    places = get_currency_precision(currency)
    prefixes = [p.replace("¤", symbol) for p in pattern.prefix]
    suffixes = [p.replace("¤", symbol) for p in pattern.suffix]
    primary, secondary = pattern.grouping

    def shown(value: Decimal) -> str:
        whole, _, fraction = format(abs(value), "f").partition(".")
        fraction = fraction.rstrip("0").ljust(places, "0")
        groups = [whole[-primary:]] if len(whole) > primary else [whole]
        rest = whole[:-primary] if len(whole) > primary else ""
        while rest:
            groups.insert(0, rest[-secondary:])
            rest = rest[:-secondary]
        number = group.join(groups) + (point + fraction if fraction else "")
        sign = 1 if value < 0 and (whole.strip("0") or fraction.strip("0")) else 0
        return f"{prefixes[sign]}{number}{suffixes[sign]}"

    def babel(value: Decimal) -> str:
        return format_currency(value, currency, locale=where, decimal_quantization=False)

    # Where a locale's rules go beyond the pattern (Swiss currency amounts are not
    # grouped), the probes differ and Babel formats every amount itself.
    if any(shown(probe) != babel(probe) for probe in _PROBES):
        return babel
    return shown


_PROBES = tuple(
    Decimal(text) for text in ("0", "-0.5", "7", "1234.5", "-1234567.891", "98765432100.25")
)
