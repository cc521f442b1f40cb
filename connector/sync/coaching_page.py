"""What the reports page's coaching section reads: plays, training by team, awards, notes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from connector.core.coaching import Figure, Play, TrainingModule, shown
from connector.store.coaching import DONE, MODULE, OPEN, PLAY, CoachingTask
from connector.store.state import Store

RECENT = 10  # awards and notes listed


@dataclass(frozen=True)
class PlayRow:
    rep_id: str
    name: str
    play: str  # the play's title
    period: str
    state: str  # open | cleared | done | gone
    before: str  # the figure when the task was opened
    now: str  # as last measured
    opened_on: str
    in_crm: bool


@dataclass(frozen=True)
class TrainingRow:
    rep_id: str
    name: str
    assigned: int
    completed: int
    overdue: int
    modules: str  # the titles of the modules assigned, newest first
    figure: str  # what the newest addresses: "win rate 18.00% → 27.00%"


@dataclass(frozen=True)
class CoachingSection:
    plays: list[PlayRow]
    training: list[tuple[str, list[TrainingRow]]]  # by team name
    awards: list[tuple[str, str, str, str]]  # (rep name, title, period, why)
    notes: list[tuple[str, str, str, str]]  # (rep name, author, at, note)

    def __bool__(self) -> bool:
        return bool(self.plays or self.training or self.awards or self.notes)


def load_coaching(
    store: Store,
    plays: Sequence[Play],
    modules: Sequence[TrainingModule],
    reps: Mapping[str, tuple[str, str]],
    today: date,
) -> CoachingSection:
    """The section for the reps shown (``reps``: id → (name, team name)); a play's row is
    listed while open, and for the period it was opened in."""
    titles = {play.play: play.name() for play in plays}
    module_titles = {module.id: module.title for module in modules}
    tasks = store.coaching.of(reps.keys())
    play_rows = [
        PlayRow(
            t.rep_id,
            reps[t.rep_id][0],
            titles.get(t.play, t.play),
            t.period,
            t.state,
            _figure(t.figure, t.before),
            _figure(t.figure, t.latest),
            t.opened_on,
            t.crm_id is not None,
        )
        for t in sorted(tasks, key=lambda t: (t.state != OPEN, t.opened_on))
        if t.kind == PLAY
    ]
    by_team: dict[str, list[TrainingRow]] = {}
    for rep_id in sorted(reps, key=lambda r: reps[r]):
        assigned = [t for t in tasks if t.rep_id == rep_id and t.kind == MODULE]
        if not assigned:
            continue
        newest = max(assigned, key=lambda t: (t.opened_on, t.period))
        label = Figure(newest.figure).value.replace("_", " ")
        row = TrainingRow(
            rep_id, reps[rep_id][0], len(assigned),
            sum(t.state == DONE for t in assigned),
            sum(_overdue(t, today) for t in assigned),
            ", ".join(module_titles.get(t.module or "", t.module or "") for t in
                      sorted(assigned, key=lambda t: t.opened_on, reverse=True)),
            f"{label} {_figure(newest.figure, newest.before)} → "
            f"{_figure(newest.figure, newest.latest)}",
        )  # fmt: skip
        by_team.setdefault(reps[rep_id][1], []).append(row)
    awards = sorted(store.awards.of(reps.keys()), key=lambda g: (g.given_at, g.period),
                    reverse=True)[:RECENT]  # fmt: skip
    notes = store.notes.recent(reps.keys(), RECENT)
    return CoachingSection(
        play_rows,
        sorted(by_team.items()),
        [(reps[g.rep_id][0], g.title, g.period, g.said) for g in awards],
        [(reps[n.rep_id][0], n.author, n.at[:16].replace("T", " "), n.body) for n in notes],
    )


def _overdue(task: CoachingTask, today: date) -> bool:
    return task.state == OPEN and date.fromisoformat(task.due) < today


def _figure(figure: str, value: str | None) -> str:
    return shown(Figure(figure), None if value is None else Decimal(value))
