"""The pay cycle's part of the calculation: closed periods and adjustments.

A closed period's statements are frozen: the engine returns them as they were
closed, whatever the CRM says now. What a late change would have altered in a
closed period becomes *adjustment lines* in the rep's first open period: per
deal, the recomputed closed-period amount less what was closed and less what
earlier adjustments already carried for that period and deal. Summed over
every period, closed figures plus adjustments equal the recomputation to the
cent (tests/test_closing.py holds that as a property).

Manual adjustments (``spm-connector adjust``) are lines of the period they
were entered for; a reversal is a second adjustment of the opposite amount.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from connector.core.models import Deal, Line, LineKind, Statement
from connector.core.money import ZERO, format_money
from connector.core.periods import PeriodKind, label, parse_label

_ADJUSTMENT = LineKind.ADJUSTMENT

# A period's status, as the rep's period-status field shows it.
PRELIMINARY = "preliminary"  # open: figures move with the CRM
CLOSED = "closed"  # frozen; late changes become adjustments in the next open period
PAID = "paid"  # closed and exported to payroll


@dataclass(frozen=True, slots=True)
class ManualAdjustment:
    """An amount entered by hand for one rep, plan and open period, with its reason."""

    id: int
    rep_id: str
    plan_id: str
    period: str
    amount: Decimal
    reason: str
    author: str
    reverses: int | None = None  # the adjustment this one reverses
    at: str = ""  # when it was entered (the day is shown)

    def line(self) -> Line:
        what = f"reverses adjustment #{self.reverses}: " if self.reverses is not None else ""
        who = f" ({self.author}, {self.at[:10]})" if self.at else f" ({self.author})"
        return Line(_ADJUSTMENT, None, self.amount, None, f"#{self.id} {what}{self.reason}{who}")


class Books:
    """What the pay cycle has fixed, as the calculation needs it.

    ``closed_through`` is the latest closed period (periods close oldest first, so
    every period up to it is closed); ``statements`` the closed statements by (rep,
    plan, period); ``deals`` each deal as the latest close that paid it saw it, for
    the reasons on adjustment lines (a mapping, or a function that looks deals up by
    id: most recomputes need none, and a large org has many); ``adjustments`` every
    manual adjustment.
    """

    def __init__(
        self,
        closed_through: str | None = None,
        statements: Iterable[Statement] = (),
        deals: Mapping[str, Deal] | Callable[[Collection[str]], Mapping[str, Deal]] | None = None,
        adjustments: Sequence[ManualAdjustment] = (),
    ) -> None:
        self.closed_through = closed_through
        self._deals = deals if deals is not None else {}
        self.adjustments = tuple(adjustments)
        self._by_rep: dict[str, list[Statement]] = {}
        self._closed: dict[tuple[str, str, str], Statement] = {}
        for statement in statements:
            self._by_rep.setdefault(statement.rep_id, []).append(statement)
            self._closed[statement.rep_id, statement.plan_id, statement.period] = statement
        self._manual: dict[tuple[str, str, str], list[Line]] = {}
        for adjustment in sorted(self.adjustments, key=lambda a: a.id):
            key = (adjustment.rep_id, adjustment.plan_id, adjustment.period)
            self._manual.setdefault(key, []).append(adjustment.line())

    def deals(self, deal_ids: Collection[str]) -> Mapping[str, Deal]:
        """These deals as the latest close that paid them saw them (those it knows)."""
        if callable(self._deals):
            return self._deals(deal_ids)
        return {d: self._deals[d] for d in deal_ids if d in self._deals}

    def closed(self, kind: PeriodKind) -> int | None:
        """The latest closed period as an ordinal, or None when none is closed."""
        return None if self.closed_through is None else parse_label(self.closed_through, kind)

    def all(self) -> list[Statement]:
        """Every closed statement held."""
        return [s for statements in self._by_rep.values() for s in statements]

    def reps(self) -> set[str]:
        """Every rep with a closed statement."""
        return set(self._by_rep)

    def closed_statement(self, rep_id: str, plan_id: str, period: str) -> Statement | None:
        return self._closed.get((rep_id, plan_id, period))

    def of_rep(self, rep_id: str) -> list[Statement]:
        """The rep's closed statements."""
        return self._by_rep.get(rep_id, [])

    def manual(self, rep_id: str, plan_id: str, period: str) -> list[Line]:
        """The manual adjustment lines of one rep, plan and period, oldest first."""
        return self._manual.get((rep_id, plan_id, period), [])


NO_BOOKS = Books()


def late_changes(
    rep_id: str,
    recomputed: Mapping[int, Iterable[Line]],
    books: Books,
    kind: PeriodKind,
    deals_now: Mapping[str, Deal],
) -> list[Line]:
    """The adjustment lines a rep's closed periods owe, oldest period first.

    ``recomputed`` holds, per closed period, the lines the current data gives that
    period on every one of the rep's plans (commission, SPIFFs, bonuses,
    clawbacks; never adjustments, which the recomputation does not make).
    """
    closed_through = books.closed(kind)
    if closed_through is None:
        return []
    frozen: dict[int, dict[str | None, Decimal]] = {}
    carried: dict[tuple[str, str | None], Decimal] = {}
    for statement in books.of_rep(rep_id):
        for line in statement.lines:
            if line.kind is LineKind.HOLDBACK:
                continue  # derived in pass 4 from the period's commission, like the draw
            if line.kind is not _ADJUSTMENT:
                period = parse_label(statement.period, kind)
                bucket = frozen.setdefault(period, {})
                deal_id = _bucket(line)
                bucket[deal_id] = bucket.get(deal_id, ZERO) + line.amount
            elif line.paid_period is not None:  # a late change already carried
                key = (line.paid_period, line.deal_id)
                carried[key] = carried.get(key, ZERO) + line.amount
    carried_periods = {parse_label(period, kind) for period, _ in carried}
    periods = set(frozen) | carried_periods | {p for p in recomputed if p <= closed_through}
    differences: list[tuple[str, str | None, Decimal]] = []
    for period in sorted(periods):
        now: dict[str | None, Decimal] = {}
        for line in recomputed.get(period, ()):
            deal_id = _bucket(line)
            now[deal_id] = now.get(deal_id, ZERO) + line.amount
        was = frozen.get(period, {})
        closed_label = label(period, kind)
        before = {deal_id for period_label, deal_id in carried if period_label == closed_label}
        buckets = now.keys() | was.keys() | before
        for deal_id in sorted(buckets, key=lambda d: (d is None, d or "")):
            difference = (
                now.get(deal_id, ZERO)
                - was.get(deal_id, ZERO)
                - carried.get((closed_label, deal_id), ZERO)
            )
            if difference:
                differences.append((closed_label, deal_id, difference))
    then = books.deals({deal_id for _, deal_id, _ in differences if deal_id is not None})
    adjustments: list[Line] = []
    for closed_label, deal_id, difference in differences:
        rule = _reason(deal_id, then.get(deal_id or ""), deals_now.get(deal_id or ""))
        adjustments.append(
            Line(
                _ADJUSTMENT,
                deal_id,
                difference,
                None,
                f"late change to closed {closed_label}: {rule}",
                paid_period=closed_label,
            )
        )
    return adjustments


def _bucket(line: Line) -> str | None:
    """The deal a line's late change is carried for: its own, except for a manager's
    override, which is carried with the bonuses (the deal's own commission fields must
    not take a manager's override)."""
    return None if line.kind is LineKind.OVERRIDE else line.deal_id


def _reason(deal_id: str | None, before: Deal | None, now: Deal | None) -> str:
    """What changed on a deal since its period closed, as a person would say it."""
    if deal_id is None:
        return "bonuses, goals, overrides and true-ups recomputed"
    if now is None:
        return f"deal {deal_id} is no longer credited"
    if before is None:
        return f"deal {deal_id} now counts there (closed {now.close_date}, {now.status.value})"
    changes: list[str] = []
    if before.amount != now.amount:
        changes.append(f"amount changed {format_money(before.amount)} → {format_money(now.amount)}")
    if before.close_date != now.close_date:
        changes.append(f"close date moved {before.close_date} → {now.close_date}")
    if before.owner_id != now.owner_id:
        changes.append(f"owner changed {before.owner_id} → {now.owner_id}")
    if sorted(before.splits) != sorted(now.splits):
        changes.append("splits changed")
    if before.status != now.status:
        changes.append(f"status {before.status.value} → {now.status.value}")
    if before.cancel_date != now.cancel_date and now.cancel_date is not None:
        changes.append(f"cancelled {now.cancel_date}")
    said = "; ".join(changes) or "recomputed (its tier position moved)"
    return f"deal {deal_id} {said}"


def adjustments_total(lines: Iterable[Line]) -> Decimal:
    return sum((line.amount for line in lines if line.kind is _ADJUSTMENT), ZERO)
