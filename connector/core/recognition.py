"""Recognition: awards a rep earns from their statements, each given once.

Rules (``recognition:`` in spm.yaml), each an ``award`` kind:

- ``first_win``: the rep's first period with a won deal; once ever.
- ``personal_best``: a period whose bookings beat every earlier period of the
  rep's (there must be an earlier one with bookings); once per period.
- ``top_of_period``: the highest attainment among the plan members of a period
  that is over (ties share it); once per period.
- ``club_pace``: the year's pace (bookings this year ÷ the quota of the year so
  far, the current period by the share gone by) at ``at`` or more with
  ``months_left`` months or fewer left in the year; once per year.
- ``streak``: ``periods`` periods in a row at or above quota; once per streak,
  in the period it reaches that length.

The rules are pure functions of the statements and the as-of day, so every
sync and worker pass finds the same awards; the store keeps each (rep, award,
key) once, with the day it was first given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from connector.core.kpis import elapsed_days
from connector.core.models import Statement
from connector.core.money import ZERO, format_money, parse_decimal, ratio
from connector.core.periods import PeriodKind, parse_label, period_of


class AwardKind(StrEnum):
    FIRST_WIN = "first_win"
    PERSONAL_BEST = "personal_best"
    TOP_OF_PERIOD = "top_of_period"
    CLUB_PACE = "club_pace"
    STREAK = "streak"


TITLES = {
    AwardKind.FIRST_WIN: "First win",
    AwardKind.PERSONAL_BEST: "Personal best",
    AwardKind.TOP_OF_PERIOD: "Top of the leaderboard",
    AwardKind.CLUB_PACE: "On pace for club",
    AwardKind.STREAK: "Quota streak",
}


class Recognition(BaseModel):
    """One award rule of spm.yaml's ``recognition:``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    award: AwardKind
    title: str | None = Field(default=None, min_length=1, max_length=60)  # else the kind's
    at: Annotated[Decimal, BeforeValidator(parse_decimal)] = Decimal(1)  # club_pace: the pace
    months_left: int = Field(default=3, ge=0, le=11)  # club_pace
    periods: int = Field(default=3, ge=2, le=24)  # streak

    def name(self) -> str:
        return self.title or TITLES[self.award]


@dataclass(frozen=True, slots=True)
class Award:
    rep_id: str
    award: str  # its rule's kind
    key: str  # what makes it once: "" (ever), a period, or a year
    period: str  # the period it was earned in
    title: str
    said: str  # the figures behind it


@dataclass(frozen=True, slots=True)
class _Month:
    period: str
    bookings: Decimal
    won: int
    quota: Decimal | None
    attainment: Decimal | None


def recognize(
    statements: Iterable[Statement],
    rules: Sequence[Recognition],
    as_of: date,
    kind: PeriodKind,
    *,
    leaderboard: bool = True,
) -> list[Award]:
    """Every award the rules give on these statements (each rep's whole history), in
    (rep, period, award) order. ``leaderboard``: judge the latest period that is over
    (its statements must all be given; a worker pass, which sees a few reps, skips it)."""
    if not rules:
        return []
    by_rep: dict[str, dict[str, list[Statement]]] = {}
    for statement in statements:
        by_rep.setdefault(statement.rep_id, {}).setdefault(statement.period, []).append(statement)
    histories = {rep: [_month(p, ss) for p, ss in sorted(periods.items())]
                 for rep, periods in by_rep.items()}  # fmt: skip
    current = period_of(as_of, kind)
    awards: list[Award] = []
    for rule in rules:
        if rule.award is AwardKind.TOP_OF_PERIOD:
            if leaderboard:
                awards += _top(histories, rule, current, kind)
            continue
        for rep_id, months in histories.items():
            shown = [m for m in months if parse_label(m.period, kind) <= current]
            awards += _of_rep(rep_id, shown, rule, (as_of, kind))
    awards.sort(key=lambda a: (a.rep_id, a.period, a.award, a.key))
    return awards


def _month(period: str, statements: Sequence[Statement]) -> _Month:
    quotas = [s.quota for s in statements if s.quota is not None]
    attainments = [s.attainment for s in statements if s.attainment is not None]
    return _Month(
        period,
        sum((s.bookings for s in statements), ZERO),
        sum(s.won_count for s in statements),
        sum(quotas, ZERO) if quotas else None,
        max(attainments) if attainments else None,
    )


def _of_rep(
    rep_id: str, months: Sequence[_Month], rule: Recognition, when: tuple[date, PeriodKind]
) -> list[Award]:
    title = rule.name()
    award = rule.award.value
    if rule.award is AwardKind.FIRST_WIN:
        first = next((m for m in months if m.won > 0), None)
        if first is None:
            return []
        return [Award(rep_id, award, "", first.period, title, f"first won deal, in {first.period}")]
    if rule.award is AwardKind.PERSONAL_BEST:
        found: list[Award] = []
        best: _Month | None = None
        for month in months:
            if best is not None and best.bookings > 0 and month.bookings > best.bookings:
                said = (f"bookings {format_money(month.bookings)}, above "
                        f"{format_money(best.bookings)} in {best.period}")  # fmt: skip
                found.append(Award(rep_id, award, month.period, month.period, title, said))
            if best is None or month.bookings > best.bookings:
                best = month
        return found
    if rule.award is AwardKind.STREAK:
        found = []
        run = 0
        for month in months:
            on = month.attainment is not None and month.attainment >= 1
            run = run + 1 if on else 0
            if run == rule.periods:
                said = f"{rule.periods} periods in a row at or above quota, to {month.period}"
                found.append(Award(rep_id, award, month.period, month.period, title, said))
        return found
    return _club(rep_id, months, rule, when)


def _club(
    rep_id: str, months: Sequence[_Month], rule: Recognition, when: tuple[date, PeriodKind]
) -> list[Award]:
    as_of, kind = when
    year = str(as_of.year)
    months_left = 12 - as_of.month
    this_year = [m for m in months if m.period.startswith(year)]
    if months_left > rule.months_left or not this_year:
        return []
    current = period_of(as_of, kind)
    bookings = quota = ZERO
    for month in this_year:
        if month.quota is None:
            return []
        period = parse_label(month.period, kind)
        share = Decimal(1)
        if period == current:
            gone, length = elapsed_days(period, kind, as_of)
            share = Decimal(gone) / Decimal(length)
        bookings += month.bookings
        quota += month.quota * share
    if quota <= 0:
        return []
    pace = ratio(bookings, quota)
    if pace < rule.at:
        return []
    said = (f"the year's pace {format_money(pace * 100)}% on {as_of}, "
            f"{months_left} month(s) left")  # fmt: skip
    return [Award(rep_id, rule.award.value, year, this_year[-1].period, rule.name(), said)]


def _top(
    histories: dict[str, list[_Month]], rule: Recognition, current: int, kind: PeriodKind
) -> list[Award]:
    """The latest period that is over: its best attainment (ties share the award)."""
    judged = current - 1
    found = {
        rep: next((m for m in months if parse_label(m.period, kind) == judged), None)
        for rep, months in histories.items()
    }
    ranked = {rep: m for rep, m in found.items() if m is not None and m.attainment is not None}
    if not ranked:
        return []
    top = max(m.attainment for m in ranked.values() if m.attainment is not None)
    if top <= 0:
        return []
    period = next(iter(ranked.values())).period
    return [
        Award(rep, rule.award.value, period, period, rule.name(),
              f"highest attainment of {period}: {format_money(top * 100)}%")
        for rep, m in sorted(ranked.items())
        if m.attainment == top
    ]  # fmt: skip
