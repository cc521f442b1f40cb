"""Coaching plays and training modules: conditions over a rep's figures, pure.

A play (``coaching:`` in spm.yaml) names one figure of the rep's current period
and a bound (``below`` or ``above``), optionally only once a share of the
period has gone by (``after``). When it holds, the rep's manager gets one CRM
task for the rep, the play and the period; a play may also assign a training
module (``training:``): a task for the rep with the module's link.

The figures are those statements already carry (attainment, pace, pipeline
coverage, sales cycle) and three measured here from the rep's deals and peers:
the win rate over a rolling window of days, the days since the last won deal,
and the sales cycle against the median of the plan's members. A figure that
does not apply (no quota, no closed deal) holds no play.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from connector.core.kpis import elapsed_days
from connector.core.models import Deal, DealStatus, Statement
from connector.core.money import format_money, parse_decimal, ratio
from connector.core.periods import PeriodKind, first_day, parse_label

_ID = r"^[a-z][a-z0-9_-]{0,39}$"
SUBJECT_LENGTH = 255  # Salesforce's Task.Subject; HubSpot's title takes as much


class Figure(StrEnum):
    ATTAINMENT = "attainment"  # the period's bookings ÷ quota
    PACE = "pace"  # attainment projected to the period's end
    WIN_RATE = "win_rate"  # won ÷ closed, over the play's ``days``
    PIPELINE_COVERAGE = "pipeline_coverage"  # open pipeline ÷ the quota still to book
    SALES_CYCLE_DAYS = "sales_cycle_days"  # mean days from creation to close, this period
    CYCLE_VS_TEAM = "cycle_vs_team"  # the rep's sales cycle ÷ the plan members' median
    DAYS_SINCE_WIN = "days_since_win"  # since the last won deal (or the rep's start)


_FRACTIONS = {Figure.ATTAINMENT, Figure.PACE, Figure.WIN_RATE}
_LABELS = {
    Figure.ATTAINMENT: "attainment",
    Figure.PACE: "pace",
    Figure.WIN_RATE: "win rate",
    Figure.PIPELINE_COVERAGE: "pipeline coverage",
    Figure.SALES_CYCLE_DAYS: "sales cycle",
    Figure.CYCLE_VS_TEAM: "sales cycle against the team's median",
    Figure.DAYS_SINCE_WIN: "days since the last won deal",
}
_Number = Annotated[Decimal, BeforeValidator(parse_decimal)]


class TrainingModule(BaseModel):
    """One module of spm.yaml's ``training:``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=_ID)
    title: str = Field(min_length=1, max_length=120)
    link: str = Field(pattern=r"^https?://\S+$", max_length=1000)
    addresses: Figure  # the figure it helps with: shown before assignment and now
    due_days: int = Field(default=14, ge=1, le=365)


class Play(BaseModel):
    """One play of spm.yaml's ``coaching:``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    play: str = Field(pattern=_ID)
    title: str | None = Field(default=None, min_length=1, max_length=80)
    figure: Figure
    below: _Number | None = None
    above: _Number | None = None
    # Only once this share of the period has gone by (0.4: from 40 % of the way).
    after: _Number = Decimal(0)
    days: int = Field(default=90, ge=7, le=366)  # the win rate's window
    talking_points: tuple[Annotated[str, Field(min_length=1, max_length=300)], ...] = ()
    assign: str | None = None  # a training module's id

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if (self.below is None) == (self.above is None):
            raise ValueError("give exactly one of below: or above:")
        if not Decimal(0) <= self.after < Decimal(1):
            raise ValueError("after: is a share of the period, from 0 up to (not including) 1")
        return self

    def name(self) -> str:
        return self.title or self.play.replace("_", " ").replace("-", " ").capitalize()

    def holds(self, value: Decimal | None, gone: Decimal) -> bool:
        """Whether the play's condition holds on this figure, ``gone`` into the period."""
        if value is None or gone < self.after:
            return False
        if self.below is not None:
            return value < self.below
        return self.above is not None and value > self.above

    def bound_text(self) -> str:
        bound = self.below if self.below is not None else self.above
        assert bound is not None
        side = "below" if self.below is not None else "above"
        return f"{side} {shown(self.figure, bound)}"


def shown(figure: Figure, value: Decimal | None) -> str:
    """A figure as a task and the reports page say it."""
    if value is None:
        return "n/a"
    if figure in _FRACTIONS:
        return f"{format_money(value * 100)}%"
    if figure in (Figure.PIPELINE_COVERAGE, Figure.CYCLE_VS_TEAM):
        return f"{format_money(value)}x"
    return f"{value.normalize():f} days"


def label_of(figure: Figure) -> str:
    return _LABELS[figure]


@dataclass(frozen=True, slots=True)
class RepFigures:
    """One rep's figures on the as-of day, and how far into the period it is."""

    rep_id: str
    period: str
    gone: Decimal  # the share of the period gone by
    values: Mapping[Figure, Decimal | None]
    win_rates: Mapping[int, Decimal | None]  # by window in days

    def value(self, play: Play) -> Decimal | None:
        if play.figure is Figure.WIN_RATE:
            return self.win_rates.get(play.days)
        return self.values.get(play.figure)


@dataclass(frozen=True, slots=True)
class Call:
    """A play that holds for a rep: what its task says."""

    rep_id: str
    play: Play
    period: str
    value: Decimal | None
    figures: RepFigures


def figures_of(
    rep_id: str,
    current: Sequence[Statement],
    history: Iterable[Statement],
    deals: Iterable[Deal],
    peers: Sequence[Statement],
    when: tuple[date, PeriodKind],
    windows: Iterable[int] = (90,),
) -> RepFigures | None:
    """The rep's figures on ``as_of``: ``current`` are their statements of the as-of
    period (None without one), ``history`` every period's, ``deals`` those credited to
    them, ``peers`` the plan members' statements of the period (the cycle's median).

    A rep on two plans is judged on the first plan (by id) that gives each figure.
    """
    as_of, kind = when
    if not current:
        return None
    ordered = sorted(current, key=lambda s: s.plan_id)
    period = ordered[0].period
    number = parse_label(period, kind)
    gone_days, length = elapsed_days(number, kind, as_of)

    def first(name: str) -> Decimal | None:
        return next((v for s in ordered if (v := getattr(s, name)) is not None), None)

    cycle = first("sales_cycle_days")
    peer_cycles = [s.sales_cycle_days for s in peers if s.sales_cycle_days is not None]
    median = Decimal(statistics.median(peer_cycles)) if peer_cycles else None
    credited = list(deals)
    values: dict[Figure, Decimal | None] = {
        Figure.ATTAINMENT: first("attainment"),
        Figure.PACE: first("pace"),
        Figure.PIPELINE_COVERAGE: first("pipeline_coverage"),
        Figure.SALES_CYCLE_DAYS: cycle,
        Figure.CYCLE_VS_TEAM: ratio(cycle, median) if cycle is not None and median else None,
        Figure.DAYS_SINCE_WIN: _days_since_win(credited, history, as_of, kind),
    }
    return RepFigures(
        rep_id,
        period,
        ratio(Decimal(gone_days), Decimal(length)),
        values,
        {days: win_rate(credited, as_of, days) for days in set(windows)},
    )


def win_rate(deals: Iterable[Deal], as_of: date, days: int) -> Decimal | None:
    """Won ÷ closed among the deals closed in the ``days`` up to ``as_of`` (a won deal
    later cancelled counts as lost); None with none closed."""
    start = as_of - timedelta(days=days - 1)
    won = closed = 0
    for deal in deals:
        if deal.status is DealStatus.OPEN or not start <= deal.close_date <= as_of:
            continue
        closed += 1
        won += deal.status is DealStatus.WON
    return ratio(Decimal(won), Decimal(closed)) if closed else None


def _days_since_win(
    deals: Sequence[Deal], history: Iterable[Statement], as_of: date, kind: PeriodKind
) -> Decimal | None:
    wins = [d.close_date for d in deals if d.status is DealStatus.WON and d.close_date <= as_of]
    if wins:
        return Decimal((as_of - max(wins)).days)
    periods = [parse_label(s.period, kind) for s in history]
    if not periods:
        return None
    return Decimal(max((as_of - first_day(min(periods), kind)).days, 0))


def calls(plays: Sequence[Play], figures: RepFigures) -> list[Call]:
    """The plays that hold for the rep now."""
    return [
        Call(figures.rep_id, play, figures.period, figures.value(play), figures)
        for play in plays
        if play.holds(figures.value(play), figures.gone)
    ]


def play_subject(play: Play, rep_name: str, period: str) -> str:
    return f"Coaching: {play.name()} - {rep_name} ({period})"[:SUBJECT_LENGTH]


def play_body(call: Call, rep_name: str, module: TrainingModule | None) -> str:
    """The manager's task: the figure behind the play, the others for context, and the
    play's talking points."""
    play, figures = call.play, call.figures
    lines = [
        f"{rep_name}'s {label_of(play.figure)} is {shown(play.figure, call.value)}, "
        f"{play.bound_text()} ({format_money(figures.gone * 100)}% of {call.period} gone by).",
        "",
        "Figures on the day:",
    ]
    for figure in Figure:
        if figure is not Figure.WIN_RATE and figures.values.get(figure) is not None:
            lines.append(f"- {label_of(figure)}: {shown(figure, figures.values[figure])}")
    for days, rate in sorted(figures.win_rates.items()):
        if rate is not None:
            lines.append(f"- win rate over {days} days: {shown(Figure.WIN_RATE, rate)}")
    if play.talking_points:
        lines += ["", "Talking points:", *(f"- {point}" for point in play.talking_points)]
    if module is not None:
        lines += ["", f"Training assigned to {rep_name}: {module.title} ({module.link})"]
    return "\n".join(lines)


def module_subject(module: TrainingModule, period: str) -> str:
    return f"Training: {module.title} ({period})"[:SUBJECT_LENGTH]


def module_body(module: TrainingModule, call: Call, due: date) -> str:
    return "\n".join(
        [
            f"Take the module {module.title}: {module.link}",
            f"Due {due.isoformat()}. Mark this task completed when you have finished it.",
            "",
            f"Assigned by the play {call.play.name()}: {label_of(call.play.figure)} "
            f"{shown(call.play.figure, call.value)}.",
        ]
    )


def cleared_note(play: Play, value: Decimal | None, on: date) -> str:
    return (
        f"{on.isoformat()}: cleared - {label_of(play.figure)} is now "
        f"{shown(play.figure, value)}, no longer {play.bound_text()}."
    )


def back_note(play: Play, value: Decimal | None, on: date) -> str:
    return (
        f"{on.isoformat()}: back - {label_of(play.figure)} is "
        f"{shown(play.figure, value)} again, {play.bound_text()}."
    )


def module_figure(module: TrainingModule, figures: RepFigures) -> Decimal | None:
    """The figure a module addresses (the win rate over 90 days)."""
    if module.addresses is Figure.WIN_RATE:
        return figures.win_rates.get(90)
    return figures.values.get(module.addresses)
