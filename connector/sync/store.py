"""The state store: what the connector remembers between runs (SQLAlchemy 2 Core).

SQLite by default, PostgreSQL (or any SQLAlchemy URL) for production. Money is
kept as decimal *text* so it round-trips exactly on every backend; timestamps
as ISO 8601 text in UTC. The schema is managed by Alembic migrations shipped
in the package (``connector/sync/migrations``) and brought to head on every
open, so an upgrade never loses state.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError

from connector.adapters.base import CrmUser, Outcome
from connector.errors import ConfigError, ConnectorError, SyncLockedError
from connector.fields import RecordKind
from connector.models import DealStatus, Line, LineKind, Statement

_MIGRATIONS = Path(__file__).with_name("migrations")
_CHUNK = 500  # ids per IN (...) clause, under SQLite's variable limit

_meta = sa.MetaData()
users_table = sa.Table(
    "users",
    _meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("active", sa.Boolean),
    sa.Column("manager_id", sa.String(64)),
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
)
lock_table = sa.Table(
    "sync_lock",
    _meta,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("holder", sa.Text),
    sa.Column("acquired_at", sa.String(32)),
)


@dataclass(frozen=True)
class DealSnapshot:
    """A deal as last pulled, with the history only we remember (first seen won)."""

    id: str
    owner_id: str
    amount: Decimal | None
    currency: str | None
    close_date: date | None
    outcome: Outcome
    status: DealStatus
    first_won_on: date | None
    cancel_date: date | None
    type: str | None
    name: str
    properties: Mapping[str, str]
    modified_at: datetime
    deleted: bool


@dataclass(frozen=True)
class UserRow:
    id: str
    name: str
    email: str
    active: bool
    manager_id: str | None


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


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("timestamps in the store must carry a time zone")
    return moment.astimezone(UTC).isoformat()


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Store:
    def __init__(self, engine: Engine, url_for_display: str) -> None:
        self._engine = engine
        self.url_for_display = url_for_display

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str) -> Store:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(f"store: {url!r} is not a database URL") from None
        shown = parsed.render_as_string(hide_password=True)
        try:
            engine = sa.create_engine(parsed, future=True)
        except (ArgumentError, ImportError, SQLAlchemyError) as error:
            raise ConfigError(f"store: cannot use {shown} ({type(error).__name__})") from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine, shown)
        try:
            store._migrate()
        except OperationalError as error:
            reason = str(error.orig).splitlines()[0] if error.orig else "unreachable"
            if parsed.password:
                reason = reason.replace(parsed.password, "***")
            raise ConnectorError(f"store: cannot open {shown}: {reason}") from None
        return store

    def _migrate(self) -> None:
        config = AlembicConfig()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self._engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

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
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_={name: statement.excluded[name] for name in update}
        )
        for start in range(0, len(rows), _CHUNK):
            connection.execute(statement, rows[start : start + _CHUNK])

    # -- two syncs at once -----------------------------------------------------------------

    @contextmanager
    def sync_lock(
        self, holder: str, now: datetime, stale_after: timedelta = timedelta(hours=6)
    ) -> Iterator[None]:
        """Hold the one sync lock; a second sync gets :class:`SyncLockedError`.

        A lock older than ``stale_after`` is taken over: its holder died without
        releasing it (a killed process, a lost machine).
        """
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    lock_table.insert().values(name="sync", holder=holder, acquired_at=_iso(now))
                )
        except IntegrityError:
            with self._engine.begin() as connection:
                row = connection.execute(
                    sa.select(lock_table).where(lock_table.c.name == "sync")
                ).one_or_none()
                since = datetime.fromisoformat(row.acquired_at) if row else now
                if row is not None and now - since < stale_after:
                    raise SyncLockedError(
                        f"another sync ({row.holder}) has been running since "
                        f"{since:%Y-%m-%d %H:%M} UTC; wait for it to finish. If it died, the "
                        f"lock is released automatically {stale_after} after it was taken"
                    ) from None
                connection.execute(
                    lock_table.update()
                    .where(lock_table.c.name == "sync")
                    .values(holder=holder, acquired_at=_iso(now))
                )
        try:
            yield
        finally:
            with self._engine.begin() as connection:
                connection.execute(
                    lock_table.delete().where(
                        lock_table.c.name == "sync", lock_table.c.holder == holder
                    )
                )

    # -- run log -------------------------------------------------------------------------

    def start_run(self, kind: str, started_at: datetime, options: Mapping[str, Any]) -> int:
        with self._engine.begin() as connection:
            result = connection.execute(
                runs_table.insert().values(
                    kind=kind,
                    started_at=_iso(started_at),
                    status="running",
                    options=json.dumps(options, sort_keys=True),
                    summary="{}",
                )
            )
            key = result.inserted_primary_key
            assert key is not None  # an insert into a table with an integer key
            return int(key[0])

    def finish_run(
        self, run_id: int, finished_at: datetime, status: str, summary: Mapping[str, Any]
    ) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                runs_table.update()
                .where(runs_table.c.id == run_id)
                .values(
                    finished_at=_iso(finished_at),
                    status=status,
                    summary=json.dumps(summary, sort_keys=True, default=str),
                )
            )

    def runs(self, limit: int = 20) -> list[RunRecord]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(runs_table).order_by(runs_table.c.id.desc()).limit(limit)
            ).all()
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
        with self._engine.connect() as connection:
            value = connection.execute(
                sa.select(cursors_table.c.value).where(cursors_table.c.name == name)
            ).scalar_one_or_none()
        return value

    def set_cursor(self, name: str, value: str) -> None:
        with self._engine.begin() as connection:
            self._upsert(connection, cursors_table, [{"name": name, "value": value}], ["value"])

    # -- users ---------------------------------------------------------------------------

    def upsert_users(self, users: Iterable[CrmUser]) -> None:
        rows = [
            {
                "id": u.id,
                "name": u.name,
                "email": u.email,
                "active": u.active,
                "manager_id": u.manager_id,
            }
            for u in users
        ]
        with self._engine.begin() as connection:
            self._upsert(connection, users_table, rows, ["name", "email", "active", "manager_id"])

    def users(self) -> list[UserRow]:
        with self._engine.connect() as connection:
            rows = connection.execute(sa.select(users_table).order_by(users_table.c.id)).all()
        return [
            UserRow(r.id, r.name or "", r.email or "", bool(r.active), r.manager_id) for r in rows
        ]

    # -- deals -----------------------------------------------------------------------------

    def upsert_deals(self, snapshots: Iterable[DealSnapshot]) -> None:
        rows = [_deal_row(snapshot) for snapshot in snapshots]
        columns = [c.name for c in deals_table.columns if c.name != "id"]
        with self._engine.begin() as connection:
            self._upsert(connection, deals_table, rows, columns)

    def deal_snapshots(self, ids: Collection[str]) -> dict[str, DealSnapshot]:
        found: dict[str, DealSnapshot] = {}
        with self._engine.connect() as connection:
            for chunk in _chunks(sorted(ids)):
                for row in connection.execute(
                    sa.select(deals_table).where(deals_table.c.id.in_(chunk))
                ):
                    found[row.id] = _snapshot(row)
        return found

    def all_deals(self) -> list[DealSnapshot]:
        with self._engine.connect() as connection:
            rows = connection.execute(sa.select(deals_table).order_by(deals_table.c.id))
            return [_snapshot(row) for row in rows]

    def deals_for_reps(self, rep_ids: Collection[str]) -> list[DealSnapshot]:
        """Deals owned by, or split with, any of ``rep_ids``."""
        found: dict[str, DealSnapshot] = {}
        with self._engine.connect() as connection:
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

    def replace_splits(self, splits_by_deal: Mapping[str, Sequence[tuple[str, Decimal]]]) -> None:
        deal_ids = sorted(splits_by_deal)
        rows = [
            {"deal_id": deal_id, "rep_id": rep_id, "percent": str(percent)}
            for deal_id in deal_ids
            for rep_id, percent in splits_by_deal[deal_id]
        ]
        with self._engine.begin() as connection:
            for chunk in _chunks(deal_ids):
                connection.execute(splits_table.delete().where(splits_table.c.deal_id.in_(chunk)))
            for start in range(0, len(rows), _CHUNK):
                connection.execute(splits_table.insert(), rows[start : start + _CHUNK])

    def splits_for(
        self, deal_ids: Collection[str] | None = None
    ) -> dict[str, list[tuple[str, Decimal]]]:
        result: dict[str, list[tuple[str, Decimal]]] = {}
        with self._engine.connect() as connection:
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

    # -- statements ------------------------------------------------------------------------

    def save_statements(self, rep_ids: Collection[str], statements: Sequence[Statement]) -> None:
        rows = [
            {
                "rep_id": s.rep_id,
                "plan_id": s.plan_id,
                "period": s.period,
                "body": json.dumps(_statement_json(s), separators=(",", ":")),
            }
            for s in statements
        ]
        with self._engine.begin() as connection:
            for chunk in _chunks(sorted(rep_ids)):
                connection.execute(
                    statements_table.delete().where(statements_table.c.rep_id.in_(chunk))
                )
            for start in range(0, len(rows), _CHUNK):
                connection.execute(statements_table.insert(), rows[start : start + _CHUNK])

    def statements_for(self, rep_id: str, period: str | None = None) -> list[Statement]:
        query = sa.select(statements_table.c.body).where(statements_table.c.rep_id == rep_id)
        if period is not None:
            query = query.where(statements_table.c.period == period)
        query = query.order_by(statements_table.c.period, statements_table.c.plan_id)
        with self._engine.connect() as connection:
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
        with self._engine.connect() as connection:
            for query in queries:
                for row in connection.execute(query):
                    desired = row.desired if row.has_desired else None
                    states[row.record_id, row.key] = FieldState(row.crm, desired)
        return states

    def set_crm_values(
        self, record: RecordKind, values: Iterable[tuple[str, str, str | None]]
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
        with self._engine.begin() as connection:
            self._upsert(connection, fields_table, rows, ["crm"])

    def set_desired(
        self, record: RecordKind, values: Iterable[tuple[str, str, str | None]]
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
        with self._engine.begin() as connection:
            self._upsert(connection, fields_table, rows, ["desired", "has_desired"])

    def pending(self, record: RecordKind) -> dict[str, dict[str, str | None]]:
        """Every field with a desired value the CRM does not hold yet."""
        query = sa.select(
            fields_table.c.record_id, fields_table.c.key, fields_table.c.desired
        ).where(
            fields_table.c.record == record.value,
            fields_table.c.has_desired.is_(True),
            fields_table.c.crm.is_distinct_from(fields_table.c.desired),
        )
        result: dict[str, dict[str, str | None]] = {}
        with self._engine.connect() as connection:
            for record_id, key, desired in connection.execute(query):
                result.setdefault(record_id, {})[key] = desired
        return result


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL lets a reader (serve, statement) work while a sync writes; the busy
    # timeout makes a second writer wait instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


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
    values: dict[str, Any] = {name: _number(body[name]) for name in _DECIMAL_FIELDS}
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
        **values,
    )
