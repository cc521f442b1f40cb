"""Statements → what ``calc`` prints: the JSON document of cli.md, a table, or CSV.

JSON and CSV are for programs and spreadsheets and must stay fast for a large
org (a hundred thousand statements, a million lines), so they are written
straight from the records as text: field order fixed by the tuples below,
money as two-decimal strings, fractions as four-decimal strings, ``null`` for
figures that do not exist (no quota, no closed deals). The same statements
always give the same bytes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from connector.core.models import (
    STATEMENT_FIGURES,
    FigureKind,
    GoalResult,
    Line,
    LineKind,
    Statement,
    TeamResult,
)
from connector.core.money import ZERO, format_count, format_days, format_fraction, format_money
from connector.views.money import DEFAULT_LOCALE, money

# The documented order of a statement's fields (cli.md), lines last.
STATEMENT_FIELDS = ("rep_id", "plan_id", "period", *(name for name, _ in STATEMENT_FIGURES))
LINE_FIELDS = ("kind", "deal_id", "amount", "rate", "rule")  # + paid_period on clawbacks

_text = json.encoder.encode_basestring  # a JSON string literal; C-accelerated


def ordered(statements: Iterable[Statement]) -> list[Statement]:
    """By rep id, then period, then plan id: the documented order, whatever the input order."""
    return sorted(statements, key=lambda s: (s.rep_id, s.period, s.plan_id))


def scalar_text(statement: Statement) -> list[str | None]:
    """A statement's scalar fields as output text, in STATEMENT_FIELDS order (None: no value)."""
    texts: list[str | None] = [statement.rep_id, statement.plan_id, statement.period]
    for name, format_figure in _FORMATTERS:
        value = getattr(statement, name)
        texts.append(None if value is None else format_figure(value))
    return texts


_FORMAT: dict[FigureKind, Callable[[Any], str]] = {
    FigureKind.MONEY: format_money,
    FigureKind.FRACTION: format_fraction,
    FigureKind.COUNT: str,
    FigureKind.DAYS: format_days,
}
_FORMATTERS = tuple((name, _FORMAT[kind]) for name, kind in STATEMENT_FIGURES)


# --- JSON --------------------------------------------------------------------

_COUNTS = frozenset(name for name, kind in STATEMENT_FIGURES if kind is FigureKind.COUNT)


def goal_texts(goal: GoalResult) -> dict[str, str | None]:
    """A goal's figures as output text: money for revenue, exact counts otherwise."""
    number = format_money if goal.metric == "revenue" else format_count
    return {
        "id": goal.goal_id,
        "metric": goal.metric,
        "team": goal.team_id,
        "target": None if goal.target is None else number(goal.target),
        "actual": number(goal.actual),
        "attainment": None if goal.attainment is None else format_fraction(goal.attainment),
        "pace": None if goal.pace is None else format_fraction(goal.pace),
        "deadline": None if goal.deadline is None else goal.deadline.isoformat(),
    }


def _json_goal(
    goal: GoalResult,
    heads: dict[tuple[str, str | None], str],
    numbers: dict[tuple[bool, Decimal], str],
) -> str:
    """``goal_texts`` as a JSON object, written by hand for speed (same keys, same order)."""
    head = heads.get((goal.goal_id, goal.team_id))
    if head is None:
        team = "null" if goal.team_id is None else _text(goal.team_id)
        head = heads[goal.goal_id, goal.team_id] = (
            f'{{"id": {_text(goal.goal_id)}, "metric": {_text(goal.metric)}, "team": {team}'
        )
    money = goal.metric == "revenue"
    target = goal.target
    if target is None:
        target_text = "null"
    else:
        target_text = numbers.get((money, target)) or numbers.setdefault(
            (money, target), f'"{format_money(target) if money else format_count(target)}"'
        )
    actual = format_money(goal.actual) if money else format_count(goal.actual)
    attainment = "null" if goal.attainment is None else f'"{format_fraction(goal.attainment)}"'
    pace = "null" if goal.pace is None else f'"{format_fraction(goal.pace)}"'
    deadline = "null" if goal.deadline is None else f'"{goal.deadline.isoformat()}"'
    return (
        f'{head}, "target": {target_text}, "actual": "{actual}", "attainment": {attainment}, '
        f'"pace": {pace}, "deadline": {deadline}}}'
    )


def _json_object(values: Mapping[str, object]) -> str:
    return json.dumps(values, separators=(", ", ": "))


def write_json(
    out: TextIO,
    statements: Sequence[Statement],
    *,
    currency: str,
    as_of: date,
    teams: Sequence[TeamResult] = (),
) -> None:
    """The cli.md document: one statement's figures per line, then one line per line item.

    Each statement carries its goals (``"goals"``); team goals by team and
    period follow the statements (``"teams"``), for the managers' view.

    Hand-written rather than ``json.dumps(indent=…)`` because the indenting
    encoder is pure Python and takes many seconds on a million lines; every
    string still goes through json's own escaping, so the result is valid JSON.
    """
    out.write(f'{{\n  "currency": {_text(currency)},\n  "as_of": "{as_of.isoformat()}",\n')
    out.write('  "statements": [')
    rates: dict[Decimal, str] = {}
    # A goal's id, metric and team repeat across thousands of statements: format them once.
    heads: dict[tuple[str, str | None], str] = {}
    numbers: dict[tuple[bool, Decimal], str] = {}
    for index, statement in enumerate(ordered(statements)):
        out.write(",\n    {" if index else "\n    {")
        fields = []
        for name, value in zip(STATEMENT_FIELDS, scalar_text(statement), strict=True):
            if value is None:
                fields.append(f'"{name}": null')
            elif name in _COUNTS:
                fields.append(f'"{name}": {value}')
            else:
                fields.append(f'"{name}": {_text(value)}')
        out.write(", ".join(fields))
        goals = ", ".join([_json_goal(goal, heads, numbers) for goal in statement.goals])
        out.write(f', "goals": [{goals}]')
        if statement.lines:
            out.write(', "lines": [\n      ')
            out.write(",\n      ".join([_json_line(line, rates) for line in statement.lines]))
            out.write("\n    ]}")
        else:
            out.write(', "lines": []}')
    out.write("\n  ]" if statements else "]")
    out.write(',\n  "teams": [')
    for index, team in enumerate(teams):
        out.write(",\n    " if index else "\n    ")
        out.write(_json_object(team_texts(team)))
    out.write("\n  ]\n}\n" if teams else "]\n}\n")


def team_texts(team: TeamResult) -> dict[str, object]:
    texts: dict[str, object] = {
        "plan_id": team.plan_id,
        "period": team.period,
        "team": team.team_id,
        "manager_id": team.manager_id,
        "members": list(team.members),
    }
    goal = goal_texts(team.goal)
    del goal["team"]
    texts["goal"] = goal
    return texts


def _json_line(line: Line, rates: dict[Decimal, str]) -> str:
    deal_id = "null" if line.deal_id is None else _text(line.deal_id)
    rate = line.rate
    if rate is None:
        rate_text = "null"
    else:
        # A plan has a handful of distinct rates; formatting each once saves a
        # quantize per line on a million lines.
        rate_text = rates.get(rate) or rates.setdefault(rate, f'"{format_fraction(rate)}"')
    text = (
        f'{{"kind": "{line.kind.value}", "deal_id": {deal_id}, '
        f'"amount": "{format_money(line.amount)}", "rate": {rate_text}, "rule": {_text(line.rule)}'
    )
    if line.kind is LineKind.CLAWBACK:
        paid = "null" if line.paid_period is None else _text(line.paid_period)
        return f'{text}, "paid_period": {paid}}}'
    return text + "}"


# --- CSV ---------------------------------------------------------------------


# A cell a spreadsheet would read as a formula (OWASP's "CSV injection" list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str | None) -> str | None:
    """Text from outside (a rep id, a plan or goal id) that a spreadsheet will not run:
    a leading ``'`` before a formula character, as OWASP advises. Our own numbers (a
    negative amount) are written as they are and never pass through here."""
    if text and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def write_csv(out: TextIO, statements: Sequence[Statement]) -> None:
    """One row per statement, every scalar field, empty cells for missing figures.

    Each goal of any plan adds two columns after the figures: ``<goal>_actual``
    and ``<goal>_attainment`` (empty where the rep's plan has no such goal).
    Ids that came from input are made spreadsheet-safe (:func:`spreadsheet_safe`).
    """
    writer = csv.writer(out, lineterminator="\n")
    rows = ordered(statements)
    goal_ids = list(dict.fromkeys(goal.goal_id for s in rows for goal in s.goals))
    goal_columns = [
        spreadsheet_safe(f"{goal_id}_{what}")
        for goal_id in goal_ids
        for what in ("actual", "attainment")
    ]
    writer.writerow((*STATEMENT_FIELDS, *goal_columns, "lines"))
    for statement in rows:
        cells: list[str | None] = []
        if goal_ids:
            texts = {goal.goal_id: goal_texts(goal) for goal in statement.goals}
            for goal_id in goal_ids:
                found = texts.get(goal_id)
                cells += [found["actual"], found["attainment"]] if found else [None, None]
        scalars = scalar_text(statement)
        scalars[0], scalars[1] = spreadsheet_safe(scalars[0]), spreadsheet_safe(scalars[1])
        writer.writerow((*scalars, *cells, len(statement.lines)))


# --- table -------------------------------------------------------------------

_TABLE_COLUMNS = (
    ("Rep", "rep_id"),
    ("Plan", "plan_id"),
    ("Period", "period"),
    ("Quota", "quota"),
    ("Bookings", "bookings"),
    ("Attain.", "attainment"),
    ("Commission", "commission"),
    ("SPIFFs", "spiffs"),
    ("Bonuses", "bonuses"),
    ("Clawbacks", "clawbacks"),
    ("Draw paid", "draw_paid"),
    ("Recovered", "draw_recovered"),
    ("Balance", "draw_balance"),
    ("Payout", "payout"),
)
# What a narrow terminal keeps, most telling first; wider ones get more, in table order.
_ESSENTIAL = ("rep_id", "period", "attainment", "payout", "bookings", "commission")
_PIPE_WIDTH = 100  # a file or a pipe has no width of its own: what a page or an email holds
_NAME_WIDTH = 24  # a longer rep name ends in "…"
_TOTALLED = (
    "bookings",
    "commission",
    "spiffs",
    "bonuses",
    "clawbacks",
    "draw_paid",
    "draw_recovered",
    "payout",
)


def write_table(
    out: TextIO,
    statements: Sequence[Statement],
    *,
    currency: str,
    as_of: date,
    names: Mapping[str, str] | None = None,
    locale: str = DEFAULT_LOCALE,
) -> None:
    """A table for a person: one row per statement and a totals row, money as people
    read it in ``locale`` (``$1,234.50``).

    Reps appear by name (``names``: id → name) and the columns are chosen to fit:
    the terminal's width, or 100 columns in a file or a pipe. The rep, period,
    attainment, payout, bookings and commission come first; more as it widens. A
    column that says nothing (the plan, with one plan) is left out, and the columns
    that did not fit are named below the table, with how to see them.
    """
    rows = ordered(statements)
    names = names or {}
    console = Console(file=out, width=None if out.isatty() else _PIPE_WIDTH, highlight=False)
    totals = {name: sum((getattr(s, name) for s in rows), ZERO) for name in _TOTALLED}
    wanted = [c for c in _TABLE_COLUMNS if c[1] != "plan_id" or len({s.plan_id for s in rows}) > 1]
    cells = {name: [_cell(s, name, names, currency, locale) for s in rows] for _, name in wanted}
    footers = {
        name: money(totals[name], currency, locale)
        if name in totals
        else "Total" if name == "rep_id" else ""
        for _, name in wanted
    }  # fmt: skip
    widths = {
        name: max(len(heading), len(footers[name]), *(len(text) for text in cells[name]))
        for heading, name in wanted
    }
    columns = _columns_for(wanted, widths, console.width)
    table = Table(
        title=f"Statements as of {as_of.isoformat()} ({currency})",
        show_footer=bool(rows),
        header_style="bold",
    )
    for heading, name in columns:
        numeric = name not in ("rep_id", "plan_id", "period")
        table.add_column(
            heading,
            justify="right" if numeric else "left",
            footer=footers[name],
            no_wrap=True,
            # A name too long for its column ends in "…": never broken mid-word.
            overflow="ellipsis",
            max_width=_NAME_WIDTH if name == "rep_id" else None,
        )
    for index in range(len(rows)):
        table.add_row(*(cells[name][index] for _, name in columns))
    console.print(table)
    if not rows:
        console.print("No statements.")
    dropped = [heading for heading, name in wanted if (heading, name) not in columns]
    if dropped:
        console.print(
            f"Not shown at {console.width} columns: {', '.join(dropped)}. A wider terminal "
            "shows more; --format csv has every column.",
            highlight=False,
        )


def _columns_for(
    wanted: Sequence[tuple[str, str]], widths: Mapping[str, int], width: int
) -> list[tuple[str, str]]:
    """The table's columns: as many as ``width`` holds, the essential ones first."""
    # Each column takes its widest cell, two spaces of padding and a border.
    budget = width - 1 - min(widths["rep_id"], _NAME_WIDTH) - 3
    chosen = {"rep_id"}
    for name in (*_ESSENTIAL[1:], *(n for _, n in wanted if n not in _ESSENTIAL)):
        cost = widths.get(name, 0) + 3
        if name in widths and budget >= cost:
            chosen.add(name)
            budget -= cost
    return [c for c in wanted if c[1] in chosen]


def _cell(
    statement: Statement, name: str, names: Mapping[str, str], currency: str, locale: str
) -> str:
    if name == "rep_id":
        return names.get(statement.rep_id) or statement.rep_id
    value = getattr(statement, name)
    if value is None:
        return "—"
    if name == "attainment":
        return f"{format_money(value * 100)}%"  # exact attainment, rounded once: 85.50%
    if isinstance(value, Decimal):
        return money(value, currency, locale)
    return str(value)
