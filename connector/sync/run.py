"""What a sync is told (settings, options, a change set), carries between its steps
(a run), and reports (a summary); and the sinks its writes go to."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from connector.adapters.base import CrmAdapter
from connector.core.coaching import Play, TrainingModule
from connector.core.currency import RateBasis, Rates
from connector.core.diff import PlannedWrite
from connector.core.fields import RecordKind
from connector.core.models import ApiUsage, Deal, RecordUpdate, WriteResult
from connector.core.periods import PeriodKind
from connector.core.plans import Plan, TargetSource, Team
from connector.core.recognition import Recognition
from connector.store.state import Store
from connector.sync.links import StatementLinks


@dataclass(frozen=True)
class SyncSettings:
    plans: tuple[Plan, ...]
    currency: str
    period_kind: PeriodKind
    timezone: ZoneInfo
    teams: str | tuple[Team, ...] | None = None  # spm.yaml's `teams:`
    lead_to_sale: bool = False  # read leads for the lead-to-sale ratio
    links: StatementLinks | None = None  # each rep's link to their statements
    rates: Rates | None = None  # exchange rates for deals in other currencies
    # Read the CRM's own exchange rates (this basis) on every run, in place of ``rates``.
    crm_rates: RateBasis | None = None
    # CRM team id → its manager (user id or email), for manager overrides.
    team_managers: Mapping[str, str] = field(default_factory=dict)
    recognition: tuple[Recognition, ...] = ()  # award rules (recognition.py)
    coaching: tuple[Play, ...] = ()  # plays that open manager tasks (coaching.py)
    training: tuple[TrainingModule, ...] = ()  # modules the plays assign

    def fingerprint(self) -> str:
        """What the statements are computed from besides the CRM's data, hashed."""
        rules = {
            "plans": [plan.model_dump(mode="json") for plan in self.plans],
            "teams": self.teams
            if isinstance(self.teams, str | None)
            else [team.model_dump(mode="json") for team in self.teams],
            "currency": self.currency,
            "period": self.period_kind.value,
            # A new link key or address rewrites every link at once (hashed: never stored).
            "links": None if self.links is None else self.links.fingerprint(),
            "rates": None if self.rates is None else self.rates.fingerprint(),
            "crm_rates": None if self.crm_rates is None else self.crm_rates.value,
            "team_managers": dict(sorted(self.team_managers.items())),
            "recognition": [rule.model_dump(mode="json") for rule in self.recognition],
            "coaching": [play.model_dump(mode="json") for play in self.coaching],
            "training": [module.model_dump(mode="json") for module in self.training],
        }
        text = json.dumps(rules, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def overrides(self) -> bool:
        """Whether any plan pays manager overrides (the reporting lines are then read)."""
        return any(p.override or any(v.override for v in p.versions) for p in self.plans)

    @property
    def crm_quotas(self) -> bool:
        """Whether any plan takes its quotas or goal targets from the CRM."""
        return any(
            plan.quota_source is TargetSource.CRM
            or any(goal.target_source is TargetSource.CRM for goal in plan.goals)
            for plan in self.plans
        )


@dataclass(frozen=True)
class SyncOptions:
    as_of: date
    full: bool = False
    dry_run: bool = False
    rebuild: bool = False  # forget the store's state (another CRM account) and sync in full
    # How long the scheduled door waits for a worker pass or another sync holding the lock.
    lock_wait_s: float = 0.0
    # Asked once the lock is held: is this sync still wanted? (A scheduled sync another
    # worker has just run is not.) None: always.
    only_if: Callable[[], bool] | None = None


@dataclass(frozen=True)
class ChangeSet:
    """What the worker door processes: record ids, as events named them."""

    deals: frozenset[str] = frozenset()  # created, changed, restored, merged, or deleted
    users: frozenset[str] = frozenset()
    splits: frozenset[str] = frozenset()  # deals whose splits changed (their deal may not)

    @classmethod
    def of(
        cls, deals: Iterable[str] = (), users: Iterable[str] = (), splits: Iterable[str] = ()
    ) -> ChangeSet:
        split_deals = frozenset(splits)
        return cls(frozenset(deals) | split_deals, frozenset(users), split_deals)


@dataclass(frozen=True)
class Failure:
    record: RecordKind
    record_id: str
    code: str
    message: str


@dataclass
class SyncSummary:
    users_read: int = 0
    deals_read: int = 0
    deals_changed: int = 0
    reps_recomputed: int = 0
    statements: int = 0
    records_written: int = 0
    fields_written: int = 0
    interrupted_runs: int = 0
    quotas_read: int | None = None  # None: not read (no plan takes quotas from the CRM)
    leads_read: int | None = None  # None: the lead-to-sale ratio is off
    lead_calls: int = 0  # API calls the lead reads cost
    planned: list[PlannedWrite] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    usage: ApiUsage | None = None
    skipped: bool = False  # ``only_if`` said no: nothing was done

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def as_json(self) -> dict[str, object]:
        return {
            "users_read": self.users_read,
            "deals_read": self.deals_read,
            "deals_changed": self.deals_changed,
            "reps_recomputed": self.reps_recomputed,
            "statements": self.statements,
            "records_written": self.records_written,
            "fields_written": self.fields_written,
            "quotas_read": self.quotas_read,
            "leads_read": self.leads_read,
            "lead_api_calls": self.lead_calls,
            "failures": [f.__dict__ for f in self.failures],
            "warnings": self.warnings,
            "api_calls": self.usage.calls if self.usage else None,
            # The account's own count of its daily allocation, as the CRM last said it.
            "api_daily_used": self.usage.used if self.usage else None,
            "api_daily_limit": self.usage.limit if self.usage else None,
        }


Progress = Callable[[str, int], None]  # (stage, records so far)


def quiet(stage: str, count: int) -> None:
    """The default progress sink: say nothing."""


class Sink(Protocol):
    """Where planned writes go: the CRM, or a record of them."""

    def write(self, record: RecordKind, updates: Sequence[RecordUpdate]) -> list[WriteResult]: ...


class RecordingSink:
    """Accepts every write and keeps it: what a dry run shows."""

    def __init__(self) -> None:
        self.updates: list[tuple[RecordKind, RecordUpdate]] = []

    def write(self, record: RecordKind, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        self.updates.extend((record, update) for update in updates)
        return [WriteResult(update.record_id, True) for update in updates]


class CrmSink:
    """Writes through the adapter (a real run; a dry run records instead)."""

    def __init__(self, adapter: CrmAdapter) -> None:
        self._adapter = adapter

    def write(self, record: RecordKind, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        return self._adapter.write(record, updates)


@dataclass
class Run:
    """What one pass carries between its steps."""

    options: SyncOptions
    store: Store
    sink: Sink
    started: datetime
    summary: SyncSummary = field(default_factory=SyncSummary)
    newest: datetime | None = None
    deals_written: int = 0
    pulled_owners: set[str] = field(default_factory=set)
    users_refreshed: bool = False  # read afresh this run: never twice
    # What each open deal of the computed reps would pay if it closed today.
    estimates: Mapping[str, Decimal] = field(default_factory=dict)
    # The deals the computed reps' statements were computed from (coaching's figures).
    deals: Sequence[Deal] = ()
