"""The store's one table set, as the migrations build it.

Every table the store and the inbox use is declared here once. The
repositories query these objects; Alembic's ``env.py`` names this metadata as
its ``target_metadata``, and a test migrates an empty database and checks
that the migrations produce exactly these tables, columns and indexes. A
schema change is therefore two edits that a test holds together: a new
migration under ``migrations/versions/`` and the table here.

Money is decimal *text* (exact on every backend); timestamps ISO 8601 text in
UTC, except the inbox's epoch milliseconds.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

users_table = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    sa.Column("email", sa.Text, nullable=False, server_default=""),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("manager_id", sa.String(64)),
    sa.Column("record_id", sa.String(64)),
    sa.Column("team_id", sa.String(64)),
    sa.Column("payroll_id", sa.String(64)),
)
team_history_table = sa.Table(
    "team_history",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    # The first day this manager / team was seen; "" for "since ever".
    sa.Column("since", sa.String(10), primary_key=True),
    sa.Column("manager_id", sa.String(64)),
    sa.Column("team_id", sa.String(64)),
)
deals_table = sa.Table(
    "deals",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner_id", sa.String(64), nullable=False, index=True),
    sa.Column("amount", sa.Text),
    sa.Column("currency", sa.String(8)),
    sa.Column("close_date", sa.Date),
    sa.Column("outcome", sa.String(8), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("first_won_on", sa.Date),
    sa.Column("cancel_date", sa.Date),
    sa.Column("type", sa.Text),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    sa.Column("properties", sa.Text, nullable=False, server_default="{}"),
    sa.Column("modified_at", sa.String(32), nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_date", sa.Date),
)
splits_table = sa.Table(
    "splits",
    metadata,
    sa.Column("deal_id", sa.String(64), primary_key=True),
    sa.Column("rep_id", sa.String(64), primary_key=True),
    sa.Column("percent", sa.Text, nullable=False),
    sa.Index("splits_rep_id", "rep_id"),
)
quotas_table = sa.Table(
    "crm_quotas",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("rep_id", sa.String(64), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("amount", sa.Text),
    sa.Column("quantity", sa.Text),
)
leads_table = sa.Table(
    "leads",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner_id", sa.String(64), nullable=False),
    sa.Column("created_date", sa.Date, nullable=False),
    sa.Column("converted", sa.Boolean, nullable=False),
)
statements_table = sa.Table(
    "statements",
    metadata,
    sa.Column("rep_id", sa.String(64), primary_key=True),
    sa.Column("plan_id", sa.String(128), primary_key=True),
    sa.Column("period", sa.String(10), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
)
field_values_table = sa.Table(
    "field_values",
    metadata,
    sa.Column("record", sa.String(8), primary_key=True),
    sa.Column("record_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("crm", sa.Text),
    sa.Column("desired", sa.Text),
    sa.Column("has_desired", sa.Boolean, nullable=False, server_default=sa.false()),
)
owed_table = sa.Table(
    "owed",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
)
cursors_table = sa.Table(
    "cursors",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
metadata_table = sa.Table(
    "metadata",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text),
    sa.Column("fetched_at", sa.String(32), nullable=False),
)
runs_table = sa.Table(
    "sync_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("finished_at", sa.String(32)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("options", sa.Text, nullable=False, server_default="{}"),
    sa.Column("summary", sa.Text, nullable=False, server_default="{}"),
    sa.Column("holder", sa.Text),
)
lock_table = sa.Table(
    "sync_lock",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("acquired_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32)),
    # Fencing: each take of the lock counts one up; a holder's commits check theirs.
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
)
inbox_table = sa.Table(
    "inbox",
    metadata,
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
    sa.Index("ix_inbox_status", "status", "id"),
)

# The pay cycle (pay-cycle.md): financial records, kept through `sync --rebuild`.
period_closes_table = sa.Table(
    "period_closes",
    metadata,
    sa.Column("period", sa.String(10), primary_key=True),
    sa.Column("status", sa.String(8), nullable=False),  # closed | paid
    sa.Column("closed_at", sa.String(32), nullable=False),
    sa.Column("closed_by", sa.Text, nullable=False),
    sa.Column("paid_at", sa.String(32)),
    sa.Column("paid_by", sa.Text),
)
closed_statements_table = sa.Table(
    "closed_statements",
    metadata,
    sa.Column("rep_id", sa.String(64), primary_key=True),
    sa.Column("plan_id", sa.String(128), primary_key=True),
    sa.Column("period", sa.String(10), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("ix_closed_statements_period", "period"),
)
closed_deals_table = sa.Table(
    "closed_deals",
    metadata,
    # Deal first: the calculation looks deals up by id; a close and a reopen by period.
    sa.Column("deal_id", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(10), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("ix_closed_deals_period", "period"),
)
adjustments_table = sa.Table(
    "adjustments",
    metadata,
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
pay_events_table = sa.Table(
    "pay_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("period", sa.String(10)),
    sa.Column("rep_id", sa.String(64)),
    sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
)
statement_reviews_table = sa.Table(
    "statement_reviews",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rep_id", sa.String(64), nullable=False),
    sa.Column("plan_id", sa.String(128), nullable=False),
    sa.Column("period", sa.String(10), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),  # acknowledged | dispute
    sa.Column("line", sa.Integer),  # the disputed line's position on the statement
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # open | resolved | done
    sa.Column("resolved_at", sa.String(32)),
    sa.Column("resolved_by", sa.Text),
    sa.Column("reply", sa.Text),
    sa.Column("adjustment_id", sa.Integer),
    sa.Index("ix_statement_reviews_period", "period", "status"),
)
approvals_table = sa.Table(
    "approvals",
    metadata,
    sa.Column("rep_id", sa.String(64), primary_key=True),
    sa.Column("plan_id", sa.String(128), primary_key=True),
    sa.Column("period", sa.String(10), primary_key=True),
    sa.Column("step", sa.String(32), primary_key=True),
    sa.Column("approved_by", sa.Text, nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    # The statement as approved: a recompute that changes it voids the approval.
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("payout", sa.Text, nullable=False),
)
# Recognition: each award given once per (rep, award, key), with the day it was given.
awards_table = sa.Table(
    "awards",
    metadata,
    sa.Column("rep_id", sa.String(64), primary_key=True),
    sa.Column("award", sa.String(24), primary_key=True),
    sa.Column("award_key", sa.String(10), primary_key=True),  # "", a period or a year
    sa.Column("period", sa.String(10), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("said", sa.Text, nullable=False),
    sa.Column("given_at", sa.String(32), nullable=False),
    sa.Index("ix_awards_given", "given_at"),
)
# A manager's note to a rep about one period's statement.
feedback_notes_table = sa.Table(
    "feedback_notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rep_id", sa.String(64), nullable=False),
    sa.Column("period", sa.String(10), nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Index("ix_feedback_notes_rep", "rep_id"),
)
# A coaching play's task for a rep's manager, or a training module's task for the rep:
# one per (rep, play or module, period), opened in the CRM once.
coaching_tasks_table = sa.Table(
    "coaching_tasks",
    metadata,
    sa.Column("rep_id", sa.String(64), primary_key=True),
    sa.Column("play", sa.String(48), primary_key=True),  # a play's id, or "module:<id>"
    sa.Column("period", sa.String(10), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),  # play | module
    sa.Column("assignee_id", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # what we wrote, with our notes
    sa.Column("due", sa.String(10), nullable=False),
    sa.Column("state", sa.String(8), nullable=False),  # open | cleared | done | gone
    sa.Column("crm_id", sa.String(64)),  # None until the CRM answered the create
    sa.Column("attempted_at", sa.String(32)),  # a create was sent (it may have gone through)
    sa.Column("note_owed", sa.Text),  # a note to add to the task in the CRM
    sa.Column("figure", sa.String(24), nullable=False),
    sa.Column("before", sa.Text),  # the figure when the task was opened
    sa.Column("latest", sa.Text),  # the figure as the latest pass measured it
    sa.Column("opened_on", sa.String(10), nullable=False),
    sa.Column("closed_on", sa.String(10)),  # cleared or completed
    sa.Index("ix_coaching_tasks_state", "state"),
)
# API calls shared by every process working on one CRM account: calls made in each
# slot of a rate window (slot -1: the row a take locks first), and a pause after a 429
# (api "pause", slot 0, ``used`` the end of the pause in epoch milliseconds).
api_budget_table = sa.Table(
    "api_budget",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("api", sa.String(16), primary_key=True),
    sa.Column("slot", sa.BigInteger, primary_key=True),
    sa.Column("used", sa.BigInteger, nullable=False),
)

# What describes one CRM account's records: forgotten together by `sync --rebuild`.
STATE_TABLES = (
    users_table,
    team_history_table,
    deals_table,
    splits_table,
    quotas_table,
    leads_table,
    statements_table,
    field_values_table,
    owed_table,
    cursors_table,
    metadata_table,
)
