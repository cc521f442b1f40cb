"""Goals and teams: creation dates, CRM teams, team history, CRM quotas, leads.

- ``deals.created_date``: for the sales cycle length.
- ``users.team_id``: a CRM team (HubSpot's primary team of an owner).
- ``team_history``: each user's manager / team as seen over time, so a deal
  counts for the team its rep was on when it closed.
- ``crm_quotas``: quotas the CRM holds (ForecastingQuota, HubSpot goal targets).
- ``leads``: leads (Salesforce) or contacts (HubSpot), for the lead-to-sale ratio.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deals") as batch:
        batch.add_column(sa.Column("created_date", sa.Date))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("team_id", sa.String(64)))
    op.create_table(
        "team_history",
        sa.Column("user_id", sa.String(64), primary_key=True),
        # The first day this manager / team was seen; "" for "since ever".
        sa.Column("since", sa.String(10), primary_key=True),
        sa.Column("manager_id", sa.String(64)),
        sa.Column("team_id", sa.String(64)),
    )
    op.create_table(
        "crm_quotas",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("rep_id", sa.String(64), nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("amount", sa.Text),
        sa.Column("quantity", sa.Text),
    )
    op.create_table(
        "leads",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("created_date", sa.Date, nullable=False),
        sa.Column("converted", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leads")
    op.drop_table("crm_quotas")
    op.drop_table("team_history")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("team_id")
    with op.batch_alter_table("deals") as batch:
        batch.drop_column("created_date")
