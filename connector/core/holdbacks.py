"""Holdbacks: a share of each period's commission held until the quarter's or the
year's end (or the rep's last period on the plan), then released in one line;
or, with ``release: payment``, a share of each deal's commission held until the
customer pays (the deal's ``paid_on`` date), then released deal by deal.

Computed in pass 4, like the draw, from the period's commission after the cap:
SPIFFs, bonuses, clawbacks and adjustments are not held (nor, for a payment
holdback, a true-up, which belongs to no deal). A closed period's held balance
opens the next period, as its draw balance does; a payment holdback's lines name
their deal, so a closed statement says what each deal still holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from decimal import Decimal

from connector.core.commission import percent_text
from connector.core.models import Deal, Line, LineKind
from connector.core.money import ZERO, format_money, round_cents
from connector.core.periods import PeriodKind, label
from connector.core.plans import Holdback, Release
from connector.errors import CalculationError

_WORDS = {
    Release.QUARTER_END: "the quarter's end",
    Release.YEAR_END: "the year's end",
    Release.PAYMENT: "the customer pays",
}


def releases(holdback: Holdback, period: int, kind: PeriodKind) -> bool:
    """Whether ``period`` ends the quarter or the year the holdback waits for (never for
    a payment holdback: its deals are released one by one)."""
    if holdback.release is Release.PAYMENT:
        return False
    text = label(period, kind)
    if kind is PeriodKind.MONTH:
        month = int(text[5:7])
        return month == 12 if holdback.release is Release.YEAR_END else month % 3 == 0
    return text.endswith("Q4") if holdback.release is Release.YEAR_END else True


def hold(
    holdback: Holdback | None, commission: Decimal, held: Decimal, release: bool
) -> tuple[list[Line], Decimal]:
    """The period's holdback lines and the balance held after it.

    ``held`` is the balance before the period; with ``release`` all of it (this
    period's share too) comes back in one line.
    """
    if holdback is None:
        return [], held
    lines: list[Line] = []
    if commission > 0:
        amount = round_cents(commission * holdback.share)
        if amount:
            rule = (
                f"holdback: {percent_text(holdback.share)} of commission held until "
                f"{_WORDS[holdback.release]}"
            )
            lines.append(Line(LineKind.HOLDBACK, None, -amount, holdback.share, rule))
            held += amount
    if release and held != ZERO:
        lines.append(
            Line(LineKind.HOLDBACK, None, held, None, f"holdback released: {format_money(held)}")
        )
        held = ZERO
    return lines, held


def hold_deals(
    holdback: Holdback,
    lines: Sequence[Line],
    held: dict[str, Decimal],
    released: Callable[[str], str | None],
) -> list[Line]:
    """A payment holdback's lines for one period; ``held`` (by deal) is updated.

    ``share`` of each deal's commission line is held; then every deal still held
    that ``released`` gives a reason for (paid, cancelled, the rep's last period)
    is released in full.
    """
    out: list[Line] = []
    for line in lines:
        if line.kind is not LineKind.COMMISSION or line.deal_id is None or line.amount <= 0:
            continue
        amount = round_cents(line.amount * holdback.share)
        if amount:
            rule = (
                f"holdback: {percent_text(holdback.share)} of commission held until "
                f"deal {line.deal_id} is paid ({holdback.paid_on})"
            )
            out.append(Line(LineKind.HOLDBACK, line.deal_id, -amount, holdback.share, rule))
            held[line.deal_id] = held.get(line.deal_id, ZERO) + amount
    for deal_id in sorted(held):
        why = released(deal_id)
        if why is not None:
            amount = held.pop(deal_id)
            if amount:
                out.append(
                    Line(LineKind.HOLDBACK, deal_id, amount, None, f"holdback released: {why}")
                )
    return out


def held_by_deal(lines: Iterable[Line]) -> dict[str, Decimal]:
    """What a closed statement's payment-holdback lines leave held, by deal."""
    held: dict[str, Decimal] = {}
    for line in lines:
        if line.kind is LineKind.HOLDBACK and line.deal_id is not None:
            held[line.deal_id] = held.get(line.deal_id, ZERO) - line.amount
    return {deal_id: amount for deal_id, amount in held.items() if amount}


def paid_day(deal: Deal, column: str) -> date | None:
    """The day the deal's ``column`` says the customer paid; None while it is empty.

    Raises :class:`CalculationError` naming the deal for a value that is not a date.
    """
    text = (deal.properties.get(column) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise CalculationError(
            f"deal {deal.id}: {column} {text!r} is not a date (YYYY-MM-DD); the payment "
            "holdback reads it"
        ) from None
