"""Alembic environment: run with the connection the store hands over (no ini file).

The schema the migrations must build is :mod:`connector.store.schema`; a test
compares the two, and ``alembic revision --autogenerate`` drafts the next
migration from their difference.
"""

from __future__ import annotations

from alembic import context

from connector.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
