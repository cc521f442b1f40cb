"""A closed period as a payroll file: one row per rep, exact decimals, a totals row.

The columns are documented in docs/pay-cycle.md. Every amount is the sum over
the rep's plans of the closed statements' figures, so the file's totals equal
the closed statements' to the cent. Text from outside (names, emails, ids) is
made spreadsheet-safe, as in every CSV we write.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TextIO

from connector.core.models import CrmUser, Statement
from connector.core.money import ZERO, format_money
from connector.views.calc import spreadsheet_safe

# The amounts, in file order: statement figures summed over the rep's plans.
AMOUNTS = (
    "commission",
    "spiffs",
    "bonuses",
    "overrides",
    "clawbacks",
    "adjustments",
    "holdback",
    "earnings",
    "draw_paid",
    "draw_recovered",
    "payout",
    "draw_balance",
    "held_back",
)
COLUMNS = ("payroll_id", "rep_id", "name", "email", "currency", *AMOUNTS)


@dataclass(frozen=True)
class PayrollRow:
    payroll_id: str
    rep_id: str
    name: str
    email: str
    amounts: Mapping[str, Decimal]


@dataclass(frozen=True)
class PayrollSheet:
    period: str
    status: str
    currency: str
    rows: Sequence[PayrollRow]
    totals: Mapping[str, Decimal]
    without_id: Sequence[str]  # reps with no payroll id (their column is empty)


def payroll_sheet(
    period: str,
    status: str,
    currency: str,
    statements: Sequence[Statement],
    users: Mapping[str, CrmUser],
    payroll_ids: Mapping[str, str],
) -> PayrollSheet:
    """``payroll_ids`` maps a rep id or a lower-case email to the employee id (from
    ``--ids``); else the id the CRM holds (``pay_cycle.payroll_id_field``)."""
    by_rep: dict[str, dict[str, Decimal]] = {}
    for statement in statements:
        sums = by_rep.setdefault(statement.rep_id, dict.fromkeys(AMOUNTS, ZERO))
        for name in AMOUNTS:
            sums[name] += getattr(statement, name)
    rows: list[PayrollRow] = []
    without: list[str] = []
    for rep_id in sorted(by_rep):
        user = users.get(rep_id)
        email = user.email if user is not None else ""
        payroll_id = (
            payroll_ids.get(rep_id)
            or payroll_ids.get(email.lower())
            or (user.payroll_id if user is not None else None)
            or ""
        )
        if not payroll_id:
            without.append(rep_id)
        name = user.name if user is not None else ""
        rows.append(PayrollRow(payroll_id, rep_id, name, email, by_rep[rep_id]))
    totals = {name: sum((row.amounts[name] for row in rows), ZERO) for name in AMOUNTS}
    return PayrollSheet(period, status, currency, rows, totals, without)


def write_csv(out: TextIO, sheet: PayrollSheet) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in sheet.rows:
        texts = [row.payroll_id, row.rep_id, row.name, row.email]
        writer.writerow(
            (
                *(spreadsheet_safe(text) for text in texts),
                sheet.currency,
                *(format_money(row.amounts[name]) for name in AMOUNTS),
            )
        )
    writer.writerow(
        ("TOTAL", "", "", "", sheet.currency, *(format_money(sheet.totals[n]) for n in AMOUNTS))
    )


def write_json(out: TextIO, sheet: PayrollSheet) -> None:
    body = {
        "period": sheet.period,
        "status": sheet.status,
        "currency": sheet.currency,
        "rows": [
            {
                "payroll_id": row.payroll_id or None,
                "rep_id": row.rep_id,
                "name": row.name,
                "email": row.email,
                **{name: format_money(row.amounts[name]) for name in AMOUNTS},
            }
            for row in sheet.rows
        ],
        "totals": {name: format_money(sheet.totals[name]) for name in AMOUNTS},
    }
    json.dump(body, out, indent=2, ensure_ascii=False)
    out.write("\n")
