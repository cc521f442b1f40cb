"""The draw ledger: one period's step from earnings and the opening balance.

The formulas are those of calculation.md, "Earnings, draws and payout":

    Ep = max(E, 0);  deficit = max(-E, 0)
    top_up = max(D - Ep, 0);  advance = top_up if recoverable else 0
    excess = max(Ep - D, 0);  recovery = min(B0, round(recovery_cap × excess))
    payout = Ep + top_up - recovery;  B1 = B0 - recovery + advance + deficit

A plan without a draw block still runs the ledger (``D = 0``, recovery cap 1)
so that a clawback deficit is owed and recovered from later earnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from connector.core.money import ONE, ZERO, round_cents
from connector.core.plans import Draw, DrawType


@dataclass(frozen=True, slots=True)
class DrawStep:
    draw: Decimal  # D
    paid: Decimal  # top_up
    advanced: Decimal  # advance: what becomes owed
    recovered: Decimal
    payout: Decimal
    balance: Decimal  # B1


def draw_for_period(draw: Draw | None, k: int) -> Decimal:
    """``D`` for a member's ``k``-th period on the plan."""
    if draw is None or (draw.periods is not None and k > draw.periods):
        return ZERO
    return draw.amount


def step(draw: Draw | None, k: int, earnings: Decimal, opening: Decimal) -> DrawStep:
    amount = draw_for_period(draw, k)
    recoverable = draw is not None and draw.type is DrawType.RECOVERABLE
    recovery_cap = draw.recovery_cap if draw is not None else ONE
    positive = max(earnings, ZERO)
    deficit = max(-earnings, ZERO)
    top_up = max(amount - positive, ZERO)
    advance = top_up if recoverable else ZERO
    excess = max(positive - amount, ZERO)
    recovery = min(opening, round_cents(recovery_cap * excess))
    return DrawStep(
        draw=amount,
        paid=top_up,
        advanced=advance,
        recovered=recovery,
        payout=positive + top_up - recovery,
        balance=opening - recovery + advance + deficit,
    )
