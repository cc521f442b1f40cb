"""The reports page's tables as CSV: exact figures, and text a spreadsheet will not run."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal

from connector.views.calc import spreadsheet_safe
from connector.views.team import ActivityRow, SyncRow, Team


def _plain(value: Decimal | None) -> str:
    """Our own figure, exact (a negative one too: numbers are never formulas)."""
    return "" if value is None else str(value)


def _safe(text: str | None) -> str:
    """Text from the CRM (a name, an id, an error): never run by a spreadsheet."""
    return spreadsheet_safe(text) or ""


def _leaderboard(team: Team, syncs: Sequence[SyncRow], activity: Sequence[ActivityRow]) -> Rows:
    del syncs, activity
    yield ["rank", "rep_id", "rep", "team_id", "plan_id", "attainment", "pace", "bookings",
           "quota", "to_next_tier", "next_rate", "payout", "draw_balance",
           "estimated_commission"]  # fmt: skip
    for rank, r in enumerate(team.rows, start=1):
        yield [
            str(rank), _safe(r.rep_id), _safe(r.name), _safe(r.team_id), _safe(r.plan_id),
            _plain(r.attainment),
            _plain(r.pace), _plain(r.bookings), _plain(r.quota), _plain(r.next_tier_gap),
            _plain(r.next_rate), _plain(r.payout), _plain(r.draw_balance), _plain(r.estimated),
        ]  # fmt: skip


def _teams_table(team: Team, syncs: Sequence[SyncRow], activity: Sequence[ActivityRow]) -> Rows:
    del syncs, activity
    yield ["team_id", "team", "reps", "bookings", "quota", "attainment", "payout", "cost_of_sales"]
    for t in team.teams:
        yield [
            _safe(t.team_id), _safe(t.name), str(t.reps), _plain(t.bookings), _plain(t.quota),
            _plain(t.attainment), _plain(t.payout), _plain(t.cost_of_sales),
        ]  # fmt: skip


def _draws(team: Team, syncs: Sequence[SyncRow], activity: Sequence[ActivityRow]) -> Rows:
    del syncs, activity
    yield ["rep_id", "rep", "draw_balance"]
    for r in team.draws_outstanding:
        yield [_safe(r.rep_id), _safe(r.name), _plain(r.draw_balance)]


def _syncs(team: Team, syncs: Sequence[SyncRow], activity: Sequence[ActivityRow]) -> Rows:
    del team, activity
    yield ["started_at", "status", "fields_written", "reason"]
    for s in syncs:
        written = "" if s.fields_written is None else str(s.fields_written)
        yield [s.started_at.isoformat(), s.status, written, _safe(s.reason)]


def _activity(team: Team, syncs: Sequence[SyncRow], activity: Sequence[ActivityRow]) -> Rows:
    del team, syncs
    yield ["received_ms", "source", "event", "record", "status"]
    for a in activity:
        yield [str(a.received_ms), a.source, _safe(a.event), _safe(a.record), _safe(a.status)]


Rows = Iterator[list[str]]
EXPORTS: dict[str, Callable[[Team, Sequence[SyncRow], Sequence[ActivityRow]], Rows]] = {
    "leaderboard": _leaderboard,
    "teams": _teams_table,
    "draws": _draws,
    "syncs": _syncs,
    "activity": _activity,
}


def export_csv(
    which: str, team: Team, syncs: Sequence[SyncRow], activity: Sequence[ActivityRow]
) -> str:
    """One of the page's tables (``EXPORTS``) as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(EXPORTS[which](team, syncs, activity))
    return out.getvalue()
