"""Holdbacks: a share of each period's commission held until the quarter's or the
year's end (or the rep's last period on the plan), then released in one line.

Computed in pass 4, like the draw, from the period's commission after the cap:
SPIFFs, bonuses, clawbacks and adjustments are not held. A closed period's
held balance opens the next period, as its draw balance does.
"""

from __future__ import annotations

from decimal import Decimal

from connector.core.commission import percent_text
from connector.core.models import Line, LineKind
from connector.core.money import ZERO, format_money, round_cents
from connector.core.periods import PeriodKind, label
from connector.core.plans import Holdback, Release

_WORDS = {Release.QUARTER_END: "the quarter's end", Release.YEAR_END: "the year's end"}


def releases(holdback: Holdback, period: int, kind: PeriodKind) -> bool:
    """Whether ``period`` ends the quarter or the year the holdback waits for."""
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
