"""One rep's statement as a person reads it: text that fits 80 columns, or one HTML page.

Built from the statements the store keeps (the same records ``sync`` wrote
back and ``calc`` computes; :mod:`connector.sync.reading` loads them), so every
total here is the engine's own figure; this module only arranges and formats
them. The JSON form is ``calc``'s document for that rep and period.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from connector.core.models import CrmUser, GoalResult, Line, LineKind, Statement
from connector.core.money import format_count, format_days, format_money
from connector.errors import InputError
from connector.views.money import DEFAULT_LOCALE, money

WIDTH = 80
_TEMPLATES = Path(__file__).with_name("templates")


def find_rep(users: Sequence[CrmUser], wanted: str) -> CrmUser:
    """The user ``wanted`` names: an id, an email, or a name (in full, any case)."""
    for user in users:
        if user.id == wanted or (len(wanted) == 15 and user.id[:15] == wanted):
            return user
    lowered = wanted.strip().lower()
    by_email = [u for u in users if u.email and u.email.lower() == lowered]
    by_name = [u for u in users if u.name and u.name.lower() == lowered]
    matches = by_email or by_name
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        listed = ", ".join(f"{u.id} ({u.email or 'no email'})" for u in matches)
        raise InputError(f"REP: {wanted!r} names {len(matches)} users: {listed}; give an id")
    raise InputError(
        f"REP: no user with the id, email or name {wanted!r} in the store; "
        "run `spm-connector sync` first, or check the spelling"
    )


@dataclass(frozen=True)
class StatementView:
    """A rep's statement for one period, with what makes it readable."""

    rep: CrmUser
    currency: str
    statement: Statement
    year: tuple[Statement, ...]  # the plan's statements of the same year, up to this period
    deal_names: Mapping[str, str]
    team_names: Mapping[str, str] = field(default_factory=dict)  # team id -> what people call it
    locale: str = DEFAULT_LOCALE  # how money reads (spm.yaml's `locale`)
    # The rep's awards (recognition), newest first: (title, period, why).
    awards: tuple[tuple[str, str, str], ...] = ()
    # Notes from the rep's manager (feedback), newest first: (author, when, period, note).
    notes: tuple[tuple[str, str, str, str], ...] = ()

    def money(self, value: Decimal | None) -> str:
        return money(value, self.currency, self.locale)

    @property
    def payout_ytd(self) -> Decimal:
        return sum((s.payout for s in self.year), Decimal(0))

    def lines(self, kind: LineKind) -> list[Line]:
        return [line for line in self.statement.lines if line.kind is kind]

    def deal(self, line: Line) -> str:
        if line.deal_id is None:
            return ""
        name = self.deal_names.get(line.deal_id, "")
        return f"{name} ({line.deal_id})" if name else line.deal_id


def choose(statements: Sequence[Statement], period: str | None, current: str | None) -> Statement:
    """The statement for ``period``; by default the current period's, else the latest."""
    if not statements:
        raise InputError("this rep has no statements in the store: is the rep a plan member?")
    ordered = sorted(statements, key=lambda s: (s.period, s.plan_id))
    if period is not None:
        found = [s for s in ordered if s.period == period]
        if not found:
            known = ", ".join(sorted({s.period for s in ordered}))
            raise InputError(f"--period: no statement for {period}; there are: {known}")
        return found[-1]
    now = [s for s in ordered if current is not None and s.period <= current]
    return (now or ordered)[-1]


def view_of(
    rep: CrmUser,
    statements: Sequence[Statement],
    chosen: Statement,
    currency: str,
    deal_names: Mapping[str, str],
    team_names: Mapping[str, str] | None = None,
    locale: str = DEFAULT_LOCALE,
    awards: Sequence[tuple[str, str, str]] = (),
    notes: Sequence[tuple[str, str, str, str]] = (),
) -> StatementView:
    year = tuple(
        s
        for s in sorted(statements, key=lambda s: s.period)
        if s.plan_id == chosen.plan_id
        and s.period[:4] == chosen.period[:4]
        and s.period <= chosen.period
    )
    return StatementView(
        rep, currency, chosen, year, deal_names, team_names or {}, locale, tuple(awards),
        tuple(notes),
    )  # fmt: skip


def team_names(users: Sequence[CrmUser], team_ids: Collection[str]) -> dict[str, str]:
    """What people call these teams: a team led by a user (a manager's team, as the CRM's
    hierarchy makes them) is that user's ("Dana Reyes's team"); others keep their id."""
    by_id = {user.id: user for user in users}
    return {
        team: f"{by_id[team].name}'s team"
        for team in team_ids
        if team in by_id and by_id[team].name
    }


# -- text ------------------------------------------------------------------------------------


def money_text(value: Decimal | None) -> str:
    """Plain exact money (``1234.50``), where no currency is at hand."""
    return "—" if value is None else format_money(value)


def percent_text(value: Decimal | None) -> str:
    return "—" if value is None else f"{format_money(value * 100)}%"


_METRIC_WORDS = {"revenue": "bookings", "deals_won": "deals won", "new_customers": "new customers"}


@dataclass(frozen=True)
class GoalRow:
    """One goal as a statement shows it: what, whose, how far."""

    name: str  # "deals_won: deals won"
    team: str | None  # "Dana Reyes's team" (or "team <id>") for a team goal
    actual: str
    target: str
    attainment: str
    note: str | None = None  # "split credit": the actual counts shares of split deals
    pace: str = "—"  # projected to the deadline at the rate so far
    deadline: str = ""  # the period's last day, as the goal's due date


MoneyText = Callable[[Decimal | None], str]


def goal_rows(
    statement: Statement, names: Mapping[str, str] | None = None, shown: MoneyText | None = None
) -> list[GoalRow]:
    return [_goal_row(goal, names or {}, shown or money_text) for goal in statement.goals]


def _goal_row(goal: GoalResult, names: Mapping[str, str], shown: MoneyText) -> GoalRow:
    number = shown if goal.metric == "revenue" else _count_text
    words = _METRIC_WORDS.get(goal.metric, goal.metric)
    team = None
    if goal.team_id is not None:
        team = names.get(goal.team_id) or f"team {goal.team_id}"
    # A split deal counts by the rep's share: 3.4 deals won is not a typo.
    split = goal.metric != "revenue" and goal.actual != goal.actual.to_integral_value()
    return GoalRow(
        f"{goal.goal_id}: {words}",
        team,
        number(goal.actual),
        number(goal.target),
        percent_text(goal.attainment),
        "split credit" if split else None,
        _pace_text(goal.pace),
        goal.deadline.isoformat() if goal.deadline else "",
    )


def _pace_text(pace: Decimal | None) -> str:
    """The goal's pace and what it means: on pace from 100 %."""
    if pace is None:
        return "—"
    return f"{percent_text(pace)} ({'on pace' if pace >= 1 else 'behind'})"


def _count_text(value: Decimal | None) -> str:
    return "—" if value is None else format_count(value)


def kpi_rows(statement: Statement, shown: MoneyText | None = None) -> list[tuple[str, str]]:
    """The coaching KPIs, labelled, in the order a manager reads them."""
    s, money = statement, shown or money_text
    coverage = "—" if s.pipeline_coverage is None else f"{format_money(s.pipeline_coverage)}×"
    rows = [
        ("Won / lost", f"{s.won_count} / {s.lost_count}"),
        ("Win rate", percent_text(s.win_rate)),
        ("Average deal size", money(s.average_deal_size)),
        (
            "Sales cycle",
            "—" if s.sales_cycle_days is None else f"{format_days(s.sales_cycle_days)} days",
        ),
        ("Open pipeline", money(s.open_pipeline)),
        ("Pipeline coverage", coverage),
        ("Pace", percent_text(s.pace)),
        ("To the next tier", money(s.to_next_tier)),
    ]
    if s.lead_to_sale is not None:
        rows.append(("Lead to sale", percent_text(s.lead_to_sale)))
    return rows


def text(view: StatementView) -> str:
    """The statement in plain text, every line at most 80 characters."""
    s, c = view.statement, view.currency
    out: list[str] = []
    title = f"Statement: {view.rep.name or view.rep.id}"
    out.append(title)
    out.append("=" * min(len(title), WIDTH))
    out.append(f"Rep {view.rep.id}  {view.rep.email}".rstrip())
    out.append(f"Plan {s.plan_id}, period {s.period}, amounts in {c}")
    out.append("")
    rows = [
        ("Quota", view.money(s.quota)),
        ("Bookings", view.money(s.bookings)),
        ("Attainment", percent_text(s.attainment)),
        ("Commission", view.money(s.commission)),
        ("SPIFFs", view.money(s.spiffs)),
        ("Bonuses", view.money(s.bonuses)),
        *([("Overrides", view.money(s.overrides))] if s.overrides else []),
        ("Clawbacks", view.money(s.clawbacks)),
        *([("Adjustments", view.money(s.adjustments))] if _adjusted(view) else []),
        *([("Held back (net)", view.money(s.holdback))] if s.holdback or s.held_back else []),
        ("Earnings", view.money(s.earnings)),
        ("Draw paid", view.money(s.draw_paid)),
        ("Draw recovered", view.money(s.draw_recovered)),
        ("Draw balance owed", view.money(s.draw_balance)),
        ("Payout", view.money(s.payout)),
        (f"Payout, year to date ({s.period[:4]})", view.money(view.payout_ytd)),
    ]
    label_width = max(len(label) for label, _ in rows)
    for label, value in rows:
        out.append(f"  {label:<{label_width}}  {value:>16}")
    for kind, heading in (
        (LineKind.COMMISSION, "Commission by deal"),
        (LineKind.SPIFF, "SPIFFs"),
        (LineKind.BONUS, "Bonuses"),
        (LineKind.OVERRIDE, "Overrides"),
        (LineKind.CLAWBACK, "Clawbacks"),
        (LineKind.ADJUSTMENT, "Adjustments"),
        (LineKind.HOLDBACK, "Holdback"),
    ):
        lines = view.lines(kind)
        if not lines:
            continue
        out.append("")
        out.append(heading)
        for line in lines:
            out.extend(_text_line(view, line))
    goals = goal_rows(s, view.team_names, view.money)
    if goals:
        out.append("")
        out.append("Goals")
        width = min(max(len(g.name) for g in goals), WIDTH - 4 - 2 * 14 - 10 - 6)
        for g in goals:
            name = textwrap.shorten(g.name, width=width, placeholder="…")
            out.append(f"  {name:<{width}}  {g.actual:>14} of {g.target:>14}  {g.attainment:>9}")
            due = f"pace {g.pace}, due {g.deadline}" if g.deadline else None
            said = " · ".join(part for part in (g.team, g.note, due) if part)
            if said:
                out.append(f"    {said}")
    if view.awards:
        out.append("")
        out.append("Awards")
        for title, period, said in view.awards:
            out.extend(textwrap.wrap(f"{title} ({period}): {said}", WIDTH - 2,
                                     initial_indent="  ", subsequent_indent="    "))  # fmt: skip
    if view.notes:
        out.append("")
        out.append("Notes")
        for author, at, period, note in view.notes:
            out.append(f"  {author}, {at[:16].replace('T', ' ')} (about {period}):")
            out.extend(textwrap.wrap(note, WIDTH - 4, initial_indent="    ",
                                     subsequent_indent="    "))  # fmt: skip
    out.append("")
    out.append("Performance")
    kpis = kpi_rows(s, view.money)
    kpi_width = max(len(label) for label, _ in kpis)
    for label, value in kpis:
        out.append(f"  {label:<{kpi_width}}  {value:>16}")
    return "\n".join(line[:WIDTH] for line in out) + "\n"


def _adjusted(view: StatementView) -> bool:
    """Whether the statement has adjustments to show (most never do)."""
    return bool(view.statement.adjustments or view.lines(LineKind.ADJUSTMENT))


def _text_line(view: StatementView, line: Line) -> list[str]:
    amount = f"{view.money(line.amount):>14}"
    detail = line.rule
    if line.rate is not None:
        detail = f"{percent_text(line.rate)} of {view.money(line.credit)}, {detail}"
    if line.kind is LineKind.CLAWBACK and line.paid_period:
        detail = f"paid in {line.paid_period}; {detail}"
    first = view.deal(line) or detail
    rest = detail if view.deal(line) else ""
    head = textwrap.shorten(first, width=WIDTH - 4 - 14 - 2, placeholder="…")
    lines = [f"  {head:<{WIDTH - 4 - 14 - 2}}  {amount}"]
    for part in textwrap.wrap(rest, width=WIDTH - 6):
        lines.append(f"    {part}")
    return lines


# -- HTML ------------------------------------------------------------------------------------


def _environment(shown: MoneyText) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(("html",))
    )
    environment.filters["money"] = shown
    environment.filters["percent"] = percent_text
    return environment


@dataclass(frozen=True)
class ReviewPanel:
    """What the rep's own page adds to a statement: its status and the rep's actions."""

    action: str  # where the forms post: the rep's link
    status: str  # preliminary | closed | paid
    periods: Sequence[str]  # the rep's periods, newest last
    acknowledged_at: str | None
    history: Sequence[str]  # the rep's disputes of this statement and their answers
    notice: str = ""

    def lines(self, statement: Statement) -> list[tuple[int, str]]:
        """Each line a dispute can name, by position."""
        return [
            (n, f"{line.kind.value} {line.deal_id or ''} {line.amount}".replace("  ", " "))
            for n, line in enumerate(statement.lines)
        ]


@dataclass(frozen=True)
class NoteForm:
    """Where a manager's note for the rep is posted from the reports page."""

    action: str
    csrf: str


def html(
    view: StatementView, review: ReviewPanel | None = None, note_form: NoteForm | None = None
) -> str:
    """One self-contained, printable page: no script, no external file. With ``review``,
    the rep's own page: the period's status, acknowledge and dispute; with ``note_form``,
    the reports page's, where a manager leaves the rep a note."""
    template = _environment(view.money).get_template("statement.html")
    return template.render(
        review=review,
        note_form=note_form,
        v=view,
        s=view.statement,
        bars=_attainment_bars(view.year),
        target=reference_line(view.year),
        kinds=LineKind,
        goals=goal_rows(view.statement, view.team_names, view.money),
        kpis=kpi_rows(view.statement, view.money),
    )


@dataclass(frozen=True)
class Bar:
    period: str
    height: float  # 0..1 of the chart's height
    label: str
    current: bool


def _attainment_bars(year: Sequence[Statement]) -> list[Bar]:
    """Attainment per period, scaled so 150 % (or the best period) fills the chart."""
    top = _chart_top(year)
    last = year[-1].period if year else ""
    return [
        Bar(
            s.period,
            float((s.attainment or Decimal(0)) / top),
            percent_text(s.attainment),
            s.period == last,
        )
        for s in year
    ]


def reference_line(year: Sequence[Statement]) -> float:
    """Where 100 % attainment falls on the chart, as a share of its height."""
    return float(Decimal(1) / _chart_top(year))


def _chart_top(year: Sequence[Statement]) -> Decimal:
    return max([Decimal("1.5"), *(s.attainment or Decimal(0) for s in year)])
