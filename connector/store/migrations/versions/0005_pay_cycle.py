"""The pay cycle: closed periods, their frozen statements, adjustments, the event log.

- ``period_closes``: one row per closed (or paid) period.
- ``closed_statements``: each statement as it was closed.
- ``closed_deals``: each deal a closed statement paid, as it was then (the
  reasons on adjustment lines and ``explain``).
- ``adjustments``: manual adjustments; a reversal is a row of its own.
- ``pay_events``: append-only log of closes, reopens, adjustments, payroll exports,
  approvals, acknowledgements and disputes.
- ``statement_reviews``: a rep's acknowledgements and disputes, and their resolution.
- ``approvals``: each statement's approval at each step, with what it approved.
- ``users.payroll_id``: the employee id from the CRM (``pay_cycle.payroll_id_field``).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("payroll_id", sa.String(64)))
    op.create_table(
        "period_closes",
        sa.Column("period", sa.String(10), primary_key=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("closed_at", sa.String(32), nullable=False),
        sa.Column("closed_by", sa.Text, nullable=False),
        sa.Column("paid_at", sa.String(32)),
        sa.Column("paid_by", sa.Text),
    )
    op.create_table(
        "closed_statements",
        sa.Column("rep_id", sa.String(64), primary_key=True),
        sa.Column("plan_id", sa.String(128), primary_key=True),
        sa.Column("period", sa.String(10), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_closed_statements_period", "closed_statements", ["period"])
    op.create_table(
        "closed_deals",
        sa.Column("deal_id", sa.String(64), primary_key=True),
        sa.Column("period", sa.String(10), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_closed_deals_period", "closed_deals", ["period"])
    op.create_table(
        "adjustments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rep_id", sa.String(64), nullable=False),
        sa.Column("plan_id", sa.String(128), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("amount", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("reverses", sa.Integer),
    )
    op.create_table(
        "pay_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("period", sa.String(10)),
        sa.Column("rep_id", sa.String(64)),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    )

    op.create_table(
        "statement_reviews",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rep_id", sa.String(64), nullable=False),
        sa.Column("plan_id", sa.String(128), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("line", sa.Integer),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("resolved_at", sa.String(32)),
        sa.Column("resolved_by", sa.Text),
        sa.Column("reply", sa.Text),
        sa.Column("adjustment_id", sa.Integer),
    )
    op.create_index("ix_statement_reviews_period", "statement_reviews", ["period", "status"])
    op.create_table(
        "approvals",
        sa.Column("rep_id", sa.String(64), primary_key=True),
        sa.Column("plan_id", sa.String(128), primary_key=True),
        sa.Column("period", sa.String(10), primary_key=True),
        sa.Column("step", sa.String(32), primary_key=True),
        sa.Column("approved_by", sa.Text, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("payout", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("approvals")
    op.drop_index("ix_statement_reviews_period", table_name="statement_reviews")
    op.drop_table("statement_reviews")
    op.drop_index("ix_closed_deals_period", table_name="closed_deals")
    op.drop_index("ix_closed_statements_period", table_name="closed_statements")
    for table in ("pay_events", "adjustments", "closed_deals", "closed_statements"):
        op.drop_table(table)
    op.drop_table("period_closes")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("payroll_id")
