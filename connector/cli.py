"""The ``spm-connector`` command line: parse arguments, call the engine, print.

Thin on purpose: the work lives in config, inputs, the engine and report.
Every :class:`~connector.errors.ConnectorError` becomes ``error: …`` lines on
stderr and its exit code (2 for bad usage, config or input; 3 when the CRM is
unreachable), never a traceback.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TextIO

import click

from connector.config import Config, load_config, resolve_config_path
from connector.errors import ConnectorError, InputError
from connector.inputs import load_inputs
from connector.models import Statement
from connector.report import write_csv, write_json, write_table
from connector.sync.periods import parse_label
from connector.sync.statements import calculate

# Commands that live in modules other people own, imported only when used:
# they pull in heavy dependencies that `calc` should not pay for at start-up.
_LAZY_COMMANDS = {
    "sandbox": "connector.sandbox.cli",
    "install": "connector.crm_commands",
    "sync": "connector.crm_commands",
}
MAX_WARNINGS = 20


@dataclass
class _State:
    config_option: str | None

    def config(self) -> Config:
        return load_config(resolve_config_path(self.config_option, os.environ))


class _Cli(click.Group):
    """The command group: lazy commands, and ConnectorErrors reported without tracebacks."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [name for name, module in _LAZY_COMMANDS.items() if _module_exists(module)]
        return sorted({*super().list_commands(ctx), *lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _LAZY_COMMANDS:
            command = _lazy_command(_LAZY_COMMANDS[cmd_name], cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConnectorError as error:
            for line in str(error).splitlines() or [type(error).__name__]:
                click.echo(f"error: {line}", err=True)
            ctx.exit(error.exit_code)


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _lazy_command(module_name: str, name: str) -> click.Command | None:
    """The command ``name`` from ``module_name``; None while that module does not exist yet."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            return None
        raise  # the module exists and is broken: say so rather than hide it
    for attribute in (name, "cli", "command", "main"):
        command = getattr(module, attribute, None)
        if isinstance(command, click.Command):
            return command
    return None


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_option",
    metavar="PATH",
    help="The config file (default: $SPM_CONFIG, else ./spm.yaml).",
)
@click.version_option(package_name="spm-connector", prog_name="spm-connector")
@click.pass_context
def cli(ctx: click.Context, config_option: str | None) -> None:
    """Sales Performance Management: commissions, attainment and draws, computed exactly."""
    ctx.obj = _State(config_option)


@cli.command()
@click.option("--deals", "deals_path", required=True, metavar="FILE", help="deals.csv")
@click.option("--reps", "reps_path", metavar="FILE", help="reps.csv (default: the plan members)")
@click.option("--splits", "splits_path", metavar="FILE", help="splits.csv")
@click.option(
    "--as-of",
    "as_of_text",
    metavar="DATE",
    help="Compute up to this day, YYYY-MM-DD (default: today in the configured timezone).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "table", "csv"]),
    default="json",
    show_default=True,
)
@click.option("--rep", "rep_ids", multiple=True, metavar="ID", help="Only this rep (repeatable).")
@click.option("--period", metavar="P", help="Only this period (2026-03 or 2026-Q1).")
@click.option("--output", "output_path", metavar="FILE", help="Write here instead of stdout.")
@click.pass_obj
def calc(
    state: _State,
    deals_path: str,
    reps_path: str | None,
    splits_path: str | None,
    as_of_text: str | None,
    output_format: str,
    rep_ids: tuple[str, ...],
    period: str | None,
    output_path: str | None,
) -> None:
    """Compute statements offline from CSV files, with no CRM."""
    config = state.config()
    if period is not None:
        try:
            parse_label(period, config.period)
        except ValueError as error:
            raise InputError(
                f"--period: {error} (the config's period is {config.period})"
            ) from None
    as_of = as_of_date(as_of_text, config)
    inputs = load_inputs(deals_path, reps_path, splits_path, currency=config.currency)
    with gc_paused():
        calculation = calculate(
            config.plans,
            inputs.reps,
            inputs.deals,
            period_kind=config.period,
            as_of=as_of,
            rep_ids=rep_ids or None,
        )
        statements = _selected(calculation.statements, rep_ids, period, as_of)
        for warning in calculation.warnings[:MAX_WARNINGS]:
            click.echo(f"warning: {warning.message}", err=True)
        if len(calculation.warnings) > MAX_WARNINGS:
            # A large org can produce thousands; the count below still tells them all.
            click.echo(f"warning: … and {len(calculation.warnings) - MAX_WARNINGS} more", err=True)

        if output_path is None:
            _write(sys.stdout, output_format, statements, config, as_of)
            sys.stdout.flush()  # the summary below goes to stderr: keep the two in order
        else:
            try:
                with open(output_path, "w", encoding="utf-8", newline="") as out:
                    _write(out, output_format, statements, config, as_of)
            except OSError as error:
                raise InputError(f"{output_path}: cannot be written ({error.strerror})") from None
    click.echo(
        f"calc: {_count(len(inputs.deals), 'deal')}, {_count(len(inputs.reps), 'rep')} read; "
        f"{_count(len(statements), 'statement')}, {_count(len(calculation.warnings), 'warning')}",
        err=True,
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a bulk computation.

    The engine builds millions of acyclic records (credits, lines); each
    automatic collection would walk all of them again, which costs about as
    much as the computation itself on a large org. Reference counting still
    frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def as_of_date(text: str | None, config: Config) -> date:
    if text is None:
        # The CLI may read the clock; the engine never does.
        return datetime.now(config.zone).date()
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--as-of: {text!r} is not a date (YYYY-MM-DD)") from None


def _selected(
    statements: Sequence[Statement], rep_ids: Sequence[str], period: str | None, as_of: date
) -> list[Statement]:
    found = {statement.rep_id for statement in statements}
    for rep_id in rep_ids:
        if rep_id not in found:
            # A typo must not look like a rep who earned nothing.
            raise InputError(f"--rep {rep_id}: no statements; not a member of any plan by {as_of}")
    return [s for s in statements if period is None or s.period == period]


def _write(
    out: TextIO, output_format: str, statements: Sequence[Statement], config: Config, as_of: date
) -> None:
    if output_format == "json":
        write_json(out, statements, currency=config.currency, as_of=as_of)
    elif output_format == "csv":
        write_csv(out, statements)
    else:
        write_table(out, statements, currency=config.currency, as_of=as_of)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script."""
    try:
        cli.main(args=argv, prog_name="spm-connector")
    except BrokenPipeError:
        # `spm-connector calc … | head` closed the pipe: not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
