"""The migrations build exactly the tables connector/store/schema.py declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from connector.store.schema import metadata
from connector.store.state import Store


def _same_default(
    _context: object,
    _inspected: object,
    _declared: object,
    inspected_default: str | None,
    _declared_default: object,
    rendered_declared_default: str | None,
) -> bool | None:
    # SQLite reflects the default of a table rebuilt by a batch migration as ('');
    # the same text in other brackets and quotes is the same default.
    if inspected_default is None or rendered_declared_default is None:
        return None
    if inspected_default.strip("()'\"") == rendered_declared_default.strip("()'\""):
        return False
    return None


def _differences(store: Store) -> list[object]:
    with store.reading() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_server_default": _same_default, "compare_type": True}
        )
        return list(compare_metadata(context, metadata))


def test_the_migrations_produce_exactly_the_declared_schema(any_store: Store) -> None:
    assert _differences(any_store) == []


def test_a_table_missing_from_the_migrations_is_a_difference(any_store: Store) -> None:
    # The comparison is not blind: a declared table the migrations lack is found.
    import sqlalchemy as sa

    extra = sa.Table("not_migrated", metadata, sa.Column("id", sa.Integer, primary_key=True))
    try:
        found = _differences(any_store)
    finally:
        metadata.remove(extra)
    assert [d[0] for d in found if isinstance(d, tuple)] == ["add_table"]
