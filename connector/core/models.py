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
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

_NO_PROPERTIES: Mapping[str, str] = MappingProxyType({})


class PeriodKind(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"


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
    # A late change to a closed period, or an amount entered by hand (pay-cycle.md).
    ADJUSTMENT = "adjustment"
    # A share of commission held back (negative), or what was held, released (positive).
    HOLDBACK = "holdback"
    # A manager's share of a credit of a rep below them (negative: reversed by a cancel).
    OVERRIDE = "override"


@dataclass(frozen=True, slots=True)
class Rep:
    id: str
    name: str = ""
    email: str = ""
    active: bool = True
    start_date: date | None = None
    end_date: date | None = None
    manager_id: str | None = None
    team_id: str | None = None  # a CRM team (HubSpot's primary team), when not by manager


class TeamSpell(NamedTuple):
    """A rep's membership of one team, from ``start`` to ``end`` (inclusive; None: open)."""

    rep_id: str
    team_id: str
    manager_id: str | None
    start: date | None = None
    end: date | None = None


class CrmQuota(NamedTuple):
    """A quota the CRM holds for a rep (ForecastingQuota, a HubSpot goal target)."""

    rep_id: str
    start_date: date  # counts in the period containing it
    amount: Decimal | None = None
    quantity: Decimal | None = None


class Lead(NamedTuple):
    """A lead (Salesforce) or contact (HubSpot) a rep owns, for the lead-to-sale ratio."""

    id: str
    owner_id: str
    created_date: date
    converted: bool


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
    created_date: date | None = None  # for the sales cycle length


class Line(NamedTuple):
    """One explained amount on a statement."""

    kind: LineKind
    deal_id: str | None
    amount: Decimal
    rate: Decimal | None
    rule: str
    # For clawbacks: the period the reversed deal was paid in; for adjustments of a
    # late change, the closed period it corrects (None on a manual adjustment).
    paid_period: str | None = None
    # For commission lines: the rep's credit on the deal (the line's base).
    credit: Decimal | None = None


class GoalResult(NamedTuple):
    """One goal's figures in one rep-period (or one team-period); a NamedTuple, as a
    large org has half a million of them."""

    goal_id: str
    metric: str  # revenue | deals_won | new_customers
    team_id: str | None  # the team, for a team goal
    target: Decimal | None  # None: no target (the CRM had none and there is no fallback)
    actual: Decimal  # money for revenue; an exact count (split shares) otherwise
    attainment: Decimal | None  # rounded half-up to 4 places
    # SMART goals: attainment projected to the deadline (the period's last day) at the
    # rate so far, 1.0000 on pace; None before a fifth of the period has gone by.
    pace: Decimal | None = None
    deadline: date | None = None


@dataclass(frozen=True, slots=True)
class TeamResult:
    """A team goal for one team and period: what the manager's record shows."""

    plan_id: str
    period: str
    team_id: str
    manager_id: str | None
    members: tuple[str, ...]  # on this plan in the period, sorted
    goal: GoalResult


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
    # KPIs managers coach on (None where they do not apply).
    sales_cycle_days: Decimal | None = None
    pipeline_coverage: Decimal | None = None
    pace: Decimal | None = None
    to_next_tier: Decimal | None = None
    lead_to_sale: Decimal | None = None
    goals: tuple[GoalResult, ...] = ()
    # Late changes to closed periods and manual adjustments (already in earnings).
    adjustments: Decimal = Decimal(0)
    # What the rep's open deals would pay if each closed on the as-of day (sync only;
    # on the as-of period's statement).
    estimated_commission: Decimal | None = None
    # Commission held back this period (negative) and released (positive), net; and the
    # balance still held after it.
    holdback: Decimal = Decimal(0)
    held_back: Decimal = Decimal(0)
    # Manager overrides on the credits of the reps below (in earnings).
    overrides: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class CalcWarning:
    """Something the engine skipped that a person should know about."""

    message: str


class FigureKind(StrEnum):
    MONEY = "money"  # two places
    FRACTION = "fraction"  # four places
    COUNT = "count"
    DAYS = "days"  # one place


# A statement's figures in their documented order (cli.md), with how each is shown.
# Output, the store and the CRM field values all derive from this one list.
STATEMENT_FIGURES: tuple[tuple[str, FigureKind], ...] = (
    ("quota", FigureKind.MONEY),
    ("bookings", FigureKind.MONEY),
    ("attainment", FigureKind.FRACTION),
    ("commission", FigureKind.MONEY),
    ("spiffs", FigureKind.MONEY),
    ("bonuses", FigureKind.MONEY),
    ("overrides", FigureKind.MONEY),
    ("clawbacks", FigureKind.MONEY),
    ("adjustments", FigureKind.MONEY),
    ("holdback", FigureKind.MONEY),
    ("earnings", FigureKind.MONEY),
    ("draw", FigureKind.MONEY),
    ("draw_paid", FigureKind.MONEY),
    ("draw_recovered", FigureKind.MONEY),
    ("draw_balance", FigureKind.MONEY),
    ("draw_forgiven", FigureKind.MONEY),
    ("held_back", FigureKind.MONEY),
    ("payout", FigureKind.MONEY),
    ("won_count", FigureKind.COUNT),
    ("lost_count", FigureKind.COUNT),
    ("win_rate", FigureKind.FRACTION),
    ("average_deal_size", FigureKind.MONEY),
    ("open_pipeline", FigureKind.MONEY),
    ("sales_cycle_days", FigureKind.DAYS),
    ("pipeline_coverage", FigureKind.FRACTION),
    ("pace", FigureKind.FRACTION),
    ("to_next_tier", FigureKind.MONEY),
    ("lead_to_sale", FigureKind.FRACTION),
)


# --- what the CRM says: records the adapters build at the edge -------------------------

# A value we write: Decimal money/fractions, text, a datetime, or None to clear.
FieldValue = Decimal | str | datetime | None


class Outcome(StrEnum):
    """What the CRM says of a deal now; the engine derives ``cancelled`` from history."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True)
class CrmUser:
    id: str
    name: str
    email: str
    active: bool
    manager_id: str | None = None
    team_id: str | None = None  # HubSpot: the owner's primary team
    # Current values of our custom fields on the rep record, by field key (text as read).
    fields: Mapping[str, str | None] = field(default_factory=dict)
    # Where the rep values live when that is another record than the user (HubSpot:
    # the ``users`` object record matched to the owner); None when it is the user itself.
    record_id: str | None = None
    payroll_id: str | None = None  # the employee id payroll knows (pay_cycle.payroll_id_field)


@dataclass(frozen=True)
class CrmDeal:
    id: str
    owner_id: str
    amount: Decimal | None
    close_date: date | None
    outcome: Outcome
    modified_at: datetime  # the CRM's change stamp (SystemModstamp / hs_lastmodifieddate), UTC
    currency: str | None = None
    type: str | None = None
    name: str = ""
    deleted: bool = False
    properties: Mapping[str, str] = field(default_factory=dict)
    # Current values of our custom fields on the deal, by field key (text as read).
    fields: Mapping[str, str | None] = field(default_factory=dict)
    created_date: date | None = None


@dataclass(frozen=True)
class CrmSplit:
    deal_id: str
    rep_id: str
    percent: Decimal


@dataclass(frozen=True)
class TaskDraft:
    """A task to open in the CRM, assigned to ``owner_id`` (a CRM user)."""

    owner_id: str
    subject: str
    body: str
    due: date


@dataclass(frozen=True)
class CrmTask:
    """A task as the CRM holds it now."""

    id: str
    done: bool  # completed (Salesforce: a closed status; HubSpot: COMPLETED)
    status: str
    body: str
    modified_at: datetime | None = None


@dataclass(frozen=True)
class RecordUpdate:
    """New values for one record, by field key."""

    record_id: str
    values: Mapping[str, FieldValue]
    # The CRM record that holds them when it is not ``record_id`` (CrmUser.record_id).
    target_id: str | None = None


@dataclass(frozen=True)
class WriteResult:
    record_id: str
    ok: bool
    code: str = ""  # the CRM's error code, e.g. UNABLE_TO_LOCK_ROW
    message: str = ""


@dataclass(frozen=True)
class FieldStatus:
    """What ``install`` found or did for one field (or permission item)."""

    name: str
    action: str  # "created", "exists", "would create", "assigned", …
    detail: str = ""


@dataclass(frozen=True)
class ApiUsage:
    calls: int  # API calls this adapter made
    used: int | None = None  # the CRM's own count, where it reports one
    limit: int | None = None
    waited_s: float = 0.0  # time spent waiting on rate limits


@dataclass(frozen=True)
class DealSnapshot:
    """A deal as last pulled, with the history only we remember (first seen won)."""

    id: str
    owner_id: str
    amount: Decimal | None
    currency: str | None
    close_date: date | None
    outcome: Outcome
    status: DealStatus
    first_won_on: date | None
    cancel_date: date | None
    type: str | None
    name: str
    properties: Mapping[str, str]
    modified_at: datetime
    deleted: bool
    created_date: date | None = None
