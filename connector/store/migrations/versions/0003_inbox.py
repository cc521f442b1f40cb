"""The durable inbox: CRM events stored before they are acknowledged.

One row per event, unique on (source, event id) so a CRM's retries are
recognised. Times are epoch milliseconds: leases and backoff compare them, and
latency is their difference.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(160), nullable=False),
        sa.Column("record", sa.String(8), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(64)),
        sa.Column("occurred_ms", sa.BigInteger),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("not_before_ms", sa.BigInteger),
        sa.Column("claim", sa.String(200)),
        sa.Column("lease_until_ms", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.Column("finished_ms", sa.BigInteger),
        sa.UniqueConstraint("source", "event_id", name="uq_inbox_event"),
    )
    op.create_index("ix_inbox_status", "inbox", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_inbox_status", "inbox")
    op.drop_table("inbox")
