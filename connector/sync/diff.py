"""Statements → the values our CRM fields should hold, and the minimal writes.

Values are compared as *canonical text* (money ``"1234.50"``, fractions with a
fixed number of places, ISO datetimes), the same form adapters turn what they
read from the CRM into, so "nothing changed" is a plain string comparison and
a second sync with nothing new writes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from connector.fields import CATALOGUE, FieldSpec, RecordKind, ValueKind
from connector.models import LineKind, Statement
from connector.money import ZERO, format_money, ratio

Values = dict[str, str | None]

DEAL_KEYS = tuple(spec.key for spec in CATALOGUE if spec.record is RecordKind.DEAL)
REP_KEYS = tuple(spec.key for spec in CATALOGUE if spec.record is RecordKind.REP)
_SPECS = {spec.key: spec for spec in CATALOGUE}


def fraction_places(spec: FieldSpec) -> Decimal:
    """Places a fraction keeps: a Percent(7,4) field holds 4 places of percent = 6 of fraction."""
    return Decimal(1).scaleb(-(spec.percent_scale + 2))


def canonical_fraction(key: str, value: Decimal) -> str:
    places = fraction_places(_SPECS[key])
    return f"{ratio(value, Decimal(1), places):f}"


def canonical_datetime(moment: datetime) -> str:
    """UTC, to the second: ``2026-11-22T10:03:00Z``. Naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError("a CRM timestamp must carry its time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical(key: str, value: object) -> str | None:
    """Canonical text of a value for field ``key`` (None stays None)."""
    if value is None or value == "":
        return None
    spec = _SPECS[key]
    if spec.value is ValueKind.MONEY:
        return format_money(Decimal(str(value)))
    if spec.value is ValueKind.FRACTION:
        return canonical_fraction(key, Decimal(str(value)))
    if spec.value is ValueKind.DATETIME and isinstance(value, datetime):
        return canonical_datetime(value)
    return str(value)


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
        result[rep_id] = {
            "period": current.period,
            "quota": format_money(current.quota) if current.quota is not None else None,
            "bookings": format_money(current.bookings),
            "attainment": canonical_fraction("attainment", current.attainment)
            if current.attainment is not None
            else None,
            "earnings": format_money(current.earnings),
            "draw_paid": format_money(current.draw_paid),
            "draw_recovered": format_money(current.draw_recovered),
            "draw_balance": format_money(current.draw_balance),
            "payout": format_money(current.payout),
            "payout_ytd": format_money(ytd),
        }
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
