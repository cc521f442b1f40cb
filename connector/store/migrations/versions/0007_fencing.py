"""Fencing for the sync lock: a generation counted up on every take.

- ``sync_lock.generation``: every commit of a pass checks, in its own
  transaction, that the lock still holds this holder's generation; a holder
  whose lease ran out while it was paused (and was taken over) commits nothing.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_lock") as batch:
        batch.add_column(sa.Column("generation", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("sync_lock") as batch:
        batch.drop_column("generation")
