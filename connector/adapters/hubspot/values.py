"""HubSpot's value formats and ours: numbers, timestamps, property values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.core.fields import FieldSpec, ValueKind
from connector.core.models import FieldValue
from connector.core.values import canonical
from connector.errors import CrmError


def decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise CrmError(f"HubSpot sent {text!r} where a number belongs") from None
    if not value.is_finite():
        raise CrmError(f"HubSpot sent {text!r} where a number belongs")
    return value


def ms(text: Any) -> int:
    return int(moment(text).timestamp() * 1000)


def moment(text: Any) -> datetime:
    """HubSpot's timestamps: epoch milliseconds or ISO 8601 (``…Z``), as aware UTC."""
    raw = str(text or "").strip()
    if not raw:
        return datetime.fromtimestamp(0, tz=UTC)
    try:
        if raw.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise CrmError(f"HubSpot sent {raw[:40]!r} where a time belongs") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def value_text(spec: FieldSpec, raw: Any) -> str | None:
    """A property value as read → canonical text (HubSpot keeps fractions as fractions)."""
    if raw is None or raw == "":
        return None
    if spec.value is ValueKind.DATETIME:
        return canonical(spec.key, moment(raw))
    return canonical(spec.key, raw)


def outgoing(spec: FieldSpec, value: FieldValue) -> str:
    """Canonical text → a HubSpot property value (always a string; empty clears it)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if spec.value is ValueKind.DATETIME:
        return moment(value).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return str(value)


def is_number(text: str) -> bool:
    try:
        return float(text) >= 0
    except ValueError:
        return False
