"""The store's database: opening it, migrating it, and its transactions.

SQLite by default, PostgreSQL (or any SQLAlchemy URL) for production, through
SQLAlchemy 2 Core. The schema is managed by Alembic migrations shipped in the
package (``connector/store/migrations``, target :mod:`connector.store.schema`);
opening a store costs one version check, and migrations run only when the
store is behind, under a lock so that two processes opening a new store at once
do not collide.

Every database failure reaches the user as one :class:`StoreError` (exit 2) or
:class:`StoreBusyError` (exit 4) saying what is wrong and what to do, never as
SQL text with data in it.

The repositories (one module per table group) and the inbox do their work
through :meth:`Database.transaction` and :meth:`Database.reading`. A
transaction opened while another is open on the same thread joins it, so a
caller can make writes of several repositories commit together.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from connector.errors import ConfigError, StoreBusyError, StoreError

_MIGRATIONS = Path(__file__).with_name("migrations")
CHUNK = 500  # ids per IN (...) clause, under SQLite's variable limit
_MIGRATION_LOCK = 0x53504D  # PostgreSQL advisory lock key while migrating ("SPM")
SQLITE_BUSY_S = 10  # how long a SQLite writer waits for another process
T = TypeVar("T")
_NO_STORE = (
    "there is no store at {shown} yet: run `spm-connector sync` first, or point `store:` "
    "(or SPM_STORE_URL) at the store a sync wrote"
)


def this_process() -> str:
    """How a lock holder, a run or an inbox claim names this process:
    ``host:pid:pid-namespace:token``.

    The token is random, drawn once per process: no two processes share a name,
    whatever their hostname and pid (containers with a fixed ``hostname:``, host
    networking, a PID namespace /proc does not show). The host, pid and namespace
    only let a holder on this host be seen to be dead before its lease runs out.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{_pid_namespace()}:{_process_token()}"


_TOKENS: dict[int, str] = {}
_HOLDERS = itertools.count(1)


def new_holder() -> str:
    """A name for one holder of the sync lock in this process (an engine, a page's
    action): this process's name and a number, so two threads never share a lease."""
    return f"{this_process()}.{next(_HOLDERS)}"


def _process_token() -> str:
    """This process's random token (a forked child draws its own)."""
    pid = os.getpid()
    if pid not in _TOKENS:
        _TOKENS.clear()
        _TOKENS[pid] = secrets.token_hex(6)
    return _TOKENS[pid]


@cache
def _pid_namespace() -> str:
    """This process's PID namespace (the inode of /proc/self/ns/pid); "" where there is none."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def may_be_alive(holder: str) -> bool:
    """False only when ``holder`` names a process that no longer exists and that was
    ours to see: on this host, in this PID namespace. Anything else (another machine,
    another container, a holder named the way older versions did) counts as alive
    until its lease runs out. Only for a SQLite store: the hosts sharing a server store
    may share a name and a PID namespace (the initial one is alike on every host)."""
    parts = holder.split(":")
    if len(parts) not in (3, 4):
        return True
    host, pid_text, namespace = parts[:3]
    if host != socket.gethostname() or namespace != _pid_namespace() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("timestamps in the store must carry a time zone")
    return moment.astimezone(UTC).isoformat()


def decimal_text(value: Decimal | None) -> str | None:
    """Money and rates as text: str() keeps the exponent, so the round trip is exact."""
    return None if value is None else str(value)


def decimal_of(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices small enough for one IN (...) clause or one executemany."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


_SCHEMA = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _schema_of(url: sa.URL) -> tuple[sa.URL, str | None]:
    """A PostgreSQL store URL's ``?schema=NAME`` (ours, not the driver's): the URL without
    it, and the schema its tables live in. Several stores (one per account) can then
    share one database."""
    raw = url.query.get("schema")
    if raw is None:
        return url, None
    schema = raw if isinstance(raw, str) else raw[-1]
    if url.get_backend_name() != "postgresql":
        raise ConfigError(
            f"store: ?schema= is for PostgreSQL; a {url.get_backend_name()} store is one file "
            "per account"
        )
    if not _SCHEMA.fullmatch(schema):
        raise ConfigError(
            f"store: schema {schema!r} must be lowercase letters, digits and _ (at most 63), "
            "starting with a letter"
        )
    return url.difference_update_query(["schema"]), schema


def _create_schema(engine: Engine, schema: str) -> None:
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.commit()


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


class Database:
    """One database: its engine, its transactions, and the dry run's scratch transaction."""

    def __init__(
        self, engine: Engine, url_for_display: str, sqlite_path: Path | None = None
    ) -> None:
        self._engine = engine
        self.url_for_display = url_for_display
        self._gate = _write_gate(sqlite_path)
        # While a dry run lasts: the one connection whose transaction is rolled back.
        self._held: Connection | None = None
        # The write transaction this thread has open, which a nested one joins.
        self._local = threading.local()

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, checkpoints: bool = True, existing: bool = False) -> Self:
        """Open (and migrate) the store at ``url``.

        ``existing``: a command that only reads (``statement``) opens a store that a
        sync has made, and refuses to create an empty one where there is none.

        ``checkpoints=False`` (SQLite only): this process's commits never fold the
        write-ahead log back into the database file. The webhook receiver opens its
        store so, and an acknowledgement never waits for that fsync; the worker's and
        the sync's commits do it instead.
        """
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(f"store: {url!r} is not a database URL") from None
        parsed, schema = _schema_of(parsed)
        shown = parsed.render_as_string(hide_password=True) + (
            f" (schema {schema})" if schema else ""
        )
        password = parsed.password if isinstance(parsed.password, str) else None
        connect_args: dict[str, Any] = {}
        if schema is not None:
            # Every connection sees only this schema's tables: one account's store in a
            # database that holds several can never read another's rows.
            connect_args["options"] = f"-c search_path={schema}"
        try:
            engine = sa.create_engine(parsed, future=True, connect_args=connect_args)
        except (ArgumentError, ImportError, SQLAlchemyError) as error:
            raise ConfigError(f"store: cannot use {shown} ({type(error).__name__})") from None
        sqlite_path: Path | None = None
        if engine.dialect.name == "sqlite":
            sa.event.listen(
                engine, "connect", _sqlite_pragmas if checkpoints else _sqlite_pragmas_no_checkpoint
            )
            if parsed.database and parsed.database != ":memory:":
                sqlite_path = Path(parsed.database)
                if existing and not sqlite_path.exists():
                    raise StoreError(_NO_STORE.format(shown=shown))
                _create_private(sqlite_path, shown)

        def plain(context: Any) -> None:
            if isinstance(context.sqlalchemy_exception, IntegrityError):
                return  # ours to handle (the lock); anything else is a bug worth a traceback
            raise plain_store_error(context.original_exception, shown, password) from None

        sa.event.listen(engine, "handle_error", plain)
        store = cls(engine, shown, sqlite_path)
        try:
            if schema is not None and not existing:
                _create_schema(engine, schema)
            if existing:
                with engine.connect() as connection:
                    if store._current_revision(connection) is None:
                        raise StoreError(_NO_STORE.format(shown=shown))
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

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return str(self._engine.dialect.name)

    @property
    def server(self) -> str:
        """The database server and database, whatever schema this store is in: stores
        that share it can share one LISTEN connection."""
        return self._engine.url.render_as_string(hide_password=True)

    def listening_connection(self) -> Any:
        """A new PostgreSQL connection of the driver's own, in autocommit, outside the
        pool: for LISTEN, which holds it for as long as the process lives."""
        import psycopg

        url = self._engine.url.set(drivername="postgresql")
        return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def scratch(self) -> Iterator[Self]:
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

    @property
    def scratching(self) -> bool:
        """Whether a scratch transaction (a dry run) is open: on SQLite it holds the one
        write lock until it rolls back, so nothing else may commit meanwhile."""
        return self._held is not None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction: committed on success, rolled back on any error.

        Opened inside another on the same thread, it joins that one, so writes of
        several repositories commit (or fail) together.
        """
        joined = self._held if self._held is not None else getattr(self._local, "open", None)
        if joined is not None:
            yield joined  # the outer (or the scratch) transaction commits or rolls back
            return
        with self._gate, self._engine.begin() as connection:
            self._local.open = connection
            try:
                yield connection
                fence = getattr(self._local, "fence", None)
                if fence is not None:
                    fence(connection)  # raises, and the transaction rolls back
            finally:
                self._local.open = None

    def fence(self, check: Callable[[Connection], None] | None) -> None:
        """Every write transaction of this thread runs ``check`` last, inside it, before it
        commits (None: no more): the sync lock's fencing (sync/lease.py)."""
        self._local.fence = check

    @contextmanager
    def committing(self) -> Iterator[Connection]:
        """A transaction of its own, committed at once even during a dry run (the lock)."""
        with self._gate, self._engine.begin() as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        joined = self._held if self._held is not None else getattr(self._local, "open", None)
        if joined is not None:
            yield joined  # read what this transaction has written so far
            return
        with self._engine.connect() as connection:
            yield connection

    def insert(self, table: sa.Table) -> Any:
        """An INSERT that knows this database's ON CONFLICT (PostgreSQL or SQLite)."""
        if self._engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    def upsert(
        self,
        connection: Connection,
        table: sa.Table,
        rows: list[dict[str, Any]],
        update: Sequence[str],
    ) -> None:
        """Insert ``rows``; on a key already there, update the ``update`` columns (or keep it)."""
        if not rows:
            return
        keys = [column.name for column in table.primary_key.columns]
        statement = self.insert(table)
        if update:
            statement = statement.on_conflict_do_update(
                index_elements=keys, set_={name: statement.excluded[name] for name in update}
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=keys)
        for start in range(0, len(rows), CHUNK):
            connection.execute(statement, rows[start : start + CHUNK])

    def select_for(
        self, query: sa.Select[Any], column: sa.ColumnElement[Any], ids: Collection[str] | None
    ) -> list[sa.Row[Any]]:
        """The rows of ``query`` whose ``column`` is one of ``ids`` (every row with None),
        asked in chunks small enough for one IN (...), the ids in sorted order: a query
        ordered by ``column`` first comes back in its order; any other order or limit
        holds within each chunk only."""
        with self.reading() as connection:
            if ids is None:
                return list(connection.execute(query))
            rows: list[sa.Row[Any]] = []
            for part in chunks(sorted(ids)):
                rows += connection.execute(query.where(column.in_(part)))
            return rows

    def insert_new(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> int:
        """Insert the rows whose key is not held yet, in one transaction; how many were new.

        One statement per chunk that skips what is held and returns what it added: a
        row given twice (a replay, a second pass) is kept once, whoever gives it.
        """
        if not rows:
            return 0
        keys = [column.name for column in table.primary_key.columns]
        statement = (
            self.insert(table)
            .on_conflict_do_nothing(index_elements=keys)
            .returning(table.primary_key.columns[keys[0]])
        )
        with self.transaction() as connection:
            return sum(
                len(connection.execute(statement, list(part)).all()) for part in chunks(rows)
            )

    def json_text(self, column: sa.ColumnElement[Any], key: str) -> sa.ColumnElement[str]:
        """One top-level value of a JSON text column, as text, read by the database."""
        if self._engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            text: sa.ColumnElement[str] = sa.cast(column, JSONB)[key].astext
            return text
        return sa.func.json_extract(column, f"$.{key}", type_=sa.Text)

    @staticmethod
    def insert_one(connection: Connection, table: sa.Table, **values: Any) -> int:
        """Insert one row of a table with an integer key; its new key."""
        key = connection.execute(table.insert().values(**values)).inserted_primary_key
        assert key is not None  # an insert into a table with an integer key
        return int(key[0])

    def insert_all(
        self, connection: Connection, table: sa.Table, rows: list[dict[str, Any]]
    ) -> None:
        """Plain inserts, a chunk per statement."""
        for start in range(0, len(rows), CHUNK):
            connection.execute(table.insert(), rows[start : start + CHUNK])

    def rows_of(
        self, table: sa.Table, column: sa.Column[Any], ids: Collection[str] | None
    ) -> list[Any]:
        """Every row of ``table``, or those whose ``column`` is one of ``ids``."""
        with self.reading() as connection:
            if ids is None:
                return list(connection.execute(sa.select(table)))
            found: list[Any] = []
            for chunk in chunks(sorted(ids)):
                found += connection.execute(sa.select(table).where(column.in_(chunk)))
            return found


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
