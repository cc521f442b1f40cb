"""Exact money: Decimal from text, rounding named at every step, fixed formats out.

Money never passes through ``float``: values come from strings, ints or
Decimals, and each rounding names ``ROUND_HALF_UP`` (half away from zero on the
absolute value, so ``-0.005`` becomes ``-0.01``) instead of trusting whatever the
ambient Decimal context says.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

CENT = Decimal("0.01")
FRACTION_PLACES = Decimal("0.0001")
ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


class MoneyError(ValueError):
    """A value that is not an exact decimal number."""


def parse_decimal(value: object) -> Decimal:
    """Read a decimal from text, an int or a Decimal; refuse floats and junk.

    Floats are refused because their binary value is not the number the user
    wrote (``0.1`` is 0.1000000000000000055…).
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise MoneyError(f"{value!r} is not a number")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise MoneyError(f"{value!r} is not a number") from None
    elif isinstance(value, float):
        raise MoneyError(f"{value!r} is a binary float; give the number as text")
    else:
        raise MoneyError(f"{value!r} is not a number")
    if not result.is_finite():
        raise MoneyError(f"{value!r} is not a finite number")
    if result.adjusted() > _MAX_EXPONENT:
        # 1e999999 is a Decimal, but not even abs() of it survives the default context.
        shown = str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."
        raise MoneyError(f"{shown} is beyond any plausible amount")
    return result


_MAX_EXPONENT = 20  # a figure of 10^21 or more is a typo, never money, a count or a rate


def round_cents(value: Decimal) -> Decimal:
    """Round half away from zero to the cent; never returns ``-0.00``."""
    rounded = value.quantize(CENT, rounding=ROUND_HALF_UP)
    return rounded if rounded else CENT * 0


def ratio(numerator: Decimal, denominator: Decimal, places: Decimal = FRACTION_PLACES) -> Decimal:
    """``numerator / denominator`` rounded half-up to ``places``, computed exactly.

    Plain Decimal division rounds to the context precision first, and rounding
    that again could round twice. Instead, take the integer quotient and
    remainder of the scaled division and round once, by hand. Both are exact:
    Decimal's ``divmod`` computes the remainder exactly whenever the integer
    quotient fits the context's 28 digits, as any ratio of plausible amounts
    does; a wider one (an absurd ratio) is computed again at 60 digits.
    """
    try:
        return _ratio(numerator, denominator, places)
    except InvalidOperation:
        with localcontext() as context:
            context.prec = 60
            return _ratio(numerator, denominator, places)


def _ratio(numerator: Decimal, denominator: Decimal, places: Decimal) -> Decimal:
    scaled = abs(numerator) / places  # exact: a power-of-ten scaling
    divisor = abs(denominator)
    whole, rest = divmod(scaled, divisor)
    if 2 * rest >= divisor:
        whole += 1
    result = (whole * places).quantize(places)
    if (numerator < 0) != (denominator < 0) and whole:
        result = -result
    return result


def is_whole_cents(value: Decimal) -> bool:
    return value == value.quantize(CENT, rounding=ROUND_HALF_UP)


def format_money(value: Decimal) -> str:
    """``"1234.50"``: exactly two decimals, never ``-0.00``."""
    # str() of a quantized Decimal is already "1234.50"; this runs once per
    # output line, so it skips the f-string formatting machinery.
    rounded = value.quantize(CENT, rounding=ROUND_HALF_UP)
    return str(rounded) if rounded else "0.00"


def format_fraction(value: Decimal) -> str:
    """``"0.8550"``: exactly four decimals, never ``-0.0000``."""
    rounded = value.quantize(FRACTION_PLACES, rounding=ROUND_HALF_UP)
    return str(rounded) if rounded else "0.0000"


def format_days(value: Decimal) -> str:
    """``"12.5"``: days to one place, never ``-0.0``."""
    rounded = value.quantize(_TENTH, rounding=ROUND_HALF_UP)
    return f"{rounded:.1f}" if rounded else "0.0"


_TENTH = Decimal("0.1")


def format_count(value: Decimal) -> str:
    """An exact count as plain text: ``"3"``, ``"2.5"``, ``"0.3333"`` (split shares)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"
