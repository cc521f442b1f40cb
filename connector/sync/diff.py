"""Statements → the values our CRM fields should hold, and the minimal writes.

Values are compared as canonical text (:mod:`connector.values`), the form
adapters turn what they read from the CRM into, so a second sync with nothing
new writes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from connector.fields import CATALOGUE, RecordKind
from connector.models import STATEMENT_FIGURES, LineKind, Statement
from connector.money import ZERO, format_money
from connector.values import canonical, canonical_fraction

Values = dict[str, str | None]

DEAL_KEYS = tuple(spec.key for spec in CATALOGUE if spec.record is RecordKind.DEAL)
REP_KEYS = tuple(spec.key for spec in CATALOGUE if spec.record is RecordKind.REP)
# Rep fields that hold one figure of the current statement, under the figure's own name.
_FIGURE_KEYS = tuple(key for key in REP_KEYS if key in dict(STATEMENT_FIGURES))


def deal_values(statements: Iterable[Statement], deal_ids: Collection[str]) -> dict[str, Values]:
    """Desired deal fields for ``deal_ids``, from every statement that credits them.

    A deal with no commission line (open, lost, not a member's) gets empty
    fields, so values written while it was won are cleared.
    """
    commission: dict[str, Decimal] = {}
    credit: dict[str, Decimal] = {}
    period: dict[str, str] = {}
    clawback: dict[str, Decimal] = {}
    wanted = set(deal_ids)
    for statement in statements:
        for line in statement.lines:
            deal_id = line.deal_id
            if deal_id is None or deal_id not in wanted:
                continue
            if line.kind is LineKind.COMMISSION:
                commission[deal_id] = commission.get(deal_id, ZERO) + line.amount
                credit[deal_id] = credit.get(deal_id, ZERO) + (line.credit or ZERO)
                period[deal_id] = statement.period
            elif line.kind is LineKind.CLAWBACK:
                clawback[deal_id] = clawback.get(deal_id, ZERO) + line.amount
    result: dict[str, Values] = {}
    for deal_id in wanted:
        if deal_id not in commission:
            result[deal_id] = dict.fromkeys(DEAL_KEYS)
            continue
        total_credit = credit[deal_id]
        rate = (
            canonical_fraction("commission_rate", commission[deal_id] / total_credit)
            if total_credit
            else None
        )
        result[deal_id] = {
            "commission": format_money(commission[deal_id]),
            "commission_rate": rate,
            "commission_period": period[deal_id],
            "clawback": format_money(clawback.get(deal_id, ZERO)),
        }
    return result


def rep_values(statements: Sequence[Statement], as_of_period: str) -> dict[str, Values]:
    """Desired rep fields: the as-of period's statement (or the rep's last) and year to date.

    ``updated_at`` is left out: it is stamped only on reps whose other values
    change, or every sync would rewrite every rep.
    """
    by_rep: dict[str, list[Statement]] = {}
    for statement in statements:
        by_rep.setdefault(statement.rep_id, []).append(statement)
    result: dict[str, Values] = {}
    for rep_id, history in by_rep.items():
        history.sort(key=lambda s: (s.period, s.plan_id))
        current_candidates = [s for s in history if s.period <= as_of_period]
        current = (current_candidates or history)[-1]
        year = current.period[:4]
        this_year = [s for s in history if s.period[:4] == year and s.period <= current.period]
        ytd = sum((s.payout for s in this_year), ZERO)
        values: Values = {"period": current.period}
        for key in _FIGURE_KEYS:
            values[key] = canonical(key, getattr(current, key))
        values["payout_ytd"] = format_money(ytd)
        result[rep_id] = values
    return result


@dataclass(frozen=True)
class PlannedWrite:
    """One field to change on one record, for dry-run output and the summary."""

    record: RecordKind
    record_id: str
    key: str
    before: str | None
    after: str | None


def changes(
    record: RecordKind,
    pending: Mapping[str, Mapping[str, str | None]],
    current: Mapping[tuple[str, str], str | None],
) -> list[PlannedWrite]:
    """Pending desired values as a sorted list of before → after changes."""
    return [
        PlannedWrite(record, record_id, key, current.get((record_id, key)), value)
        for record_id in sorted(pending)
        for key, value in sorted(pending[record_id].items())
    ]
