"""Shared by the end-to-end sync tests: a config for a sandbox, the CLI, and `calc` as the oracle.

The oracle is deliberately the offline path: the sandbox's records are
exported to CSV files and run through `spm-connector calc`, and the CRM
fields the sync wrote must equal what that JSON says, cent for cent.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from connector.cli import cli


def write_config(
    directory: Path,
    crm: Mapping[str, Any],
    members: Sequence[str],
    *,
    store: str | None = None,
    plan_end: str = "2027-12-31",
    plan_extra: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """An spm.yaml with one plan exercising tiers, a draw, a bonus, a SPIFF and clawbacks.

    ``plan_extra`` adds to (or replaces keys of) the plan, ``extra`` to the top level.
    """
    config = {
        "currency": "USD",
        "period": "month",
        "timezone": "UTC",
        "crm": dict(crm),
        "store": store or f"sqlite:///{directory / 'spm.db'}",
        "plans": [
            {
                "id": "ae",
                "name": "Account Executives",
                "start": "2026-01-01",
                "end": plan_end,
                "members": list(members),
                "quota": "150000",
                "commission": {
                    "method": "marginal",
                    "tiers_on": "attainment",
                    "tiers": [
                        {"up_to": "1.0", "rate": "0.08"},
                        {"up_to": "1.5", "rate": "0.12"},
                        {"rate": "0.15"},
                    ],
                },
                "draw": {"type": "recoverable", "amount": "2000", "periods": 3},
                "bonuses": [{"at": "1.0", "amount": "500"}],
                "spiffs": [{"name": "new-logo", "when": {"type": "New Business"}, "amount": "100"}],
                "clawback": {"window_days": 365},
                **(plan_extra or {}),
            }
        ],
        **(extra or {}),
    }
    path = directory / "spm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run(config: Path, env: Mapping[str, str], *args: str) -> Result:
    """One CLI command, as an admin would type it, with the CRM secrets in the environment."""
    return CliRunner().invoke(cli, ["--config", str(config), *args], env=dict(env))


@dataclass(frozen=True)
class OracleDeal:
    id: str
    owner_id: str
    amount: Decimal
    close_date: date
    status: str  # won | lost | open | cancelled
    type: str = ""
    cancel_date: date | None = None
    created_date: date | None = None
    currency: str = ""  # empty: the plan currency
    columns: tuple[tuple[str, str], ...] = ()  # other deal columns the plans name


# (id, name, email, active), optionally followed by manager_id and team_id.
OracleRep = tuple[Any, ...]


def calc_statements(
    config: Path,
    directory: Path,
    deals: Iterable[OracleDeal],
    splits: Iterable[tuple[str, str, Decimal]],
    as_of: date,
    reps: Iterable[OracleRep],
    quotas: Iterable[tuple[str, date, Decimal | None, Decimal | None]] | None = None,
    leads: Iterable[tuple[str, str, date, bool]] | None = None,
) -> list[dict[str, Any]]:
    """`spm-connector calc --format json` on CSV exports of the given records."""
    return calc_document(config, directory, deals, splits, as_of, reps, quotas, leads)["statements"]


def calc_document(
    config: Path,
    directory: Path,
    deals: Iterable[OracleDeal],
    splits: Iterable[tuple[str, str, Decimal]],
    as_of: date,
    reps: Iterable[OracleRep],
    quotas: Iterable[tuple[str, date, Decimal | None, Decimal | None]] | None = None,
    leads: Iterable[tuple[str, str, date, bool]] | None = None,
    rates: Path | None = None,
) -> dict[str, Any]:
    """The whole calc JSON document (statements and teams) on CSV exports of the records.

    ``reps`` are (id, name, email, active[, manager_id, team_id]): members named
    by email resolve through them. ``quotas`` are (rep_id, start_date, amount,
    quantity) and ``leads`` (id, owner_id, created_date, converted), as the CRM has them.
    """
    deals_path, splits_path = directory / "oracle-deals.csv", directory / "oracle-splits.csv"
    reps_path = directory / "oracle-reps.csv"
    with reps_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "email", "active", "manager_id", "team_id"])
        for rep_id, name, email, active, *team in reps:
            manager, team_id = (*team, None, None)[:2]
            writer.writerow(
                [rep_id, name, email, "true" if active else "false", manager or "", team_id or ""]
            )
    deals = list(deals)
    named = sorted({name for d in deals for name, _ in d.columns})
    with deals_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["id", "owner_id", "amount", "close_date", "status", "type", "cancel_date",
             "created_date", "currency", *named]
        )  # fmt: skip
        for d in deals:
            cancel = d.cancel_date.isoformat() if d.cancel_date else ""
            created = d.created_date.isoformat() if d.created_date else ""
            row = [d.id, d.owner_id, d.amount, d.close_date, d.status, d.type, cancel, created]
            given = dict(d.columns)
            writer.writerow([*row, d.currency, *(given.get(name, "") for name in named)])
    with splits_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["deal_id", "rep_id", "percent"])
        writer.writerows(splits)
    extra: list[str] = []
    if quotas is not None:
        quotas_path = directory / "oracle-quotas.csv"
        with quotas_path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["rep_id", "start_date", "amount", "quantity"])
            for rep_id, start, amount, quantity in quotas:
                writer.writerow([rep_id, start, "" if amount is None else amount,
                                 "" if quantity is None else quantity])  # fmt: skip
        extra += ["--quotas", str(quotas_path)]
    if leads is not None:
        leads_path = directory / "oracle-leads.csv"
        with leads_path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "owner_id", "created_date", "converted"])
            for lead_id, owner, created, converted in leads:
                writer.writerow([lead_id, owner, created, "true" if converted else "false"])
        extra += ["--leads", str(leads_path)]
    if rates is not None:
        extra += ["--rates", str(rates)]
    result = run(
        config,
        {},
        "calc",
        "--deals",
        str(deals_path),
        "--splits",
        str(splits_path),
        "--reps",
        str(reps_path),
        "--as-of",
        as_of.isoformat(),
        "--format",
        "json",
        *extra,
    )
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def expected_deal_fields(
    statements: Sequence[Mapping[str, Any]], amounts: Mapping[str, Decimal]
) -> dict[str, dict[str, Decimal | str | None]]:
    """Per deal: commission (all split reps), rate as a fraction, credited period, clawback."""
    commission: dict[str, Decimal] = {}
    period: dict[str, str] = {}
    clawback: dict[str, Decimal] = {}
    for statement in statements:
        for line in statement["lines"]:
            deal_id = line.get("deal_id")
            if not deal_id:
                continue
            if line["kind"] == "commission":
                commission[deal_id] = commission.get(deal_id, Decimal(0)) + Decimal(line["amount"])
                period[deal_id] = statement["period"]
            elif line["kind"] == "clawback":
                clawback[deal_id] = clawback.get(deal_id, Decimal(0)) + Decimal(line["amount"])
    expected: dict[str, dict[str, Decimal | str | None]] = {}
    for deal_id, amount in amounts.items():
        if deal_id not in commission:
            expected[deal_id] = dict.fromkeys(("commission", "rate", "period", "clawback"))
            continue
        expected[deal_id] = {
            "commission": commission[deal_id],
            "rate": commission[deal_id] / amount if amount else None,
            "period": period[deal_id],
            "clawback": clawback.get(deal_id, Decimal(0)),
        }
    return expected


def expected_rep_fields(
    statements: Sequence[Mapping[str, Any]], as_of: date
) -> dict[str, dict[str, Any]]:
    """Per rep: the as-of month's statement (or the last before it) and payout year to date."""
    current_period = as_of.strftime("%Y-%m")
    by_rep: dict[str, list[Mapping[str, Any]]] = {}
    for statement in statements:
        by_rep.setdefault(statement["rep_id"], []).append(statement)
    expected: dict[str, dict[str, Any]] = {}
    for rep_id, history in by_rep.items():
        history.sort(key=lambda s: s["period"])
        current = [s for s in history if s["period"] <= current_period][-1]
        ytd = sum(
            (
                Decimal(s["payout"])
                for s in history
                if s["period"][:4] == current["period"][:4] and s["period"] <= current["period"]
            ),
            Decimal(0),
        )
        expected[rep_id] = {**current, "payout_ytd": ytd}
    return expected


def percent(fraction: Decimal, places: int) -> Decimal:
    """A fraction as a Salesforce Percent field holds it (12.5 for 12.5 %)."""
    return (fraction * 100).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
