"""Owed work, metadata cache, lock leases, run holders, rep record ids.

- ``owed``: what a run has pulled but not yet finished (reps to recompute,
  deals whose splits to read), committed with the pull itself so a run that
  dies leaves it for the next one.
- ``metadata``: CRM metadata kept between runs (pipelines, field definitions,
  owners), with when it was fetched.
- ``sync_lock.expires_at``: the lock is a lease its holder renews.
- ``sync_runs.holder``: which process ran it, so a dead run can be closed.
- ``users.record_id``: where a rep's values live when that is another record.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "owed",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
    )
    op.create_table(
        "metadata",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text),
        sa.Column("fetched_at", sa.String(32), nullable=False),
    )
    with op.batch_alter_table("sync_lock") as batch:
        batch.add_column(sa.Column("expires_at", sa.String(32)))
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("holder", sa.Text))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("record_id", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("record_id")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("holder")
    with op.batch_alter_table("sync_lock") as batch:
        batch.drop_column("expires_at")
    op.drop_table("metadata")
    op.drop_table("owed")
