"""Canonical text of our CRM field values.

Values are compared as text (money ``"1234.50"``, fractions with the places the
field keeps, ISO datetimes to the second), the same form adapters turn what they
read from the CRM into, so "nothing changed" is a plain string comparison and a
second sync with nothing new writes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from connector.core.fields import CATALOGUE, FieldSpec, ValueKind
from connector.core.money import format_money, ratio

_SPECS = {spec.key: spec for spec in CATALOGUE}


def fraction_places(spec: FieldSpec) -> Decimal:
    """Places a fraction keeps: a Percent(7,4) field holds 4 places of percent = 6 of fraction."""
    return Decimal(1).scaleb(-(spec.percent_scale + 2))


def canonical_fraction(key: str, value: Decimal) -> str:
    places = fraction_places(_SPECS[key])
    return f"{ratio(value, Decimal(1), places):f}"


def canonical_datetime(moment: datetime) -> str:
    """UTC, to the second: ``2026-11-22T10:03:00Z``. Naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError("a CRM timestamp must carry its time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical(key: str, value: object) -> str | None:
    """Canonical text of a value for field ``key`` (None stays None)."""
    if value is None or value == "":
        return None
    spec = _SPECS[key]
    if spec.value is ValueKind.MONEY:
        return format_money(Decimal(str(value)))
    if spec.value is ValueKind.FRACTION:
        return canonical_fraction(key, Decimal(str(value)))
    if spec.value is ValueKind.NUMBER:
        return f"{ratio(Decimal(str(value)), Decimal(1), Decimal(1).scaleb(-spec.scale)):f}"
    if spec.value is ValueKind.DATETIME and isinstance(value, datetime):
        return canonical_datetime(value)
    return str(value)
