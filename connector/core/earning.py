"""A rep-period's commission and SPIFF lines under the plan's rules.

The tiers (held at a lower rate while a gate is closed), per-deal multipliers,
a decelerator below an attainment threshold, then the cap: one place, used by
the statements and by the estimates of open deals, so an estimate meets exactly
the rules a real close would.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from connector.core.commission import (
    Adjuster,
    Credit,
    Schedule,
    commission_lines,
    deal_matcher,
    percent_text,
    spiff_lines,
)
from connector.core.currency import FX
from connector.core.models import Deal, Line
from connector.core.money import ONE, ZERO
from connector.core.plans import Commission, Gate, Plan

# Tier bounds resolved once per (plan, quota, gate closed).
Schedules = dict[tuple[int, Decimal | None, bool], Schedule]


def gate_closed(gate: Gate | None, attainment: Decimal | None) -> bool:
    """Whether the gate holds its tiers back: its goal is below ``at`` (or has no target)."""
    return gate is not None and (attainment is None or attainment < gate.at)


def earned_lines(
    plan: Plan,
    quota: Decimal | None,
    credits: Sequence[Credit],
    gate_attainment: Decimal | None,
    schedules: Schedules,
) -> tuple[list[Line], Schedule]:
    """Commission and SPIFF lines of one rep-period, and the tier schedule they used.

    ``plan`` is the version in force; ``gate_attainment`` the attainment of the goal
    the plan's gate names (None when it has none, or no target).
    """
    commission = plan.commission
    closed = gate_closed(commission.gate, gate_attainment)
    key = (id(plan), quota, closed)
    schedule = schedules.get(key)
    if schedule is None:
        schedule = schedules[key] = Schedule.build(commission, quota, gate_closed=closed)
    bookings = sum((credit.amount for credit in credits), ZERO)
    lines = commission_lines(credits, schedule, adjuster(commission, bookings, quota))
    converted = {c.deal.id: c.deal.properties[FX] for c in credits if FX in c.deal.properties}
    if converted:  # say what a deal in another currency was, on its line
        lines = [
            line._replace(rule=f"{line.rule}; {converted[line.deal_id]}")
            if line.deal_id in converted
            else line
            for line in lines
        ]
    lines += spiff_lines(credits, plan.spiffs)
    return lines, schedule


def adjuster(commission: Commission, bookings: Decimal, quota: Decimal | None) -> Adjuster | None:
    """Each deal's factor on its commission: its matching multipliers, and the
    decelerator when the period's attainment stays below its threshold."""
    decelerator = commission.decelerator
    slowed = (
        decelerator is not None
        and quota is not None
        and quota > 0
        and bookings < decelerator.below * quota
    )
    if not commission.multipliers and not slowed:
        return None
    multipliers = [
        (deal_matcher(m.when), m.factor, "multiplier " + _condition(m.when))
        for m in commission.multipliers
    ]
    slow = (
        (decelerator.factor, f"decelerator: attainment below {percent_text(decelerator.below)}")
        if slowed and decelerator is not None
        else None
    )

    def adjust(deal: Deal) -> tuple[Decimal, str] | None:
        factor, why = ONE, []
        for matches, by, said in multipliers:
            if matches(deal):
                factor *= by
                why.append(said)
        if slow is not None:
            factor *= slow[0]
            why.append(slow[1])
        return (factor, "; ".join(why)) if why else None

    return adjust


def _condition(when: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in when.items())
