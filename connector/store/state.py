"""The state store: what the connector remembers between runs (SQLAlchemy 2 Core).

SQLite by default, PostgreSQL (or any SQLAlchemy URL) for production. Money is
kept as decimal *text* so it round-trips exactly on every backend; timestamps
as ISO 8601 text in UTC. The schema is managed by Alembic migrations shipped in
the package (``connector/store/migrations``); opening a store costs one version
check, and migrations run only when the store is behind, under a lock so that
two processes opening a new store at once do not collide.

Crash consistency: each step of a run commits what it did together with what
it still owes (the ``owed`` table: reps to recompute, deals whose splits to
read), so a run killed at any point leaves exactly the work the next run must
finish. Desired CRM values are committed before they are written, so a value
not yet written is still pending for the next run.

Every database failure reaches the user as one :class:`StoreError` (exit 2) or
:class:`StoreBusyError` (exit 4) saying what is wrong and what to do, never as
SQL text with data in it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from connector.core.fields import RecordKind
from connector.core.models import (
    CrmQuota,
    CrmUser,
    DealSnapshot,
    DealStatus,
    GoalResult,
    Lead,
    Line,
    LineKind,
    Outcome,
    Statement,
)
from connector.errors import ConfigError, StoreBusyError, StoreError, SyncLockedError

_MIGRATIONS = Path(__file__).with_name("migrations")
_CHUNK = 500  # ids per IN (...) clause, under SQLite's variable limit
_MIGRATION_LOCK = 0x53504D  # PostgreSQL advisory lock key while migrating ("SPM")
SQLITE_BUSY_S = 10  # how long a SQLite writer waits for another process
ACCOUNT_CURSOR = "crm_account"
USERS_FETCHED_CURSOR = "users_fetched_at"
OWED_REP, OWED_SPLITS = "rep", "splits"

_meta = sa.MetaData()
users_table = sa.Table(
    "users",
    _meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("active", sa.Boolean),
    sa.Column("manager_id", sa.String(64)),
    sa.Column("record_id", sa.String(64)),
    sa.Column("team_id", sa.String(64)),
)
deals_table = sa.Table(
    "deals",
    _meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner_id", sa.String(64)),
    sa.Column("amount", sa.Text),
    sa.Column("currency", sa.String(8)),
    sa.Column("close_date", sa.Date),
    sa.Column("outcome", sa.String(8)),
    sa.Column("status", sa.String(12)),
    sa.Column("first_won_on", sa.Date),
    sa.Column("cancel_date", sa.Date),
    sa.Column("type", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("properties", sa.Text),
    sa.Column("modified_at", sa.String(32)),
    sa.Column("deleted", sa.Boolean),
    sa.Column("created_date", sa.Date),
)
splits_table = sa.Table(
    "splits",
    _meta,
    sa.Column("deal_id", sa.String(64), primary_key=True),
    sa.Column("rep_id", sa.String(64), primary_key=True),
    sa.Column("percent", sa.Text),
)
statements_table = sa.Table(
    "statements",
    _meta,
    sa.Column("rep_id", sa.String(64), primary_key=True),
    sa.Column("plan_id", sa.String(128), primary_key=True),
    sa.Column("period", sa.String(10), primary_key=True),
    sa.Column("body", sa.Text),
)
fields_table = sa.Table(
    "field_values",
    _meta,
    sa.Column("record", sa.String(8), primary_key=True),
    sa.Column("record_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("crm", sa.Text),
    sa.Column("desired", sa.Text),
    sa.Column("has_desired", sa.Boolean),
)
cursors_table = sa.Table(
    "cursors",
    _meta,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text),
)
runs_table = sa.Table(
    "sync_runs",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16)),
    sa.Column("started_at", sa.String(32)),
    sa.Column("finished_at", sa.String(32)),
    sa.Column("status", sa.String(16)),
    sa.Column("options", sa.Text),
    sa.Column("summary", sa.Text),
    sa.Column("holder", sa.Text),
)
lock_table = sa.Table(
    "sync_lock",
    _meta,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("holder", sa.Text),
    sa.Column("acquired_at", sa.String(32)),
    sa.Column("expires_at", sa.String(32)),
)
owed_table = sa.Table(
    "owed",
    _meta,
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
)
metadata_table = sa.Table(
    "metadata",
    _meta,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text),
    sa.Column("fetched_at", sa.String(32)),
)
team_history_table = sa.Table(
    "team_history",
    _meta,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("since", sa.String(10), primary_key=True),  # "" for since ever
    sa.Column("manager_id", sa.String(64)),
    sa.Column("team_id", sa.String(64)),
)
quotas_table = sa.Table(
    "crm_quotas",
    _meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("rep_id", sa.String(64)),
    sa.Column("start_date", sa.Date),
    sa.Column("amount", sa.Text),
    sa.Column("quantity", sa.Text),
)
leads_table = sa.Table(
    "leads",
    _meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner_id", sa.String(64)),
    sa.Column("created_date", sa.Date),
    sa.Column("converted", sa.Boolean),
)
# What a rebuild forgets: everything learnt from one CRM account.
_STATE_TABLES = (
    team_history_table,
    quotas_table,
    leads_table,
    users_table,
    deals_table,
    splits_table,
    statements_table,
    fields_table,
    cursors_table,
    owed_table,
    metadata_table,
)


@dataclass(frozen=True)
class FieldState:
    crm: str | None  # what the CRM holds, as far as we know
    desired: str | None  # what we want there


@dataclass(frozen=True)
class RunRecord:
    id: int
    kind: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    options: Mapping[str, Any]
    summary: Mapping[str, Any]


def this_process() -> str:
    """How a lock holder or a run names this process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("timestamps in the store must carry a time zone")
    return moment.astimezone(UTC).isoformat()


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- plain errors ------------------------------------------------------------------------


def _reason(error: BaseException, password: str | None) -> str:
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    text = text or type(original).__name__
    if password:
        text = text.replace(password, "***")
    return text


def plain_store_error(error: BaseException, shown: str, password: str | None) -> Exception:
    """A database failure as one message that says what is wrong and what to do."""
    reason = _reason(error, password)
    lowered = reason.lower()
    if "database is locked" in lowered or "database table is locked" in lowered:
        return StoreBusyError(
            f"store {shown} is busy: another process has kept it locked for more than "
            f"{SQLITE_BUSY_S} s; try again when it is done"
        )
    if "file is not a database" in lowered or "malformed" in lowered:
        return StoreError(
            f"store {shown} is not an spm-connector store, or it is damaged ({reason}). "
            "Point `store:` (or SPM_STORE_URL) at another file, or restore it from a backup"
        )
    if "no such table" in lowered or "no such column" in lowered or "does not exist" in lowered:
        return StoreError(
            f"store {shown} is damaged ({reason}): restore it from a backup, or start it "
            "afresh with `spm-connector sync --rebuild`"
        )
    if "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
        return StoreError(
            f"store {shown} cannot be opened for writing ({reason}): check that the folder "
            "exists and that this user may write there"
        )
    if "connection" in lowered or "connect" in lowered or "authentication" in lowered:
        return StoreError(
            f"store {shown}: cannot open it ({reason}); check that the database server is up "
            "and the URL in `store:` (or SPM_STORE_URL)"
        )
    return StoreError(f"store {shown}: {reason}")


@cache
def _scripts() -> ScriptDirectory:
    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(config)


class Store:
    def __init__(
        self, engine: Engine, url_for_display: str, sqlite_path: Path | None = None
    ) -> None:
        self._engine = engine
        self.url_for_display = url_for_display
        self._gate = _write_gate(sqlite_path)
        # While a dry run lasts: the one connection whose transaction is rolled back.
        self._held: Connection | None = None

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, checkpoints: bool = True) -> Store:
        """Open (and migrate) the store at ``url``.

        ``checkpoints=False`` (SQLite only): this process's commits never fold the
        write-ahead log back into the database file. The webhook receiver opens its
        store so, and an acknowledgement never waits for that fsync; the worker's and
        the sync's commits do it instead.
        """
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(f"store: {url!r} is not a database URL") from None
        shown = parsed.render_as_string(hide_password=True)
        password = parsed.password if isinstance(parsed.password, str) else None
        try:
            engine = sa.create_engine(parsed, future=True)
        except (ArgumentError, ImportError, SQLAlchemyError) as error:
            raise ConfigError(f"store: cannot use {shown} ({type(error).__name__})") from None
        sqlite_path: Path | None = None
        if engine.dialect.name == "sqlite":
            sa.event.listen(
                engine, "connect", _sqlite_pragmas if checkpoints else _sqlite_pragmas_no_checkpoint
            )
            if parsed.database and parsed.database != ":memory:":
                sqlite_path = Path(parsed.database)
                _create_private(sqlite_path, shown)

        def plain(context: Any) -> None:
            if isinstance(context.sqlalchemy_exception, IntegrityError):
                return  # ours to handle (the lock); anything else is a bug worth a traceback
            raise plain_store_error(context.original_exception, shown, password) from None

        sa.event.listen(engine, "handle_error", plain)
        store = cls(engine, shown, sqlite_path)
        try:
            store._upgrade_if_behind(sqlite_path)
        except SQLAlchemyError as error:
            raise plain_store_error(error, shown, password) from None
        return store

    def _current_revision(self, connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    def _upgrade_if_behind(self, sqlite_path: Path | None) -> None:
        scripts = _scripts()
        head = scripts.get_current_head()
        with self._engine.connect() as connection:
            current = self._current_revision(connection)
        if current == head:
            return
        known = {revision.revision for revision in scripts.walk_revisions()}
        if current is not None and current not in known:
            raise StoreError(
                f"store {self.url_for_display} was written by a newer spm-connector (schema "
                f"{current}; this one knows up to {head}): upgrade spm-connector, or point "
                "`store:` at another database"
            )
        with self._migration_lock(sqlite_path) as connection:
            if self._current_revision(connection) == head:
                return  # another process migrated while we waited
            config = AlembicConfig()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()

    @contextmanager
    def _migration_lock(self, sqlite_path: Path | None) -> Iterator[Connection]:
        """Hold the one right to migrate: an advisory lock (PostgreSQL) or a file lock (SQLite)."""
        with self._engine.connect() as connection:
            if self._engine.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
                connection.commit()
                try:
                    yield connection
                finally:
                    connection.rollback()
                    connection.execute(
                        sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK}
                    )
                    connection.commit()
            elif sqlite_path is not None:
                with open(sqlite_path, "rb") as handle:
                    # flock is apart from SQLite's own fcntl locks on the same file.
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                    try:
                        yield connection
                    finally:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            else:
                yield connection

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def scratch(self) -> Iterator[Store]:
        """This store as one transaction that is rolled back: every change is forgotten.

        A dry run goes through exactly the path of a real run on this, so it
        reports exactly what the real run would do, and leaves no trace. While
        it lasts, everything that uses this store (the adapters' metadata cache
        too) goes through that one transaction, so nothing waits on its locks.
        """
        if self._held is not None:
            raise RuntimeError("a scratch store is open already")
        with self._engine.connect() as connection:
            transaction = connection.begin()
            self._held = connection
            try:
                yield self
            finally:
                self._held = None
                transaction.rollback()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back on any error."""
        if self._held is not None:
            yield self._held  # the scratch transaction: rolled back as a whole at its end
            return
        with self._gate, self._engine.begin() as connection:
            yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        if self._held is not None:
            yield self._held
            return
        with self._engine.connect() as connection:
            yield connection

    # For the store's other tables' modules (the inbox): the same transactions and gate.
    def transaction(self) -> contextlib.AbstractContextManager[Connection]:
        """One write transaction (committed on success), as the store's own writes use."""
        return self._tx()

    def reading(self) -> contextlib.AbstractContextManager[Connection]:
        return self._read()

    def insert(self, table: sa.Table) -> Any:
        """An INSERT that knows this database's ON CONFLICT (PostgreSQL or SQLite)."""
        return self._insert(table)

    def _insert(self, table: sa.Table) -> Any:
        if self._engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    def _upsert(
        self,
        connection: Connection,
        table: sa.Table,
        rows: list[dict[str, Any]],
        update: Sequence[str],
    ) -> None:
        if not rows:
            return
        keys = [column.name for column in table.primary_key.columns]
        statement = self._insert(table)
        if update:
            statement = statement.on_conflict_do_update(
                index_elements=keys, set_={name: statement.excluded[name] for name in update}
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=keys)
        for start in range(0, len(rows), _CHUNK):
            connection.execute(statement, rows[start : start + _CHUNK])

    # -- whose store ----------------------------------------------------------------------

    def bind_account(self, account: str, *, rebuild: bool = False) -> bool:
        """Tie the store to one CRM account; True when it was just rebuilt or new.

        A store opened against another account is refused: its deals, values and
        cursors describe records that do not exist there.
        """
        recorded = self.cursor(ACCOUNT_CURSOR)
        if recorded == account and not rebuild:
            return False
        if recorded is not None and recorded != account and not rebuild:
            raise StoreError(
                f"store {self.url_for_display} belongs to CRM account {recorded}, but the CRM "
                f"configured now is account {account}. Use a new store for this account "
                "(set `store:` or SPM_STORE_URL), or run `spm-connector sync --rebuild` to "
                "forget the old account's state and sync this one in full"
            )
        with self._tx() as connection:
            if rebuild:
                for table in _STATE_TABLES:
                    connection.execute(table.delete())
            self._upsert(
                connection, cursors_table, [{"name": ACCOUNT_CURSOR, "value": account}], ["value"]
            )
        return True

    # -- two syncs at once -----------------------------------------------------------------

    @contextmanager
    def sync_lock(
        self,
        holder: str,
        clock: Callable[[], datetime],
        *,
        lease: timedelta = timedelta(minutes=2),
        wait_s: float = 0.0,
    ) -> Iterator[None]:
        """Hold the one sync lock, as a lease renewed while the holder works.

        A second holder gets :class:`SyncLockedError` (after waiting up to
        ``wait_s``). A holder that died stops blocking when its lease runs out,
        or at once when it was a process on this host that no longer exists.
        """
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self._take_lock(holder, clock(), lease)
                break
            except SyncLockedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew,
            args=(holder, clock, lease, stop),
            name="spm-lock-lease",
            daemon=True,
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            with self._gate, self._engine.begin() as connection:
                connection.execute(
                    lock_table.delete().where(
                        lock_table.c.name == "sync", lock_table.c.holder == holder
                    )
                )

    def _take_lock(self, holder: str, now: datetime, lease: timedelta) -> None:
        values = {"holder": holder, "acquired_at": _iso(now), "expires_at": _iso(now + lease)}
        try:
            with self._gate, self._engine.begin() as connection:
                row = connection.execute(
                    sa.select(lock_table).where(lock_table.c.name == "sync")
                ).one_or_none()
                if row is None:
                    connection.execute(lock_table.insert().values(name="sync", **values))
                    return
                expires = datetime.fromisoformat(row.expires_at) if row.expires_at else None
                alive = may_be_alive(row.holder)
                if row.holder != holder and alive and (expires is None or expires > now):
                    since = datetime.fromisoformat(row.acquired_at)
                    raise SyncLockedError(
                        f"another sync ({row.holder}) has held store {self.url_for_display} "
                        f"since {since:%Y-%m-%d %H:%M:%S} UTC; try again when it is done "
                        "(a holder that died stops blocking within 2 minutes)"
                    )
                connection.execute(
                    lock_table.update()
                    .where(lock_table.c.name == "sync", lock_table.c.holder == row.holder)
                    .values(**values)
                )
        except IntegrityError:
            raise SyncLockedError(
                f"another sync took store {self.url_for_display} at the same moment; "
                "try again when it is done"
            ) from None

    def _renew(
        self, holder: str, clock: Callable[[], datetime], lease: timedelta, stop: threading.Event
    ) -> None:
        while not stop.wait(lease.total_seconds() / 4):
            # A renewal that fails now is tried again in a quarter lease.
            with (
                contextlib.suppress(StoreError, StoreBusyError, SQLAlchemyError),
                self._gate,
                self._engine.begin() as connection,
            ):
                connection.execute(
                    lock_table.update()
                    .where(lock_table.c.name == "sync", lock_table.c.holder == holder)
                    .values(expires_at=_iso(clock() + lease))
                )

    # -- run log -------------------------------------------------------------------------

    def start_run(
        self, kind: str, started_at: datetime, options: Mapping[str, Any], holder: str = ""
    ) -> int:
        with self._tx() as connection:
            result = connection.execute(
                runs_table.insert().values(
                    kind=kind,
                    started_at=_iso(started_at),
                    status="running",
                    options=json.dumps(options, sort_keys=True),
                    summary="{}",
                    holder=holder or this_process(),
                )
            )
            key = result.inserted_primary_key
            assert key is not None  # an insert into a table with an integer key
            return int(key[0])

    def finish_run(
        self, run_id: int, finished_at: datetime, status: str, summary: Mapping[str, Any]
    ) -> None:
        with self._tx() as connection:
            connection.execute(
                runs_table.update()
                .where(runs_table.c.id == run_id)
                .values(
                    finished_at=_iso(finished_at),
                    status=status,
                    summary=json.dumps(summary, sort_keys=True, default=str),
                )
            )

    def close_interrupted_runs(self, now: datetime) -> int:
        """Runs still marked running when we hold the lock died: close them as interrupted.

        Called by the lock's holder only, so no live run is among them. Each is
        closed with what it left owed, which the caller is about to finish.
        """
        with self._read() as connection:
            dead = connection.execute(
                sa.select(sa.func.count()).where(runs_table.c.status == "running")
            ).scalar_one()
        if not dead:
            return 0  # the usual case: skip counting what is owed
        owed = {kind: len(ids) for kind, ids in self.owed_all().items()}
        left = {
            "reps_owed": owed.get(OWED_REP, 0),
            "splits_owed": owed.get(OWED_SPLITS, 0),
            "fields_pending": sum(
                len(values) for record in RecordKind for values in self.pending(record).values()
            ),
        }
        with self._tx() as connection:
            result = connection.execute(
                runs_table.update()
                .where(runs_table.c.status == "running")
                .values(
                    finished_at=_iso(now),
                    status="interrupted",
                    summary=json.dumps({"left_owed": left}, sort_keys=True),
                )
            )
            return int(result.rowcount or 0)

    def forget_runs(self, kind: str, before: datetime) -> int:
        """Delete finished runs of ``kind`` started before ``before`` (the worker's many)."""
        with self._tx() as connection:
            result = connection.execute(
                runs_table.delete().where(
                    runs_table.c.kind == kind,
                    runs_table.c.status != "running",
                    runs_table.c.started_at < _iso(before),
                )
            )
            return int(result.rowcount or 0)

    def runs(self, limit: int = 20, kind: str | None = None) -> list[RunRecord]:
        query = sa.select(runs_table).order_by(runs_table.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(runs_table.c.kind == kind)
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [
            RunRecord(
                id=row.id,
                kind=row.kind,
                started_at=datetime.fromisoformat(row.started_at),
                finished_at=datetime.fromisoformat(row.finished_at) if row.finished_at else None,
                status=row.status,
                options=json.loads(row.options),
                summary=json.loads(row.summary),
            )
            for row in rows
        ]

    # -- cursors -------------------------------------------------------------------------

    def cursor(self, name: str) -> str | None:
        with self._read() as connection:
            value = connection.execute(
                sa.select(cursors_table.c.value).where(cursors_table.c.name == name)
            ).scalar_one_or_none()
        return value

    def cursor_time(self, name: str) -> datetime | None:
        """A cursor holding a timestamp; a damaged one is a plain error, not a traceback."""
        text = self.cursor(name)
        if text is None:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise StoreError(
                f"store {self.url_for_display}: the cursor {name} is damaged ({text[:40]!r} is "
                "not a timestamp); run `spm-connector sync --full` to read everything again"
            )
        return moment

    def set_cursor(self, name: str, value: str) -> None:
        with self._tx() as connection:
            self._upsert(connection, cursors_table, [{"name": name, "value": value}], ["value"])

    # -- metadata cache (adapters.base.MetadataCache) ----------------------------------------

    def metadata(self, name: str) -> tuple[Any, datetime] | None:
        with self._read() as connection:
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
        row = {"name": name, "value": json.dumps(value), "fetched_at": _iso(fetched_at)}
        with self._tx() as connection:
            self._upsert(connection, metadata_table, [row], ["value", "fetched_at"])

    # -- users ---------------------------------------------------------------------------

    def upsert_users(
        self,
        users: Iterable[CrmUser],
        fetched_at: datetime | None = None,
        seen_on: date | None = None,
    ) -> None:
        """Users as read; with ``seen_on``, a manager or team that changed is recorded
        in the team history from that day (a user seen for the first time: since ever)."""
        users = list(users)
        rows = [
            {
                "id": u.id,
                "name": u.name,
                "email": u.email,
                "active": u.active,
                "manager_id": u.manager_id,
                "record_id": u.record_id,
                "team_id": u.team_id,
            }
            for u in users
        ]
        columns = ["name", "email", "active", "manager_id", "record_id", "team_id"]
        moves = []
        history = self.team_history() if seen_on is not None else {}
        for user in users:
            if seen_on is None:
                break
            past = history.get(user.id)
            if past and (past[-1][1], past[-1][2]) == (user.manager_id, user.team_id):
                continue
            since = "" if not past else seen_on.isoformat()
            moves.append(
                {
                    "user_id": user.id,
                    "since": since,
                    "manager_id": user.manager_id,
                    "team_id": user.team_id,
                }
            )
        with self._tx() as connection:
            self._upsert(connection, users_table, rows, columns)
            self._upsert(connection, team_history_table, moves, ["manager_id", "team_id"])
            if fetched_at is not None:
                self._upsert(
                    connection,
                    cursors_table,
                    [{"name": USERS_FETCHED_CURSOR, "value": _iso(fetched_at)}],
                    ["value"],
                )

    def users(self) -> list[CrmUser]:
        with self._read() as connection:
            rows = connection.execute(sa.select(users_table).order_by(users_table.c.id)).all()
        return [
            CrmUser(
                id=r.id,
                name=r.name or "",
                email=r.email or "",
                active=bool(r.active),
                manager_id=r.manager_id,
                record_id=r.record_id,
                team_id=r.team_id,
            )
            for r in rows
        ]

    def team_history(self) -> dict[str, list[tuple[date | None, str | None, str | None]]]:
        """Per user, (since, manager_id, team_id) in order; since None: since ever."""
        history: dict[str, list[tuple[date | None, str | None, str | None]]] = {}
        t = team_history_table
        with self._read() as connection:
            for row in connection.execute(sa.select(t).order_by(t.c.user_id, t.c.since)):
                since = date.fromisoformat(row.since) if row.since else None
                history.setdefault(row.user_id, []).append((since, row.manager_id, row.team_id))
        return history

    # -- quotas and leads -------------------------------------------------------------------

    def replace_quotas(self, quotas: Iterable[CrmQuota]) -> None:
        """The CRM's quotas as just read, in place of the last read's."""
        rows = [
            {
                "id": f"{number}",
                "rep_id": quota.rep_id,
                "start_date": quota.start_date,
                "amount": _text(quota.amount),
                "quantity": _text(quota.quantity),
            }
            for number, quota in enumerate(quotas)
        ]
        with self._tx() as connection:
            connection.execute(quotas_table.delete())
            for start in range(0, len(rows), _CHUNK):
                connection.execute(quotas_table.insert(), rows[start : start + _CHUNK])

    def crm_quotas(self, rep_ids: Collection[str] | None = None) -> list[CrmQuota]:
        """The stored CRM quotas (of ``rep_ids`` only, if given), by rep and start date."""
        t = quotas_table
        rows = self._rows_of(t, t.c.rep_id, rep_ids)
        rows.sort(key=lambda r: (r.rep_id, r.start_date, int(r.id)))
        return [
            CrmQuota(r.rep_id, r.start_date, _number(r.amount), _number(r.quantity)) for r in rows
        ]

    def _rows_of(
        self, table: sa.Table, column: sa.Column[Any], ids: Collection[str] | None
    ) -> list[Any]:
        """Every row of ``table``, or those whose ``column`` is one of ``ids``."""
        with self._read() as connection:
            if ids is None:
                return list(connection.execute(sa.select(table)))
            found: list[Any] = []
            for chunk in _chunks(sorted(ids)):
                found += connection.execute(sa.select(table).where(column.in_(chunk)))
            return found

    def replace_leads(self, leads: Iterable[Lead]) -> None:
        rows = [
            {
                "id": lead.id,
                "owner_id": lead.owner_id,
                "created_date": lead.created_date,
                "converted": lead.converted,
            }
            for lead in leads
        ]
        with self._tx() as connection:
            connection.execute(leads_table.delete())
            for start in range(0, len(rows), _CHUNK):
                connection.execute(leads_table.insert(), rows[start : start + _CHUNK])

    def leads(self, owner_ids: Collection[str] | None = None) -> list[Lead]:
        """The stored leads (of ``owner_ids`` only, if given), by id."""
        rows = self._rows_of(leads_table, leads_table.c.owner_id, owner_ids)
        rows.sort(key=lambda r: r.id)
        return [Lead(r.id, r.owner_id, r.created_date, bool(r.converted)) for r in rows]

    # -- deals -----------------------------------------------------------------------------

    def absorb(
        self,
        snapshots: Iterable[DealSnapshot],
        crm_values: Iterable[tuple[str, str, str | None]],
        owed: Mapping[str, Collection[str]],
    ) -> None:
        """Pulled deals, the values they hold, and the work they make owed: one commit."""
        rows = [_deal_row(snapshot) for snapshot in snapshots]
        columns = [c.name for c in deals_table.columns if c.name != "id"]
        with self._tx() as connection:
            self._upsert(connection, deals_table, rows, columns)
            self._set_crm_values(connection, RecordKind.DEAL, crm_values)
            for kind, ids in owed.items():
                self._owe(connection, kind, ids)

    def upsert_deals(self, snapshots: Iterable[DealSnapshot]) -> None:
        self.absorb(snapshots, (), {})

    def deal_snapshots(self, ids: Collection[str]) -> dict[str, DealSnapshot]:
        found: dict[str, DealSnapshot] = {}
        with self._read() as connection:
            for chunk in _chunks(sorted(ids)):
                for row in connection.execute(
                    sa.select(deals_table).where(deals_table.c.id.in_(chunk))
                ):
                    found[row.id] = _snapshot(row)
        return found

    def all_deals(self) -> list[DealSnapshot]:
        with self._read() as connection:
            rows = connection.execute(sa.select(deals_table).order_by(deals_table.c.id))
            return [_snapshot(row) for row in rows]

    def deals_for_reps(self, rep_ids: Collection[str]) -> list[DealSnapshot]:
        """Deals owned by, or split with, any of ``rep_ids``."""
        found: dict[str, DealSnapshot] = {}
        with self._read() as connection:
            for chunk in _chunks(sorted(rep_ids)):
                split_deals = sa.select(splits_table.c.deal_id).where(
                    splits_table.c.rep_id.in_(chunk)
                )
                query = sa.select(deals_table).where(
                    sa.or_(deals_table.c.owner_id.in_(chunk), deals_table.c.id.in_(split_deals))
                )
                for row in connection.execute(query):
                    found[row.id] = _snapshot(row)
        return [found[deal_id] for deal_id in sorted(found)]

    # -- splits ----------------------------------------------------------------------------

    def settle_splits(
        self,
        splits_by_deal: Mapping[str, Sequence[tuple[str, Decimal]]],
        owed_reps: Collection[str],
    ) -> None:
        """Replace these deals' splits, owe their reps, and mark the split reads done."""
        deal_ids = sorted(splits_by_deal)
        rows = [
            {"deal_id": deal_id, "rep_id": rep_id, "percent": str(percent)}
            for deal_id in deal_ids
            for rep_id, percent in splits_by_deal[deal_id]
        ]
        with self._tx() as connection:
            for chunk in _chunks(deal_ids):
                connection.execute(splits_table.delete().where(splits_table.c.deal_id.in_(chunk)))
                connection.execute(
                    owed_table.delete().where(
                        owed_table.c.kind == OWED_SPLITS, owed_table.c.id.in_(chunk)
                    )
                )
            for start in range(0, len(rows), _CHUNK):
                connection.execute(splits_table.insert(), rows[start : start + _CHUNK])
            self._owe(connection, OWED_REP, owed_reps)

    def replace_splits(self, splits_by_deal: Mapping[str, Sequence[tuple[str, Decimal]]]) -> None:
        self.settle_splits(splits_by_deal, ())

    def splits_for(
        self, deal_ids: Collection[str] | None = None
    ) -> dict[str, list[tuple[str, Decimal]]]:
        result: dict[str, list[tuple[str, Decimal]]] = {}
        with self._read() as connection:
            queries = (
                [sa.select(splits_table)]
                if deal_ids is None
                else [
                    sa.select(splits_table).where(splits_table.c.deal_id.in_(chunk))
                    for chunk in _chunks(sorted(deal_ids))
                ]
            )
            for query in queries:
                for row in connection.execute(query.order_by(splits_table.c.rep_id)):
                    result.setdefault(row.deal_id, []).append((row.rep_id, Decimal(row.percent)))
        return result

    # -- owed work -------------------------------------------------------------------------

    def _owe(self, connection: Connection, kind: str, ids: Collection[str]) -> None:
        rows = [{"kind": kind, "id": item} for item in sorted(set(ids)) if item]
        self._upsert(connection, owed_table, rows, [])

    def owe(self, kind: str, ids: Collection[str]) -> None:
        with self._tx() as connection:
            self._owe(connection, kind, ids)

    def owed(self, kind: str) -> set[str]:
        with self._read() as connection:
            return set(
                connection.execute(
                    sa.select(owed_table.c.id).where(owed_table.c.kind == kind)
                ).scalars()
            )

    def owed_all(self) -> dict[str, set[str]]:
        with self._read() as connection:
            result: dict[str, set[str]] = {}
            for kind, item in connection.execute(sa.select(owed_table.c.kind, owed_table.c.id)):
                result.setdefault(kind, set()).add(item)
            return result

    # -- statements ------------------------------------------------------------------------

    def commit_statements(
        self,
        rep_ids: Collection[str],
        statements: Sequence[Statement],
        desired: Mapping[RecordKind, Mapping[str, Mapping[str, str | None]]],
        paid: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        """The recomputed reps' statements and desired values, and their debt paid: one commit.

        ``rep_ids`` are the reps recomputed (their owed entries are paid); ``paid``
        names further owed work this commit completes, by kind.

        Only what changed is written: a rep recomputed because one deal moved keeps
        most of its statements and nearly all of its deals' values, and a short write
        transaction keeps the store free for the webhook receiver. The comparison is
        read before the transaction; the sync lock keeps other writers of these rows out.
        """
        bodies = {
            (s.rep_id, s.plan_id, s.period): json.dumps(_statement_json(s), separators=(",", ":"))
            for s in statements
        }
        stored = self._statement_bodies(rep_ids)
        stale = [key for key, body in stored.items() if bodies.get(key) != body]
        fresh = [
            {"rep_id": rep, "plan_id": plan, "period": period, "body": body}
            for (rep, plan, period), body in bodies.items()
            if stored.get((rep, plan, period)) != body
        ]
        changed = {
            record: self._desired_changes(record, values) for record, values in desired.items()
        }
        with self._tx() as connection:
            if stale:
                t = statements_table
                connection.execute(
                    t.delete().where(
                        t.c.rep_id == sa.bindparam("r"),
                        t.c.plan_id == sa.bindparam("p"),
                        t.c.period == sa.bindparam("d"),
                    ),
                    [{"r": rep, "p": plan, "d": period} for rep, plan, period in stale],
                )
            for chunk in _chunks(sorted(rep_ids)):
                connection.execute(
                    owed_table.delete().where(
                        owed_table.c.kind == OWED_REP, owed_table.c.id.in_(chunk)
                    )
                )
            for kind, ids in (paid or {}).items():
                for chunk in _chunks(sorted(ids)):
                    connection.execute(
                        owed_table.delete().where(
                            owed_table.c.kind == kind, owed_table.c.id.in_(chunk)
                        )
                    )
            for start in range(0, len(fresh), _CHUNK):
                connection.execute(statements_table.insert(), fresh[start : start + _CHUNK])
            for record, values in changed.items():
                self._set_desired(connection, record, values)

    def _statement_bodies(self, rep_ids: Collection[str]) -> dict[tuple[str, str, str], str]:
        t = statements_table
        found: dict[tuple[str, str, str], str] = {}
        with self._read() as connection:
            for chunk in _chunks(sorted(rep_ids)):
                query = sa.select(t.c.rep_id, t.c.plan_id, t.c.period, t.c.body).where(
                    t.c.rep_id.in_(chunk)
                )
                for rep, plan, period, body in connection.execute(query):
                    found[rep, plan, period] = body
        return found

    def _desired_changes(
        self, record: RecordKind, values: Mapping[str, Mapping[str, str | None]]
    ) -> list[tuple[str, str, str | None]]:
        """The desired values that differ from (or are not yet) what the store wants."""
        t = fields_table
        now: dict[tuple[str, str], str | None] = {}
        with self._read() as connection:
            for chunk in _chunks(sorted(values)):
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

    def save_statements(self, rep_ids: Collection[str], statements: Sequence[Statement]) -> None:
        self.commit_statements(rep_ids, statements, {})

    def statements_in(self, period: str) -> list[Statement]:
        """Every rep's statements of one period (the reports page's leaderboard)."""
        query = sa.select(statements_table.c.body).where(statements_table.c.period == period)
        with self._read() as connection:
            return [_statement(json.loads(body)) for body in connection.execute(query).scalars()]

    def payouts_by_period(self, year: str) -> dict[str, Decimal]:
        """The team's payout per period of ``year``: only that figure of each statement."""
        t = statements_table
        query = sa.select(t.c.period, t.c.body).where(t.c.period.like(f"{year}-%"))
        totals: dict[str, Decimal] = {}
        with self._read() as connection:
            for period, body in connection.execute(query):
                payout = Decimal(json.loads(body)["payout"])
                totals[period] = totals.get(period, Decimal(0)) + payout
        return totals

    def statements_for(self, rep_id: str, period: str | None = None) -> list[Statement]:
        query = sa.select(statements_table.c.body).where(statements_table.c.rep_id == rep_id)
        if period is not None:
            query = query.where(statements_table.c.period == period)
        query = query.order_by(statements_table.c.period, statements_table.c.plan_id)
        with self._read() as connection:
            return [_statement(json.loads(body)) for body in connection.execute(query).scalars()]

    # -- CRM field values ----------------------------------------------------------------------

    def field_states(
        self, record: RecordKind, record_ids: Collection[str] | None = None
    ) -> dict[tuple[str, str], FieldState]:
        base = sa.select(fields_table).where(fields_table.c.record == record.value)
        queries = (
            [base]
            if record_ids is None
            else [base.where(fields_table.c.record_id.in_(c)) for c in _chunks(sorted(record_ids))]
        )
        states: dict[tuple[str, str], FieldState] = {}
        with self._read() as connection:
            for query in queries:
                for row in connection.execute(query):
                    desired = row.desired if row.has_desired else None
                    states[row.record_id, row.key] = FieldState(row.crm, desired)
        return states

    def _set_crm_values(
        self,
        connection: Connection,
        record: RecordKind,
        values: Iterable[tuple[str, str, str | None]],
    ) -> None:
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
        self._upsert(connection, fields_table, rows, ["crm"])

    def set_crm_values(
        self, record: RecordKind, values: Iterable[tuple[str, str, str | None]]
    ) -> None:
        with self._tx() as connection:
            self._set_crm_values(connection, record, values)

    def _set_desired(
        self,
        connection: Connection,
        record: RecordKind,
        values: Iterable[tuple[str, str, str | None]],
    ) -> None:
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
        self._upsert(connection, fields_table, rows, ["desired", "has_desired"])

    def set_desired(
        self, record: RecordKind, values: Iterable[tuple[str, str, str | None]]
    ) -> None:
        with self._tx() as connection:
            self._set_desired(connection, record, values)

    def pending(
        self, record: RecordKind, record_ids: Collection[str] | None = None
    ) -> dict[str, dict[str, str | None]]:
        """Every field with a desired value the CRM does not hold yet (of these records)."""
        query = sa.select(
            fields_table.c.record_id, fields_table.c.key, fields_table.c.desired
        ).where(
            fields_table.c.record == record.value,
            fields_table.c.has_desired.is_(True),
            fields_table.c.crm.is_distinct_from(fields_table.c.desired),
        )
        queries = (
            [query]
            if record_ids is None
            else [query.where(fields_table.c.record_id.in_(c)) for c in _chunks(sorted(record_ids))]
        )
        result: dict[str, dict[str, str | None]] = {}
        with self._read() as connection:
            for one in queries:
                for record_id, key, desired in connection.execute(one):
                    result.setdefault(record_id, {})[key] = desired
        return result


_GATES: dict[Path, threading.RLock] = {}
_GATES_LOCK = threading.Lock()


def _write_gate(sqlite_path: Path | None) -> contextlib.AbstractContextManager[Any]:
    """One writer at a time per SQLite file within this process, handed over in turn.

    SQLite lets one writer in and makes the others poll, sleeping up to 100 ms
    between tries: a receiver thread acknowledging a webhook would sleep behind
    the worker's commit. Waiting on a lock instead wakes it the moment the
    commit is done. Other processes still meet SQLite's own busy wait; other
    databases lock rows themselves and need no gate.
    """
    if sqlite_path is None:
        return contextlib.nullcontext()
    key = sqlite_path.resolve()
    with _GATES_LOCK:
        return _GATES.setdefault(key, threading.RLock())


def may_be_alive(holder: str) -> bool:
    """False only when ``holder`` names a process on this host that no longer exists."""
    host, _, pid_text = holder.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _create_private(path: Path, shown: str) -> None:
    """Create a new SQLite file readable by its owner only: it holds names, emails and pay."""
    if path.exists():
        return
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as error:
        raise StoreError(
            f"store {shown} cannot be created ({error.strerror}): check that the folder "
            f"{path.parent} exists and that this user may write there"
        ) from None
    os.close(descriptor)


def _sqlite_pragmas(connection: Any, _record: Any, *, checkpoints: bool = True) -> None:
    cursor = connection.cursor()
    # WAL lets a reader (serve, statement) work while a sync writes; the busy
    # timeout makes a second writer wait instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_S * 1000}")
    if not checkpoints:
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _sqlite_pragmas_no_checkpoint(connection: Any, record: Any) -> None:
    _sqlite_pragmas(connection, record, checkpoints=False)


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
        "modified_at": _iso(snapshot.modified_at),
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


# Derived from the model, so a new Decimal field on Statement is stored without edits here.
_DECIMAL_FIELDS = tuple(f.name for f in fields(Statement) if "Decimal" in str(f.type))


def _text(value: Decimal | None) -> str | None:
    # str() keeps the exponent, so the round trip is exact down to repr.
    return None if value is None else str(value)


def _number(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _statement_json(statement: Statement) -> dict[str, Any]:
    body: dict[str, Any] = {
        "rep_id": statement.rep_id,
        "plan_id": statement.plan_id,
        "period": statement.period,
        "won_count": statement.won_count,
        "lost_count": statement.lost_count,
    }
    for name in _DECIMAL_FIELDS:
        body[name] = _text(getattr(statement, name))
    if statement.goals:
        body["goals"] = [
            [
                goal.goal_id,
                goal.metric,
                goal.team_id,
                _text(goal.target),
                str(goal.actual),
                _text(goal.attainment),
            ]
            for goal in statement.goals
        ]
    body["lines"] = [
        [
            line.kind.value,
            line.deal_id,
            str(line.amount),
            _text(line.rate),
            line.rule,
            line.paid_period,
            _text(line.credit),
        ]
        for line in statement.lines
    ]
    return body


def _statement(body: Mapping[str, Any]) -> Statement:
    # A body stored before a figure existed lacks it: the figure is empty until recomputed.
    values: dict[str, Any] = {name: _number(body.get(name)) for name in _DECIMAL_FIELDS}
    values["draw_advanced"] = values["draw_advanced"] or Decimal(0)
    lines = tuple(
        Line(LineKind(kind), deal_id, Decimal(amount), _number(rate), rule, paid, _number(credit))
        for kind, deal_id, amount, rate, rule, paid, credit in body["lines"]
    )
    return Statement(
        rep_id=body["rep_id"],
        plan_id=body["plan_id"],
        period=body["period"],
        won_count=body["won_count"],
        lost_count=body["lost_count"],
        lines=lines,
        goals=tuple(
            GoalResult(goal_id, metric, team, _number(target), Decimal(actual), _number(att))
            for goal_id, metric, team, target, actual, att in body.get("goals", ())
        ),
        **values,
    )
