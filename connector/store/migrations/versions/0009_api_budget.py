"""Shared API budgets: the calls every process made on one CRM account, per window slot.

- ``api_budget``: per (account, API class, slot of the rate window) the calls
  taken, so processes on many machines stay within the account's limit
  together; slot -1 is the row a take locks first, and the "pause" row holds
  when a 429's Retry-After ends for everyone.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_budget",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("api", sa.String(16), primary_key=True),
        sa.Column("slot", sa.BigInteger, primary_key=True),
        sa.Column("used", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_budget")
