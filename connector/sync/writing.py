"""Step 4 of a sync: write every value the CRM does not hold yet, and record what it took.

Values are committed as desired before they are written; what the CRM accepts
is recorded as its value, and what fails stays pending for the next run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from connector.core.diff import changes
from connector.core.fields import RecordKind
from connector.core.models import CrmUser, RecordUpdate
from connector.core.values import canonical_datetime
from connector.sync.run import ChangeSet, Failure, Progress, Run


def write_pending(
    run: Run,
    desired: Mapping[RecordKind, Mapping[str, Mapping[str, str | None]]],
    users: Mapping[str, CrmUser],
    scope: Mapping[RecordKind, Collection[str]] | None,
    progress: Progress,
) -> None:
    """Write every value the CRM does not hold yet (only of ``scope``'s records, if given)."""
    store, stamp = run.store, canonical_datetime(run.started)
    for record in (RecordKind.DEAL, RecordKind.REP):
        ids = scope[record] if scope is not None else None
        pending = store.crm_values.pending(record, ids)
        if record is RecordKind.REP:
            for values in pending.values():
                values["updated_at"] = stamp
        current = {
            key: state.crm for key, state in store.crm_values.states(record, pending.keys()).items()
        }
        run.summary.planned.extend(changes(record, pending, current))
        targets = {uid: u.record_id for uid, u in users.items()} if record is RecordKind.REP else {}
        _write(run, record, pending, targets)
        progress(f"{record.value} writes", run.summary.records_written)


def scope_of(
    run: Run,
    change: ChangeSet,
    desired: Mapping[RecordKind, Mapping[str, Mapping[str, str | None]]],
) -> dict[RecordKind, set[str]]:
    """The worker door writes what it computed, and what is still owed on its records.

    A worker killed after writing a deal but before writing its reps left their
    values pending; the retried event finds nothing new to compute, so the deals
    and the reps credited on them are in scope whatever this pass computed.
    """
    deals = set(desired[RecordKind.DEAL]) | change.deals
    credited = {s.owner_id for s in run.store.deals.by_id(change.deals).values()}
    for rows in run.store.deals.splits(sorted(change.deals)).values():
        credited.update(rep for rep, _ in rows)
    reps = set(desired[RecordKind.REP]) | credited | change.users
    return {RecordKind.DEAL: deals, RecordKind.REP: reps}


def _write(
    run: Run,
    record: RecordKind,
    pending: Mapping[str, Mapping[str, str | None]],
    targets: Mapping[str, str | None],
) -> None:
    if not pending:
        return
    updates = [
        RecordUpdate(rid, dict(values), targets.get(rid)) for rid, values in sorted(pending.items())
    ]
    results = run.sink.write(record, updates)
    written: list[tuple[str, str, str | None]] = []
    for update, result in zip(updates, results, strict=True):
        if result.ok:
            run.summary.records_written += 1
            run.summary.fields_written += len(update.values)
            if record is RecordKind.DEAL:
                run.deals_written += 1
            written.extend(
                (update.record_id, key, _text(value)) for key, value in update.values.items()
            )
        else:
            run.summary.failures.append(
                Failure(record, result.record_id, result.code, result.message)
            )
    run.store.crm_values.set_crm(record, written)


def _text(value: object) -> str | None:
    return None if value is None else str(value)
