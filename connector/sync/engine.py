"""The sync engine: the only orchestrator. Pull → store → recompute → diff → write.

One run:

1. read every CRM user (few) and the deals changed since the stored cursor
   (all with ``full``), deletions included;
2. turn each deal into a snapshot: a deal seen won before and lost (or
   deleted, or reopened) now becomes ``cancelled`` on the day the CRM stamped
   the change; remember which reps a *business* change touches (a deal whose
   only change is our own fields touches nobody);
3. recompute those reps' whole histories with the pure engine (draws carry
   forward, so a period is never computed alone) and save their statements;
4. turn statements into desired field values, store them, and write every
   value that differs from what the CRM holds, in batches; values that fail
   stay pending and are retried by the next sync, whatever it touches;
5. read once more what changed during the run (mostly our own writes) so the
   next incremental sync starts after them, and record the run.

``dry_run`` does steps 1-4 in memory and writes nothing, to the CRM or the store.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from connector.adapters.base import (
    ApiUsage,
    CrmAdapter,
    CrmDeal,
    CrmUser,
    Outcome,
    RecordUpdate,
)
from connector.errors import ConfigError, ConnectorError
from connector.fields import RecordKind
from connector.models import CalcWarning, Deal, DealStatus, Rep, Split, Statement
from connector.money import HUNDRED, ZERO
from connector.plans import Plan
from connector.sync.diff import (
    DEAL_KEYS,
    PlannedWrite,
    canonical_datetime,
    changes,
    deal_values,
    rep_values,
)
from connector.sync.periods import PeriodKind, label, period_of
from connector.sync.statements import calculate
from connector.sync.store import DealSnapshot, Store

DEALS_CURSOR = "deals_modified"
AS_OF_PERIOD_CURSOR = "as_of_period"
DIRTY_REPS_CURSOR = "dirty_reps"
READ_BATCH = 2000


@dataclass(frozen=True)
class SyncSettings:
    plans: tuple[Plan, ...]
    currency: str
    period_kind: PeriodKind
    timezone: ZoneInfo


@dataclass(frozen=True)
class SyncOptions:
    as_of: date
    full: bool = False
    dry_run: bool = False


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
    planned: list[PlannedWrite] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    usage: ApiUsage | None = None

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
            "failures": [f.__dict__ for f in self.failures],
            "warnings": self.warnings,
            "api_calls": self.usage.calls if self.usage else None,
        }


Progress = Callable[[str, int], None]  # (stage, records so far)


def _quiet(stage: str, count: int) -> None:
    """The default progress sink: say nothing."""


@dataclass
class _Run:
    """What one run carries between its steps."""

    options: SyncOptions
    started: datetime
    summary: SyncSummary = field(default_factory=SyncSummary)
    changed: dict[str, DealSnapshot] = field(default_factory=dict)
    splits: dict[str, list[tuple[str, Decimal]]] = field(default_factory=dict)
    affected: set[str] = field(default_factory=set)
    newest: datetime | None = None

    @property
    def dry(self) -> bool:
        return self.options.dry_run


class SyncEngine:
    def __init__(
        self,
        settings: SyncSettings,
        adapter: CrmAdapter,
        store: Store,
        clock: Callable[[], datetime],
        progress: Progress = _quiet,
    ) -> None:
        self.settings = settings
        self.adapter = adapter
        self.store = store
        self.clock = clock
        self.progress = progress

    # -- the run ----------------------------------------------------------------------

    def run(self, options: SyncOptions) -> SyncSummary:
        run = _Run(options, self.clock())
        if options.dry_run:
            self._steps(run)
            return run.summary
        holder = f"{socket.gethostname()}:{os.getpid()}"
        with self.store.sync_lock(holder, run.started):
            run_id = self.store.start_run(
                "sync", run.started, {"full": options.full, "as_of": options.as_of.isoformat()}
            )
            try:
                self._steps(run)
            except ConnectorError as error:
                self.store.finish_run(run_id, self.clock(), "failed", {"error": str(error)})
                raise
            status = "partial" if run.summary.failures else "ok"
            self.store.finish_run(run_id, self.clock(), status, run.summary.as_json())
        return run.summary

    def _steps(self, run: _Run) -> None:
        store, summary, kind = self.store, run.summary, self.settings.period_kind
        users = self._read_users(run)
        members = resolve_members(self.settings.plans, users)
        reps = [_rep(user) for user in users.values() if user.id in members]

        cursor = None if run.options.full else store.cursor(DEALS_CURSOR)
        since = datetime.fromisoformat(cursor) if cursor else None
        self._pull(run, since)
        summary.deals_changed = len(run.changed)

        as_of_label = label(period_of(run.options.as_of, kind), kind)
        rolled_over = store.cursor(AS_OF_PERIOD_CURSOR) != as_of_label
        dirty = set(json.loads(store.cursor(DIRTY_REPS_CURSOR) or "[]"))
        affected = set(members) if run.options.full or rolled_over else run.affected
        affected = (affected | dirty) & members

        statements, covered = self._recompute(run, reps, affected)
        summary.reps_recomputed = len({s.rep_id for s in statements})
        summary.statements = len(statements)

        desired_deals = deal_values(statements, covered)
        # A deal that changed but is credited to nobody we computed loses our values.
        for deal_id in run.changed.keys() - desired_deals.keys():
            desired_deals[deal_id] = dict.fromkeys(DEAL_KEYS)
        desired = {
            RecordKind.DEAL: desired_deals,
            RecordKind.REP: rep_values(statements, as_of_label),
        }
        stamp = canonical_datetime(run.started)
        pending: dict[RecordKind, dict[str, dict[str, str | None]]] = {}
        for record, values in desired.items():
            pending[record] = self._pending(run, record, values)
            if record is RecordKind.REP:
                for rep_values_ in pending[record].values():
                    rep_values_["updated_at"] = stamp
            current = {
                key: state.crm
                for key, state in store.field_states(record, pending[record].keys()).items()
            }
            summary.planned.extend(changes(record, pending[record], current))

        if not run.dry:
            for record in (RecordKind.DEAL, RecordKind.REP):
                self._write(run, record, pending[record])
            # Only our deal writes move deal stamps; with none, there is nothing to settle.
            dirty_now = self._settle(run) if pending[RecordKind.DEAL] else set()
            if run.newest is not None:
                store.set_cursor(DEALS_CURSOR, run.newest.isoformat())
            store.set_cursor(AS_OF_PERIOD_CURSOR, as_of_label)
            store.set_cursor(DIRTY_REPS_CURSOR, json.dumps(sorted(dirty_now)))
        summary.usage = self.adapter.usage()

    # -- pulling --------------------------------------------------------------------------

    def _read_users(self, run: _Run) -> dict[str, CrmUser]:
        users = {user.id: user for user in self.adapter.read_users()}
        run.summary.users_read = len(users)
        self.progress("users", len(users))
        if not run.dry:
            self.store.upsert_users(users.values())
            self.store.set_crm_values(
                RecordKind.REP,
                ((u.id, key, value) for u in users.values() for key, value in u.fields.items()),
            )
        return users

    def _pull(self, run: _Run, since: datetime | None) -> None:
        """Read changed deals in batches, then the splits of the ones that changed."""
        for batch in _batches(self.adapter.read_deals(since), READ_BATCH):
            run.affected |= self._absorb(run, batch)
            self.progress("deals", run.summary.deals_read)
        # Only deals that are or were won carry credit, so only their splits matter; the
        # splits of an open or never-won lost deal are read when (if) it is won.
        credited = [
            deal_id
            for deal_id, snapshot in run.changed.items()
            if snapshot.first_won_on is not None or snapshot.outcome is Outcome.WON
        ]
        if credited:
            splits = self.adapter.read_splits(credited)
            if splits is not None:
                by_deal: dict[str, list[tuple[str, Decimal]]] = {d: [] for d in credited}
                for split in splits:
                    by_deal.setdefault(split.deal_id, []).append((split.rep_id, split.percent))
                before = self.store.splits_for(list(by_deal))
                for rows in (*by_deal.values(), *before.values()):
                    run.affected.update(rep for rep, _ in rows)
                if not run.dry:
                    self.store.replace_splits(by_deal)
                run.splits = by_deal

    def _absorb(self, run: _Run, batch: Sequence[CrmDeal]) -> set[str]:
        """Snapshot a batch of pulled deals; return the reps a business change touches."""
        run.summary.deals_read += len(batch)
        run.newest = max([run.newest, *(d.modified_at for d in batch)], key=_stamp_key)
        before = self.store.deal_snapshots([deal.id for deal in batch])
        changed: dict[str, DealSnapshot] = {}
        touched: set[str] = set()
        for crm_deal in batch:
            previous = before.get(crm_deal.id)
            snapshot = _snapshot(crm_deal, previous, self.settings.timezone)
            if previous is None or _business(previous) != _business(snapshot):
                changed[snapshot.id] = snapshot
                touched.add(snapshot.owner_id)
                if previous is not None:
                    touched.add(previous.owner_id)
            if snapshot.currency and snapshot.currency != self.settings.currency:
                run.summary.warnings.append(
                    f"deal {snapshot.id} is in {snapshot.currency}, not the plan currency "
                    f"{self.settings.currency}: left out of the calculation"
                )
        run.changed.update(changed)
        if not run.dry:
            self.store.upsert_deals(changed.values())
            self.store.set_crm_values(
                RecordKind.DEAL,
                ((d.id, key, value) for d in batch for key, value in d.fields.items()),
            )
        return touched

    # -- computing --------------------------------------------------------------------------

    def _recompute(
        self, run: _Run, reps: Sequence[Rep], affected: set[str]
    ) -> tuple[list[Statement], set[str]]:
        """Statements of the affected reps (and split partners), and the deals they cover."""
        if not affected:
            return [], set()
        member_ids = {rep.id for rep in reps}
        snapshots = {d.id: d for d in self.store.deals_for_reps(affected)}
        # A dry run stored nothing: lay what was pulled over what the store holds.
        snapshots.update(run.changed)
        splits = self.store.splits_for(list(snapshots))
        splits.update(run.splits)
        partners = {rep for rows in splits.values() for rep, _ in rows} & member_ids
        computed = affected | partners
        if partners - affected:
            for snapshot in self.store.deals_for_reps(partners - affected):
                snapshots.setdefault(snapshot.id, snapshot)
            splits.update(self.store.splits_for([d for d in snapshots if d not in splits]))
        deals, problems = _engine_deals(snapshots.values(), splits, self.settings.currency)
        calculation = calculate(
            self.settings.plans,
            reps,
            deals,
            period_kind=self.settings.period_kind,
            as_of=run.options.as_of,
            rep_ids=computed,
        )
        run.summary.warnings.extend(w.message for w in (*problems, *calculation.warnings))
        statements = list(calculation.statements)
        if not run.dry:
            self.store.save_statements(computed, statements)
        # A deal's values are complete only when every member credited on it was recomputed.
        covered = {
            deal.id
            for deal in deals
            if all(rep in computed for rep in _credited(deal) if rep in member_ids)
        }
        return statements, covered

    # -- writing ------------------------------------------------------------------------------

    def _pending(
        self, run: _Run, record: RecordKind, desired: Mapping[str, Mapping[str, str | None]]
    ) -> dict[str, dict[str, str | None]]:
        """Every value that differs from the CRM's, earlier failures included."""
        if not run.dry:
            self.store.set_desired(
                record,
                (
                    (rid, key, value)
                    for rid, values in desired.items()
                    for key, value in values.items()
                ),
            )
            return {rid: dict(values) for rid, values in self.store.pending(record).items()}
        states = self.store.field_states(record, desired.keys())
        result: dict[str, dict[str, str | None]] = {}
        for rid, values in desired.items():
            for key, value in values.items():
                state = states.get((rid, key))
                if (state.crm if state else None) != value:
                    result.setdefault(rid, {})[key] = value
        return result

    def _write(
        self, run: _Run, record: RecordKind, pending: Mapping[str, Mapping[str, str | None]]
    ) -> None:
        if not pending:
            return
        updates = [RecordUpdate(rid, dict(values)) for rid, values in sorted(pending.items())]
        results = self.adapter.write(record, updates)
        written: list[tuple[str, str, str | None]] = []
        written_before = run.summary.records_written
        for update, result in zip(updates, results, strict=True):
            if result.ok:
                run.summary.records_written += 1
                run.summary.fields_written += len(update.values)
                written.extend(
                    (update.record_id, key, _text(value)) for key, value in update.values.items()
                )
            else:
                run.summary.failures.append(
                    Failure(record, result.record_id, result.code, result.message)
                )
        self.store.set_crm_values(record, written)
        # Per kind of record, so "rep writes" counts reps, not reps and deals.
        self.progress(f"{record.value} writes", run.summary.records_written - written_before)

    def _settle(self, run: _Run) -> set[str]:
        """Read what changed during the run, so the next sync starts after our own writes.

        Our writes move the CRM's change stamps; without this the next incremental
        sync would re-read every record this one wrote. A real change found here
        (someone edited a deal while we ran) marks its reps for the next sync.
        """
        if run.newest is None:
            return set()
        touched: set[str] = set()
        for batch in _batches(self.adapter.read_deals(run.newest), READ_BATCH):
            touched |= self._absorb(run, batch)
        return touched


def resolve_members(plans: Sequence[Plan], users: Mapping[str, CrmUser]) -> set[str]:
    """Plan members as CRM user ids; a member that matches no user is a config error."""
    by_email = {user.email.lower(): user.id for user in users.values() if user.email}
    members: set[str] = set()
    problems: list[str] = []
    for index, plan in enumerate(plans):
        for member in plan.members:
            user_id = (
                by_email.get(member.lower())
                if "@" in member
                else (member if member in users else None)
            )
            if user_id is None:
                what = "matches no CRM user" if "@" in member else "is not a CRM user id"
                problems.append(f"plans[{index}].members: {member} {what} (plan {plan.id})")
            else:
                members.add(user_id)
    if problems:
        raise ConfigError("\n".join(problems))
    return members


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _snapshot(deal: CrmDeal, previous: DealSnapshot | None, zone: ZoneInfo) -> DealSnapshot:
    """The deal as the engine sees it, with the history only we remember.

    A deal seen won before that is now lost, reopened or deleted has been
    reversed: it becomes ``cancelled`` on the day the CRM stamped that change
    (kept from the first time we saw it).
    """
    seen_on = deal.modified_at.astimezone(zone).date()
    first_won_on = previous.first_won_on if previous is not None else None
    cancel_date: date | None = None
    if deal.outcome is Outcome.WON and not deal.deleted:
        status = DealStatus.WON
        first_won_on = first_won_on or seen_on
    elif first_won_on is not None:
        status = DealStatus.CANCELLED
        already = previous is not None and previous.status is DealStatus.CANCELLED
        cancel_date = previous.cancel_date if already and previous is not None else seen_on
        if (
            deal.close_date is not None
            and cancel_date is not None
            and cancel_date < deal.close_date
        ):
            cancel_date = deal.close_date  # reversed before it closed: counts as lost
    else:
        status = DealStatus.LOST if deal.outcome is Outcome.LOST else DealStatus.OPEN
    return DealSnapshot(
        id=deal.id,
        owner_id=deal.owner_id,
        amount=deal.amount,
        currency=deal.currency,
        close_date=deal.close_date,
        outcome=deal.outcome,
        status=status,
        first_won_on=first_won_on,
        cancel_date=cancel_date,
        type=deal.type,
        name=deal.name,
        properties=dict(deal.properties),
        modified_at=deal.modified_at,
        deleted=deal.deleted,
    )


def _stamp_key(moment: datetime | None) -> datetime:
    return moment if moment is not None else datetime.min.replace(tzinfo=ZoneInfo("UTC"))


def _batches(items: Iterable[CrmDeal], size: int) -> Iterator[list[CrmDeal]]:
    batch: list[CrmDeal] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _business(snapshot: DealSnapshot) -> tuple[object, ...]:
    """What the calculation reads from a deal: a change elsewhere touches no statement."""
    return (
        snapshot.owner_id,
        snapshot.amount,
        snapshot.currency,
        snapshot.close_date,
        snapshot.status,
        snapshot.cancel_date,
        snapshot.type,
        tuple(sorted(snapshot.properties.items())),
        snapshot.deleted,
    )


def _rep(user: CrmUser) -> Rep:
    return Rep(
        id=user.id, name=user.name, email=user.email, active=user.active, manager_id=user.manager_id
    )


def _credited(deal: Deal) -> list[str]:
    return [split.rep_id for split in deal.splits] or [deal.owner_id]


def _engine_deals(
    snapshots: Iterable[DealSnapshot],
    splits: Mapping[str, Sequence[tuple[str, Decimal]]],
    currency: str,
) -> tuple[list[Deal], list[CalcWarning]]:
    """Snapshots the engine can compute; the rest are reported, never silently mixed in."""
    deals: list[Deal] = []
    warnings: list[CalcWarning] = []
    for snap in sorted(snapshots, key=lambda s: s.id):
        if snap.deleted and snap.status is not DealStatus.CANCELLED:
            continue
        if snap.currency and snap.currency != currency:
            continue  # reported when pulled
        if snap.close_date is None or snap.amount is None:
            if snap.status in (DealStatus.WON, DealStatus.CANCELLED):
                missing = "amount" if snap.amount is None else "close date"
                warnings.append(
                    CalcWarning(
                        f"deal {snap.id} is won but has no {missing}: left out of the calculation"
                    )
                )
            continue
        rows = splits.get(snap.id, [])
        total = sum((percent for _, percent in rows), ZERO)
        deal_splits: tuple[Split, ...] = ()
        if rows and total == HUNDRED and len({rep for rep, _ in rows}) == len(rows):
            deal_splits = tuple(Split(rep, percent) for rep, percent in rows)
        elif rows:
            warnings.append(
                CalcWarning(
                    f"deal {snap.id}: splits sum to {total}, not 100 (or name a rep twice); "
                    "credited to the owner"
                )
            )
        deals.append(
            Deal(
                id=snap.id,
                owner_id=snap.owner_id,
                amount=snap.amount,
                close_date=snap.close_date,
                status=snap.status,
                currency=snap.currency,
                cancel_date=snap.cancel_date,
                type=snap.type,
                properties=snap.properties,
                splits=deal_splits,
            )
        )
    return deals, warnings
