"""Cursors (where the last read stopped, whose account this is) and the CRM metadata cache."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connector.errors import StoreError
from connector.store.db import Database, iso
from connector.store.schema import STATE_TABLES, cursors_table, metadata_table

# The cursors' names, each used by more than one module.
ACCOUNT_CURSOR = "crm_account"
USERS_FETCHED_CURSOR = "users_fetched_at"
DEALS_CURSOR = "deals_modified"
AS_OF_PERIOD_CURSOR = "as_of_period"
AS_OF_DATE_CURSOR = "as_of_date"
# A fingerprint of the plans as last computed: an edited spm.yaml recomputes everyone.
RULES_CURSOR = "rules"


class Cursors:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, name: str) -> str | None:
        with self._db.reading() as connection:
            value = connection.execute(
                sa.select(cursors_table.c.value).where(cursors_table.c.name == name)
            ).scalar_one_or_none()
        return value

    def time(self, name: str) -> datetime | None:
        """A cursor holding a timestamp; a damaged one is a plain error, not a traceback."""
        text = self.get(name)
        if text is None:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise StoreError(
                f"store {self._db.url_for_display}: the cursor {name} is damaged ({text[:40]!r} "
                "is not a timestamp); run `spm-connector sync --full` to read everything again"
            )
        return moment

    def set(self, name: str, value: str) -> None:
        with self._db.transaction() as connection:
            self._db.upsert(connection, cursors_table, [{"name": name, "value": value}], ["value"])

    def bind_account(self, account: str, *, rebuild: bool = False) -> bool:
        """Tie the store to one CRM account; True when it was just rebuilt or new.

        A store opened against another account is refused: its deals, values and
        cursors describe records that do not exist there.
        """
        recorded = self.get(ACCOUNT_CURSOR)
        if recorded == account and not rebuild:
            return False
        if recorded is not None and recorded != account and not rebuild:
            raise StoreError(
                f"store {self._db.url_for_display} belongs to CRM account {recorded}, but the "
                f"CRM configured now is account {account}. Use a new store for this account "
                "(set `store:` or SPM_STORE_URL), or run `spm-connector sync --rebuild` to "
                "forget the old account's state and sync this one in full"
            )
        with self._db.transaction() as connection:
            if rebuild:
                for table in STATE_TABLES:
                    connection.execute(table.delete())
            self._db.upsert(
                connection, cursors_table, [{"name": ACCOUNT_CURSOR, "value": account}], ["value"]
            )
        return True


class MetadataStore:
    """The adapters' metadata cache (:class:`connector.adapters.base.MetadataCache`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def metadata(self, name: str) -> tuple[Any, datetime] | None:
        with self._db.reading() as connection:
            row = connection.execute(
                sa.select(metadata_table).where(metadata_table.c.name == name)
            ).one_or_none()
        if row is None:
            return None
        try:
            return json.loads(row.value), datetime.fromisoformat(row.fetched_at)
        except (TypeError, ValueError):
            return None  # damaged: fetched again

    def set_metadata(self, name: str, value: Any, fetched_at: datetime) -> None:
        row = {"name": name, "value": json.dumps(value), "fetched_at": iso(fetched_at)}
        with self._db.transaction() as connection:
            self._db.upsert(connection, metadata_table, [row], ["value", "fetched_at"])
