"""Coaching tasks: the CRM tasks plays open for managers and modules assign to reps.

- ``coaching_tasks``: one row per (rep, play or ``module:<id>``, period), with
  whom it is assigned to, what it says, its state (open, cleared, done, gone),
  the CRM's id once the create was answered and when a create was sent (so a
  pass killed in between finds the task instead of opening a second), a note
  owed to the task, and the figure it is about when it was opened and as
  last measured. Kept across
  ``sync --rebuild``, like awards.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coaching_tasks",
        sa.Column("rep_id", sa.String(64), primary_key=True),
        sa.Column("play", sa.String(48), primary_key=True),
        sa.Column("period", sa.String(10), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("assignee_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("due", sa.String(10), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("crm_id", sa.String(64)),
        sa.Column("attempted_at", sa.String(32)),
        sa.Column("note_owed", sa.Text),
        sa.Column("figure", sa.String(24), nullable=False),
        sa.Column("before", sa.Text),
        sa.Column("latest", sa.Text),
        sa.Column("opened_on", sa.String(10), nullable=False),
        sa.Column("closed_on", sa.String(10)),
    )
    op.create_index("ix_coaching_tasks_state", "coaching_tasks", ["state"])


def downgrade() -> None:
    op.drop_index("ix_coaching_tasks_state", table_name="coaching_tasks")
    op.drop_table("coaching_tasks")
