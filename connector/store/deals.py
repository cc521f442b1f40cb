"""Deals as last read from the CRM (snapshots) and their splits."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from connector.core.models import DealSnapshot, DealStatus, Outcome
from connector.store.db import Database, chunks, iso
from connector.store.schema import deals_table, splits_table

Splits = Mapping[str, Sequence[tuple[str, Decimal]]]  # deal id -> (rep id, percent)


class Deals:
    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(self, snapshots: Iterable[DealSnapshot]) -> None:
        rows = [_deal_row(snapshot) for snapshot in snapshots]
        columns = [c.name for c in deals_table.columns if c.name != "id"]
        with self._db.transaction() as connection:
            self._db.upsert(connection, deals_table, rows, columns)

    def by_id(self, ids: Collection[str]) -> dict[str, DealSnapshot]:
        found: dict[str, DealSnapshot] = {}
        with self._db.reading() as connection:
            for chunk in chunks(sorted(ids)):
                for row in connection.execute(
                    sa.select(deals_table).where(deals_table.c.id.in_(chunk))
                ):
                    found[row.id] = _snapshot(row)
        return found

    def for_reps(self, rep_ids: Collection[str]) -> list[DealSnapshot]:
        """Deals owned by, or split with, any of ``rep_ids``."""
        found: dict[str, DealSnapshot] = {}
        with self._db.reading() as connection:
            for chunk in chunks(sorted(rep_ids)):
                split_deals = sa.select(splits_table.c.deal_id).where(
                    splits_table.c.rep_id.in_(chunk)
                )
                query = sa.select(deals_table).where(
                    sa.or_(deals_table.c.owner_id.in_(chunk), deals_table.c.id.in_(split_deals))
                )
                for row in connection.execute(query):
                    found[row.id] = _snapshot(row)
        return [found[deal_id] for deal_id in sorted(found)]

    def replace_splits(self, splits_by_deal: Splits) -> None:
        """These deals' splits as just read, in place of what was stored for them."""
        deal_ids = sorted(splits_by_deal)
        rows = [
            {"deal_id": deal_id, "rep_id": rep_id, "percent": str(percent)}
            for deal_id in deal_ids
            for rep_id, percent in splits_by_deal[deal_id]
        ]
        with self._db.transaction() as connection:
            for chunk in chunks(deal_ids):
                connection.execute(splits_table.delete().where(splits_table.c.deal_id.in_(chunk)))
            self._db.insert_all(connection, splits_table, rows)

    def splits(
        self, deal_ids: Collection[str] | None = None
    ) -> dict[str, list[tuple[str, Decimal]]]:
        """The stored splits of these deals (of every deal when None), by rep id."""
        result: dict[str, list[tuple[str, Decimal]]] = {}
        with self._db.reading() as connection:
            queries = (
                [sa.select(splits_table)]
                if deal_ids is None
                else [
                    sa.select(splits_table).where(splits_table.c.deal_id.in_(chunk))
                    for chunk in chunks(sorted(deal_ids))
                ]
            )
            for query in queries:
                for row in connection.execute(query.order_by(splits_table.c.rep_id)):
                    result.setdefault(row.deal_id, []).append((row.rep_id, Decimal(row.percent)))
        return result


def _deal_row(snapshot: DealSnapshot) -> dict[str, Any]:
    return {
        "id": snapshot.id,
        "owner_id": snapshot.owner_id,
        "amount": None if snapshot.amount is None else str(snapshot.amount),
        "currency": snapshot.currency,
        "close_date": snapshot.close_date,
        "outcome": snapshot.outcome.value,
        "status": snapshot.status.value,
        "first_won_on": snapshot.first_won_on,
        "cancel_date": snapshot.cancel_date,
        "type": snapshot.type,
        "name": snapshot.name,
        "properties": json.dumps(dict(snapshot.properties), sort_keys=True),
        "modified_at": iso(snapshot.modified_at),
        "deleted": snapshot.deleted,
        "created_date": snapshot.created_date,
    }


def _snapshot(row: Any) -> DealSnapshot:
    return DealSnapshot(
        id=row.id,
        owner_id=row.owner_id,
        amount=None if row.amount is None else Decimal(row.amount),
        currency=row.currency,
        close_date=row.close_date,
        outcome=Outcome(row.outcome),
        status=DealStatus(row.status),
        first_won_on=row.first_won_on,
        cancel_date=row.cancel_date,
        type=row.type,
        name=row.name or "",
        properties=json.loads(row.properties or "{}"),
        modified_at=datetime.fromisoformat(row.modified_at),
        deleted=bool(row.deleted),
        created_date=row.created_date,
    )
