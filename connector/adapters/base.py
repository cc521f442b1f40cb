"""The one small protocol every CRM adapter implements.

The sync engine needs only these operations from a CRM. Adapters turn vendor
payloads into these records at the edge; past it, nothing sees a vendor dict.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from connector.fields import FieldSpec, RecordKind

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
    # Current values of our custom fields on the rep record, by field key (text as read).
    fields: Mapping[str, str | None] = field(default_factory=dict)


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


@dataclass(frozen=True)
class CrmSplit:
    deal_id: str
    rep_id: str
    percent: Decimal


@dataclass(frozen=True)
class RecordUpdate:
    """New values for one record, by field key."""

    record_id: str
    values: Mapping[str, FieldValue]


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


class CrmAdapter(Protocol):
    """Reads users, deals and splits; creates our fields; writes values back."""

    name: str

    def read_users(self, include_fields: bool = True) -> Iterator[CrmUser]:
        """Every user / owner, with the current values of our rep fields.

        ``include_fields=False`` reads them before our fields exist (install).
        """
        ...

    def read_deals(self, since: datetime | None) -> Iterator[CrmDeal]:
        """Deals changed after ``since`` (all when None), deletions included, lazily."""
        ...

    def read_splits(self, deal_ids: Collection[str]) -> Iterator[CrmSplit] | None:
        """Splits of the given deals, or None when the CRM has no splits."""
        ...

    def ensure_fields(
        self, specs: Sequence[FieldSpec], *, dry_run: bool, assign_to: Collection[str] = ()
    ) -> list[FieldStatus]:
        """Create missing custom fields (and read access for ``assign_to`` users)."""
        ...

    def write(self, record: RecordKind, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        """Write in as few calls as the CRM allows; one result per update, in order."""
        ...

    def usage(self) -> ApiUsage: ...
