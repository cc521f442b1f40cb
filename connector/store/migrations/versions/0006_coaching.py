"""Coaching: the awards given to reps, each once, and managers' notes to reps.

- ``awards``: one row per (rep, award, key), with the period it was earned in,
  its title, the figures behind it and when it was first given. Kept across
  ``sync --rebuild``: an award once given stays given.
- ``feedback_notes``: a note for a rep, about one period's statement, with its
  author and time; kept across ``sync --rebuild`` too.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "awards",
        sa.Column("rep_id", sa.String(64), primary_key=True),
        sa.Column("award", sa.String(24), primary_key=True),
        sa.Column("award_key", sa.String(10), primary_key=True),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("said", sa.Text, nullable=False),
        sa.Column("given_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_awards_given", "awards", ["given_at"])
    op.create_table(
        "feedback_notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rep_id", sa.String(64), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )
    op.create_index("ix_feedback_notes_rep", "feedback_notes", ["rep_id"])


def downgrade() -> None:
    op.drop_index("ix_feedback_notes_rep", table_name="feedback_notes")
    op.drop_table("feedback_notes")
    op.drop_index("ix_awards_given", table_name="awards")
    op.drop_table("awards")
