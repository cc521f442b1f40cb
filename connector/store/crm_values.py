"""CRM field values: what each of our fields holds in the CRM, and what it should hold.

A desired value is committed before it is written, so a value not yet written
is still pending for the next run; a value read back from the CRM is its
``crm`` side.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from connector.core.fields import RecordKind
from connector.store.db import Database, chunks
from connector.store.schema import field_values_table

Values = Iterable[tuple[str, str, str | None]]  # (record id, field key, value text)


@dataclass(frozen=True)
class FieldState:
    crm: str | None  # what the CRM holds, as far as we know
    desired: str | None  # what we want there


class CrmValues:
    def __init__(self, db: Database) -> None:
        self._db = db

    def states(
        self, record: RecordKind, record_ids: Collection[str] | None = None
    ) -> dict[tuple[str, str], FieldState]:
        base = sa.select(field_values_table).where(field_values_table.c.record == record.value)
        queries = (
            [base]
            if record_ids is None
            else [
                base.where(field_values_table.c.record_id.in_(c))
                for c in chunks(sorted(record_ids))
            ]
        )
        states: dict[tuple[str, str], FieldState] = {}
        with self._db.reading() as connection:
            for query in queries:
                for row in connection.execute(query):
                    desired = row.desired if row.has_desired else None
                    states[row.record_id, row.key] = FieldState(row.crm, desired)
        return states

    def set_crm(self, record: RecordKind, values: Values) -> None:
        """What the CRM holds now (read, or just written), leaving what we want alone."""
        rows = [
            {
                "record": record.value,
                "record_id": rid,
                "key": key,
                "crm": value,
                "desired": None,
                "has_desired": False,
            }
            for rid, key, value in values
        ]
        with self._db.transaction() as connection:
            self._db.upsert(connection, field_values_table, rows, ["crm"])

    def pending(
        self, record: RecordKind, record_ids: Collection[str] | None = None
    ) -> dict[str, dict[str, str | None]]:
        """Every field with a desired value the CRM does not hold yet (of these records)."""
        query = sa.select(
            field_values_table.c.record_id, field_values_table.c.key, field_values_table.c.desired
        ).where(
            field_values_table.c.record == record.value,
            field_values_table.c.has_desired.is_(True),
            field_values_table.c.crm.is_distinct_from(field_values_table.c.desired),
        )
        queries = (
            [query]
            if record_ids is None
            else [
                query.where(field_values_table.c.record_id.in_(c))
                for c in chunks(sorted(record_ids))
            ]
        )
        result: dict[str, dict[str, str | None]] = {}
        with self._db.reading() as connection:
            for one in queries:
                for record_id, key, desired in connection.execute(one):
                    result.setdefault(record_id, {})[key] = desired
        return result

    def set_desired(self, record: RecordKind, values: Values) -> None:
        rows = [
            {
                "record": record.value,
                "record_id": rid,
                "key": key,
                "crm": None,
                "desired": value,
                "has_desired": True,
            }
            for rid, key, value in values
        ]
        with self._db.transaction() as connection:
            self._db.upsert(connection, field_values_table, rows, ["desired", "has_desired"])

    def forget(self, record: RecordKind, record_ids: Collection[str]) -> None:
        """Nothing more to write to these records (deleted in the CRM: a write would fail
        for ever); what they held is forgotten with them."""
        t = field_values_table
        with self._db.transaction() as connection:
            for chunk in chunks(sorted(record_ids)):
                connection.execute(
                    t.delete().where(t.c.record == record.value, t.c.record_id.in_(chunk))
                )

    def desired_changes(
        self, record: RecordKind, values: Mapping[str, Mapping[str, str | None]]
    ) -> list[tuple[str, str, str | None]]:
        """The desired values that differ from (or are not yet) what the store wants."""
        t = field_values_table
        now: dict[tuple[str, str], str | None] = {}
        with self._db.reading() as connection:
            for chunk in chunks(sorted(values)):
                query = sa.select(t.c.record_id, t.c.key, t.c.desired).where(
                    t.c.record == record.value, t.c.record_id.in_(chunk), t.c.has_desired.is_(True)
                )
                for rid, key, value in connection.execute(query):
                    now[rid, key] = value
        return [
            (rid, key, value)
            for rid, row in values.items()
            for key, value in row.items()
            if (rid, key) not in now or now[rid, key] != value
        ]
