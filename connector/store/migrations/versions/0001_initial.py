"""The first schema: users, deal snapshots, splits, statements, field values, cursors, runs, lock.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("email", sa.Text, nullable=False, server_default=""),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("manager_id", sa.String(64)),
    )
    op.create_table(
        "deals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False, index=True),
        sa.Column("amount", sa.Text),  # exact decimal text
        sa.Column("currency", sa.String(8)),
        sa.Column("close_date", sa.Date),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("first_won_on", sa.Date),
        sa.Column("cancel_date", sa.Date),
        sa.Column("type", sa.Text),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("properties", sa.Text, nullable=False, server_default="{}"),
        sa.Column("modified_at", sa.String(32), nullable=False),  # ISO 8601, UTC
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "splits",
        sa.Column("deal_id", sa.String(64), primary_key=True),
        sa.Column("rep_id", sa.String(64), primary_key=True),
        sa.Column("percent", sa.Text, nullable=False),
    )
    op.create_index("splits_rep_id", "splits", ["rep_id"])
    op.create_table(
        "statements",
        sa.Column("rep_id", sa.String(64), primary_key=True),
        sa.Column("plan_id", sa.String(128), primary_key=True),
        sa.Column("period", sa.String(10), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_table(
        "field_values",
        sa.Column("record", sa.String(8), primary_key=True),
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("crm", sa.Text),
        sa.Column("desired", sa.Text),
        sa.Column("has_desired", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("options", sa.Text, nullable=False, server_default="{}"),
        sa.Column("summary", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_table(
        "sync_lock",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("acquired_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "sync_lock",
        "sync_runs",
        "cursors",
        "field_values",
        "statements",
        "splits",
        "deals",
        "users",
    ):
        op.drop_table(table)
