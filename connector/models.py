"""Immutable domain records the engine reads and writes.

These are plain records rather than pydantic models on purpose: they are
built at the edges (CSV loader, CRM adapters, which do the validating) and a
large org has millions of deals and lines, so construction must cost next to
nothing. The per-deal records (Deal, Split, Line) are NamedTuples, which build
several times faster than frozen dataclasses; the rest are frozen dataclasses.
Edges validate; the core trusts these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

_NO_PROPERTIES: Mapping[str, str] = MappingProxyType({})


class DealStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"
    CANCELLED = "cancelled"


class LineKind(StrEnum):
    COMMISSION = "commission"
    SPIFF = "spiff"
    BONUS = "bonus"
    CLAWBACK = "clawback"


@dataclass(frozen=True, slots=True)
class Rep:
    id: str
    name: str = ""
    email: str = ""
    active: bool = True
    start_date: date | None = None
    end_date: date | None = None
    manager_id: str | None = None


class Split(NamedTuple):
    rep_id: str
    percent: Decimal  # 0-100; a deal's splits sum to 100


class Deal(NamedTuple):
    id: str
    owner_id: str
    amount: Decimal
    close_date: date
    status: DealStatus
    currency: str | None = None
    cancel_date: date | None = None
    type: str | None = None
    # Every other column / CRM property as text, for SPIFF filters.
    properties: Mapping[str, str] = _NO_PROPERTIES
    splits: tuple[Split, ...] = ()


class Line(NamedTuple):
    """One explained amount on a statement."""

    kind: LineKind
    deal_id: str | None
    amount: Decimal
    rate: Decimal | None
    rule: str
    # For clawbacks: the period the reversed deal was paid in.
    paid_period: str | None = None
    # For commission lines: the rep's credit on the deal (the line's base).
    credit: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    """One rep's results for one period on one plan."""

    rep_id: str
    plan_id: str
    period: str
    quota: Decimal | None
    bookings: Decimal
    attainment: Decimal | None  # rounded half-up to 4 places (thresholds use exact figures)
    commission: Decimal
    spiffs: Decimal
    bonuses: Decimal
    clawbacks: Decimal
    earnings: Decimal
    draw: Decimal
    draw_paid: Decimal
    draw_recovered: Decimal
    draw_balance: Decimal
    draw_forgiven: Decimal
    payout: Decimal
    won_count: int
    lost_count: int
    win_rate: Decimal | None
    average_deal_size: Decimal | None
    open_pipeline: Decimal
    lines: tuple[Line, ...]
    # The draw's advance (top_up under a recoverable draw, else 0): with
    # draw_paid it makes the ledger identity checkable from statements alone.
    draw_advanced: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class CalcWarning:
    """Something the engine skipped that a person should know about."""

    message: str


@dataclass(frozen=True, slots=True)
class FieldUpdate:
    """A value to write to one CRM record's field."""

    object_type: str  # "deal" or "rep"
    record_id: str
    field: str
    value: str | Decimal | None
