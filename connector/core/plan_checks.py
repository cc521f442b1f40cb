"""Checks across plans: the deal columns they name, and members on two plans at once."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date

from connector.core.plans import Plan, member_key

# Deal columns every source has (the Deal record's own fields), and those a filter cannot
# compare as text (amounts and dates are not matched by `when`).
DEAL_ATTRIBUTES = frozenset({"type", "status", "currency", "owner_id", "id"})
UNFILTERABLE = frozenset({"amount", "close_date", "cancel_date", "created_date"})


def named_deal_columns(plans: Iterable[Plan], own: Collection[str] = ()) -> tuple[str, ...]:
    """The deal columns the plans name (goal, SPIFF and multiplier filters, a payment
    holdback's date) beyond every deal's own and ``own`` (those a CRM reads anyway):
    what a CRM adapter reads besides, in order of first mention."""
    named: list[str] = []
    for plan in plans:
        rules = [plan, *(plan.in_force(v.effective_from) for v in plan.versions)]
        for rule in rules:
            filters = [goal.when for goal in rule.goals] + [spiff.when for spiff in rule.spiffs]
            filters += [m.when for m in rule.commission.multipliers]
            keys = [key for when in filters for key in when]
            if rule.holdback is not None and rule.holdback.paid_on is not None:
                keys.append(rule.holdback.paid_on)
            named += [k for k in keys if k not in DEAL_ATTRIBUTES and k not in own]
    return tuple(dict.fromkeys(named))


def filter_problems(plans: Sequence[Plan], columns: Collection[str], source: str) -> list[str]:
    """Goal filters (``when``) that name no deal column of ``source``, with their paths.

    A filter on a missing column matches nothing, silently: a goal that can never
    be met. Column names are compared as written (CRM property names are exact).
    """
    known = DEAL_ATTRIBUTES | (set(columns) - UNFILTERABLE)
    problems: list[str] = []
    for index, plan in enumerate(plans):
        for number, goal in enumerate(plan.goals):
            for key in goal.when:
                if key not in known:
                    listing = ", ".join(sorted(known))
                    problems.append(
                        f"plans[{index}].goals[{number}].when.{key}: names no deal column of "
                        f"{source} (known: {listing})"
                    )
    return problems


def membership_overlaps(plans: Iterable[Plan]) -> list[str]:
    """Members listed in two plans that cover a common day, as error messages."""
    problems: list[str] = []
    seen: dict[str, list[Plan]] = {}
    for plan in plans:
        for member in plan.members:
            key = member_key(member)
            for other in seen.get(key, []):
                if _overlap(plan, other):
                    problems.append(
                        f"member {member} is in plans {other.id} and {plan.id}, "
                        "which cover the same days"
                    )
            seen.setdefault(key, []).append(plan)
    return problems


def _overlap(a: Plan, b: Plan) -> bool:
    a_end = a.end or date.max
    b_end = b.end or date.max
    return a.start <= b_end and b.start <= a_end
