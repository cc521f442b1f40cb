"""``explain``: why each figure of a statement is what it is, for a person checking it.

The statement's inputs come first (the period's status, the as-of date and the
plan version it was computed with, each deal as it stood), then every figure
with the lines or the formula behind it, then what happened to the statement
in the pay cycle. Closed periods are explained from what was closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from connector.core.models import Deal, LineKind, Statement
from connector.core.money import format_fraction, format_money


@dataclass(frozen=True)
class Explanation:
    statement: Statement
    rep_name: str
    status: str  # preliminary | closed | paid
    as_of: str  # the date the figures were computed for
    plan_version: str  # a fingerprint of the plan's rules
    deals: Mapping[str, Deal]  # each deal on a line, as it stood (as closed, when closed)
    history: Sequence[str]  # the pay cycle's events for this rep and period, oldest first


def explain(e: Explanation) -> str:
    s = e.statement
    out = [
        f"{e.rep_name or s.rep_id} ({s.rep_id}), plan {s.plan_id}, period {s.period}: {e.status}",
        f"computed as of {e.as_of} with plan version {e.plan_version}",
        "",
        "Deals behind the lines (as they stood):",
    ]
    for deal_id in sorted(e.deals):
        d = e.deals[deal_id]
        splits = ", ".join(f"{sp.rep_id} {sp.percent}%" for sp in d.splits) or "no splits"
        cancelled = f", cancelled {d.cancel_date}" if d.cancel_date else ""
        out.append(
            f"  {d.id}: {d.status.value}, {format_money(d.amount)} closed {d.close_date}, "
            f"owner {d.owner_id}, {splits}{cancelled}"
        )
    if not e.deals:
        out.append("  (none)")
    out.append("")
    quota = format_money(s.quota) if s.quota is not None else "none"
    attainment = format_fraction(s.attainment) if s.attainment is not None else "n/a"
    out.append(
        f"bookings {format_money(s.bookings)} against quota {quota}: attainment {attainment}"
    )
    for kind, figure in (
        (LineKind.COMMISSION, "commission"),
        (LineKind.SPIFF, "spiffs"),
        (LineKind.BONUS, "bonuses"),
        (LineKind.OVERRIDE, "overrides"),
        (LineKind.CLAWBACK, "clawbacks"),
        (LineKind.ADJUSTMENT, "adjustments"),
        (LineKind.HOLDBACK, "holdback"),
    ):
        lines = [line for line in s.lines if line.kind is kind]
        out.append(f"{figure} {format_money(getattr(s, figure))} = the sum of {len(lines)} line(s)")
        for line in lines:
            base = ""
            if line.rate is not None and line.credit is not None:
                base = f"{format_fraction(line.rate)} of {format_money(line.credit)}; "
            where = f" [{line.paid_period}]" if line.paid_period else ""
            out.append(
                f"  {line.deal_id or '-'}: {format_money(line.amount)} ({base}{line.rule}){where}"
            )
    out += [
        f"earnings {format_money(s.earnings)} = commission + spiffs + bonuses + overrides"
        " + clawbacks + adjustments + holdback",
        f"draw {format_money(s.draw)}: paid {format_money(s.draw_paid)} "
        f"(advanced {format_money(s.draw_advanced)}), "
        f"recovered {format_money(s.draw_recovered)}, forgiven {format_money(s.draw_forgiven)}, "
        f"balance owed after {format_money(s.draw_balance)}",
        f"payout {format_money(s.payout)} = max(earnings, 0) + draw paid - recovered",
        "",
        "Pay cycle:",
        *(f"  {said}" for said in e.history),
    ]
    if not e.history:
        out.append("  (nothing yet)")
    return "\n".join(out) + "\n"
