"""The pay cycle: ``periods list|close|approve|reopen``, ``adjust`` and ``payroll``."""

from __future__ import annotations

import csv
import getpass
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
from rich.console import Console

from connector.adapters.retry import RetryPolicy
from connector.commands.common import (
    config_of,
    config_option,
    console,
    private_file,
    wait_option,
)
from connector.commands.crm import print_summary
from connector.config import Config, load_secrets, store_url
from connector.connect import adapter_for, close_rules, sync_settings
from connector.core.closing import CLOSED, PRELIMINARY
from connector.core.money import ZERO, format_money
from connector.errors import InputError
from connector.store.state import Store
from connector.sync import pay_cycle
from connector.sync.engine import SyncEngine
from connector.views import payroll as sheets
from connector.views.statement import find_rep

_BY = click.option(
    "--by",
    "actor",
    metavar="NAME",
    help="Who is acting, for the event log (default: the login name).",
)


def _actor(given: str | None) -> str:
    if given and given.strip():
        return given.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@contextmanager
def _engine(config: Config, out: Console) -> Iterator[SyncEngine]:
    secrets = load_secrets(os.environ, Path.cwd(), config)
    with Store.open(store_url(config, os.environ), existing=True) as store:
        retry = RetryPolicy(on_wait=lambda line: out.print(f"waiting: {line}"))
        adapter = adapter_for(config, secrets, retry=retry, cache=store.cache, budget=store.budgets)
        yield SyncEngine(
            sync_settings(config, secrets),
            adapter,
            store,
            clock=lambda: datetime.now(UTC),
            say=lambda line: out.print(line, highlight=False),
        )


@click.group()
def periods() -> None:
    """List, close, approve and reopen commission periods (pay-cycle.md)."""


@periods.command("list")
@config_option
@click.pass_context
def list_periods(ctx: click.Context) -> None:
    """Every period with statements: its status, who closed it and paid it, its payout."""
    config = config_of(ctx)
    with Store.open(store_url(config, os.environ), existing=True) as store:
        closes = {close.period: close for close in store.pay.closes()}
        known = sorted(set(store.statements.periods()) | set(closes))
        payouts: dict[str, Decimal] = {}
        for _, _, period, _, _, payout, _ in store.statements.figures_in(known):
            payouts[period] = payouts.get(period, ZERO) + payout
    click.echo(f"{'period':<9} {'status':<12} {'payout':>14}  closed / paid")
    for period in known:
        close = closes.get(period)
        status = close.status if close is not None else PRELIMINARY
        said = ""
        if close is not None:
            said = f"closed {close.closed_at} by {close.closed_by}"
            if close.paid_at:
                said += f"; paid {close.paid_at} by {close.paid_by}"
        total = format_money(payouts.get(period, ZERO))
        click.echo(f"{period:<9} {status:<12} {total:>14}  {said}".rstrip())


@periods.command("close")
@config_option
@click.argument("period")
@click.option(
    "--with-earlier", is_flag=True, help="Close the open periods before PERIOD too, oldest first."
)
@_BY
@wait_option
@click.pass_context
def close(
    ctx: click.Context, period: str, with_earlier: bool, actor: str | None, wait_s: float
) -> None:
    """Sync, then freeze every statement of PERIOD: later CRM changes become adjustments."""
    config = config_of(ctx)
    out = console()
    with _engine(config, out) as engine:
        chosen = pay_cycle.parse_period(config.period, period)
        today = datetime.now(config.zone).date()
        summary, closed = pay_cycle.close_periods(
            engine, chosen, _actor(actor), today=today, with_earlier=with_earlier,
            lock_wait_s=wait_s, rules=close_rules(config),
        )  # fmt: skip
    print_summary(out, summary, False)
    for each in closed:
        out.print(
            f"closed {each.period}: {each.statements} statements of {each.reps} reps, "
            f"payout {format_money(each.payout)} {config.currency}"
        )


@periods.command("approve")
@config_option
@click.argument("period")
@click.option("--step", required=True, help="The approval step (pay_cycle.approvals).")
@click.option("--rep", "reps", multiple=True, metavar="REP", help="Only this rep (repeatable).")
@_BY
@click.pass_context
def approve(
    ctx: click.Context, period: str, step: str, reps: tuple[str, ...], actor: str | None
) -> None:
    """Approve PERIOD's statements at one step of the chain (those the steps before approved)."""
    config = config_of(ctx)
    chosen = pay_cycle.parse_period(config.period, period)
    with Store.open(store_url(config, os.environ), existing=True) as store:
        users = store.users.all()
        rep_ids = {find_rep(users, rep).id for rep in reps} if reps else None
        done, not_ready = pay_cycle.approve(
            store, chosen, step, _actor(actor), lambda: datetime.now(UTC),
            steps=config.pay_cycle.approvals, rep_ids=rep_ids,
        )  # fmt: skip
    click.echo(f"approved {done} statement(s) of {chosen} at {step}")
    if not_ready:
        click.echo(f"{not_ready} statement(s) still wait for an earlier step", err=True)


@periods.command("reopen")
@config_option
@click.argument("period")
@click.option("--reason", required=True, help="Why: it goes into the event log.")
@_BY
@wait_option
@click.pass_context
def reopen(ctx: click.Context, period: str, reason: str, actor: str | None, wait_s: float) -> None:
    """Unfreeze the latest closed period (not a paid one) and recompute everyone."""
    config = config_of(ctx)
    out = console()
    with _engine(config, out) as engine:
        chosen = pay_cycle.parse_period(config.period, period)
        today = datetime.now(config.zone).date()
        summary = pay_cycle.reopen_period(
            engine, chosen, _actor(actor), reason, today=today, lock_wait_s=wait_s
        )
    print_summary(out, summary, False)
    out.print(f"reopened {chosen}: its figures follow the CRM again")


@click.command()
@config_option
@click.argument("rep", required=False)
@click.option("--period", metavar="P", help="The open period the amount belongs to.")
@click.option("--amount", metavar="AMOUNT", help="Signed, in cents: -250.00 or 120.50.")
@click.option("--reason", required=True, help="Why: shown on the rep's statement.")
@click.option("--plan", metavar="ID", help="The plan, when the rep is on two in the period.")
@click.option("--reverse", "reverses", type=int, metavar="N", help="Reverse adjustment #N instead.")
@_BY
@wait_option
@click.pass_context
def adjust(
    ctx: click.Context,
    rep: str | None,
    period: str | None,
    amount: str | None,
    reason: str,
    plan: str | None,
    reverses: int | None,
    actor: str | None,
    wait_s: float,
) -> None:
    """Add a manual adjustment to a rep's open period, or reverse one (never edit or delete)."""
    config = config_of(ctx)
    out = console()
    if reverses is None and (rep is None or period is None or amount is None):
        raise InputError("adjust: give REP, --period and --amount (or --reverse N)")
    with _engine(config, out) as engine:
        today = datetime.now(config.zone).date()
        if reverses is not None:
            done, summary = pay_cycle.reverse(
                engine, reverses, reason, _actor(actor), today=today, lock_wait_s=wait_s
            )
        else:
            assert rep is not None and period is not None and amount is not None
            done, summary = pay_cycle.adjust(
                engine, rep, pay_cycle.parse_period(config.period, period, "--period"),
                _amount(amount), reason, _actor(actor), today=today, plan=plan,
                lock_wait_s=wait_s,
            )  # fmt: skip
    print_summary(out, summary, False)
    what = f"reverses #{reverses}" if reverses is not None else reason.strip()
    out.print(
        f"adjustment #{done.id}: {format_money(done.amount)} {config.currency} for "
        f"{done.rep_id} on {done.plan_id} in {done.period} ({what})"
    )


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"--amount: {text!r} is not an amount (like -250.00)") from None
    if not value.is_finite():
        raise InputError(f"--amount: {text!r} is not an amount (like -250.00)")
    return value


@click.command()
@config_option
@click.argument("period")
@click.option(
    "--format", "form", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@click.option(
    "--ids",
    "ids_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A CSV of rep (id or email) and payroll_id: the employee ids payroll knows.",
)
@click.option("--mark-paid", is_flag=True, help="Mark the period paid once the file is written.")
@_BY
@click.pass_context
def payroll(
    ctx: click.Context,
    period: str,
    form: str,
    output: Path | None,
    ids_file: Path | None,
    mark_paid: bool,
    actor: str | None,
) -> None:
    """Export a closed period for payroll: one row per rep, exact amounts, a totals row."""
    config = config_of(ctx)
    out = console()
    ids = _payroll_ids(ids_file) if ids_file is not None else {}
    with Store.open(store_url(config, os.environ), existing=True) as store:
        closes = {close.period: close for close in store.pay.closes()}
        if period not in closes:
            raise InputError(
                f"{period} is not closed: payroll exports closed periods only "
                f"(`spm-connector periods close {period}`)"
            )
        status = closes[period].status
        users = {user.id: user for user in store.users.all()}
        sheet = sheets.payroll_sheet(
            period, status, config.currency, store.pay.statements_of(period), users, ids
        )
        buffer = io.StringIO()
        (sheets.write_csv if form == "csv" else sheets.write_json)(buffer, sheet)
        if output is None:
            click.echo(buffer.getvalue(), nl=False)
        else:
            _write_whole(output, buffer.getvalue())
            out.print(f"wrote {output}")
        actor_name = _actor(actor)
        now = datetime.now(UTC)
        detail = {
            "format": form,
            "rows": len(sheet.rows),
            "payout": str(sheet.totals["payout"]),
            "output": str(output) if output is not None else "stdout",
        }
        store.pay.record(now, actor_name, "payroll_export", period, detail)
        if mark_paid:
            if status == CLOSED:
                store.pay.mark_paid(period, actor_name, now, detail)
                out.print(f"{period} is marked paid")
            else:
                out.print(f"{period} was already {status}")
    if sheet.without_id:
        where = f"in {ids_file}" if ids_file is not None else "(set pay_cycle.payroll_id_field"
        where += "" if ids_file is not None else " or give --ids)"
        out.print(f"warning: no payroll id for {', '.join(sheet.without_id)} {where}")


def _write_whole(path: Path, text: str) -> None:
    """Write the file whole or not at all: a process killed mid-write leaves no half file."""
    partial = path.with_name(path.name + ".partial")
    with private_file(partial) as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def _payroll_ids(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror})") from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"rep", "payroll_id"} <= set(reader.fieldnames):
        raise InputError(f"{path}: line 1: the columns must include rep and payroll_id")
    ids: dict[str, str] = {}
    for row in reader:
        rep, payroll_id = (row.get("rep") or "").strip(), (row.get("payroll_id") or "").strip()
        if not rep or not payroll_id:
            raise InputError(f"{path}: line {reader.line_num}: rep and payroll_id are required")
        key = rep.lower() if "@" in rep else rep
        if key in ids:
            raise InputError(f"{path}: line {reader.line_num}: rep {rep} is listed twice")
        ids[key] = payroll_id
    return ids
