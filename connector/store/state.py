"""The state store: what the connector remembers between runs.

A :class:`Store` is the database (:mod:`connector.store.db`) with one small
repository per table group, and the few commits that span groups.

Crash consistency: each step of a run commits what it did together with what
it still owes (``owed``: reps to recompute, deals whose splits to read), so a
run killed at any point leaves exactly the work the next run must finish.
Desired CRM values are committed before they are written, so a value not yet
written is still pending for the next run.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from connector.core.fields import RecordKind
from connector.core.models import DealSnapshot, Statement
from connector.store.awards import Awards
from connector.store.books import PayCycle
from connector.store.budgets import Budgets
from connector.store.coaching import CoachingTasks
from connector.store.crm_values import CrmValues
from connector.store.cursors import Cursors, MetadataStore
from connector.store.db import Database
from connector.store.deals import Deals, Splits
from connector.store.notes import Notes
from connector.store.owed import OWED_REP, OWED_SPLITS, Owed
from connector.store.reviews import Reviews
from connector.store.runs import Runs
from connector.store.statements import Statements
from connector.store.users import Leads, Quotas, Users


class Store(Database):
    """The database and its repositories; ``Store.open(url)`` opens and migrates it."""

    def __init__(
        self, engine: Engine, url_for_display: str, sqlite_path: Path | None = None
    ) -> None:
        super().__init__(engine, url_for_display, sqlite_path)
        self.runs = Runs(self)
        self.cursors = Cursors(self)
        self.cache = MetadataStore(self)
        self.users = Users(self)
        self.quotas = Quotas(self)
        self.leads = Leads(self)
        self.deals = Deals(self)
        self.owed = Owed(self)
        self.statements = Statements(self)
        self.crm_values = CrmValues(self)
        self.pay = PayCycle(self)
        self.reviews = Reviews(self)
        self.awards = Awards(self)
        self.budgets = Budgets(self)
        self.coaching = CoachingTasks(self)
        self.notes = Notes(self)

    # -- commits that span table groups ------------------------------------------------

    def absorb(
        self,
        snapshots: Iterable[DealSnapshot],
        crm_values: Iterable[tuple[str, str, str | None]],
        owed: Mapping[str, Collection[str]],
    ) -> None:
        """Pulled deals, the values they hold, and the work they make owed: one commit."""
        with self.transaction():
            self.deals.upsert(snapshots)
            self.crm_values.set_crm(RecordKind.DEAL, crm_values)
            for kind, ids in owed.items():
                self.owed.add(kind, ids)

    def settle_splits(self, splits_by_deal: Splits, owed_reps: Collection[str]) -> None:
        """Replace these deals' splits, owe their reps, and mark the split reads done."""
        with self.transaction():
            self.deals.replace_splits(splits_by_deal)
            self.owed.pay(OWED_SPLITS, splits_by_deal.keys())
            self.owed.add(OWED_REP, owed_reps)

    def commit_statements(
        self,
        rep_ids: Collection[str],
        statements: Sequence[Statement],
        desired: Mapping[RecordKind, Mapping[str, Mapping[str, str | None]]],
        paid: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        """The recomputed reps' statements and desired values, and their debt paid: one commit.

        ``rep_ids`` are the reps recomputed (their owed entries are paid); ``paid``
        names further owed work this commit completes, by kind. What changed is read
        before the transaction, which stays short; the sync lock keeps other writers
        of these rows out.
        """
        changes = self.statements.changes(rep_ids, statements)
        values = {
            record: self.crm_values.desired_changes(record, by_id)
            for record, by_id in desired.items()
        }
        with self.transaction():
            self.statements.apply(changes)
            self.owed.pay(OWED_REP, rep_ids)
            for kind, ids in (paid or {}).items():
                self.owed.pay(kind, ids)
            for record, rows in values.items():
                self.crm_values.set_desired(record, rows)

    def close_interrupted_runs(self, now: datetime) -> int:
        """Close the runs that died while running, each with what it left owed."""

        def left_owed() -> dict[str, int]:
            owed = {kind: len(ids) for kind, ids in self.owed.all().items()}
            return {
                "reps_owed": owed.get(OWED_REP, 0),
                "splits_owed": owed.get(OWED_SPLITS, 0),
                "fields_pending": sum(
                    len(values)
                    for record in RecordKind
                    for values in self.crm_values.pending(record).values()
                ),
            }

        return self.runs.close_interrupted(now, left_owed)
