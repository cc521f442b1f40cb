"""The ``spm-connector`` command line: the group, its commands, and errors without tracebacks.

Thin on purpose: each command lives in :mod:`connector.commands` and is imported
only when it runs (or its own ``--help`` is asked for). ``spm-connector --help``
lists them from the summaries below without importing any of them, so it does
not pay for the CRM clients, SQLAlchemy, Flask or rich (``bench/cli_bench.py``).
Every :class:`~connector.errors.ConnectorError` becomes ``error: …`` lines on
stderr and its exit code (docs/cli.md), never a traceback.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NamedTuple

import click

from connector.commands.state import State
from connector.errors import ConnectorError


class _Lazy(NamedTuple):
    module: str
    attribute: str
    summary: str  # the command's first docstring line (a test holds them equal)


_COMMANDS = {
    "calc": _Lazy(
        "connector.commands.calc", "calc", "Compute statements offline from CSV files, with no CRM."
    ),
    "install": _Lazy(
        "connector.commands.crm",
        "install",
        "Create the custom fields, and on Salesforce the permission sets that grant them.",
    ),
    "sync": _Lazy(
        "connector.commands.crm",
        "sync",
        "Pull changes, recompute affected reps, write back only what differs.",
    ),
    "sandbox": _Lazy(
        "crm_sandbox.cli",
        "sandbox",
        "Run a local Salesforce or HubSpot sandbox, seeded with realistic data, until Ctrl-C.",
    ),
    "serve": _Lazy(
        "connector.commands.realtime",
        "serve",
        "Receive CRM webhooks and apply them (the worker runs in the same process).",
    ),
    "worker": _Lazy(
        "connector.commands.realtime",
        "worker",
        "Apply stored webhook events to the CRM (beside web-only `serve --no-worker` receivers).",
    ),
    "statement": _Lazy(
        "connector.commands.statement",
        "statement",
        "One rep's statement (REP: a user id, email or name), from what the last sync stored.",
    ),
    "periods": _Lazy(
        "connector.commands.pay",
        "periods",
        "List, close, approve and reopen commission periods (pay-cycle.md).",
    ),
    "adjust": _Lazy(
        "connector.commands.pay",
        "adjust",
        "Add a manual adjustment to a rep's open period, or reverse one (never edit or delete).",
    ),
    "payroll": _Lazy(
        "connector.commands.pay",
        "payroll",
        "Export a closed period for payroll: one row per rep, exact amounts, a totals row.",
    ),
    "explain": _Lazy(
        "connector.commands.statement",
        "explain",
        "Why each figure of a rep's statement is what it is: inputs, lines, draws, history.",
    ),
    "demo": _Lazy(
        "connector.commands.demo",
        "demo",
        "See it all work: a sandbox CRM, install, sync, and a live deal through the webhooks.",
    ),
}


class _Cli(click.Group):
    """The command group: lazy commands, and ConnectorErrors reported without tracebacks."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _COMMANDS:
            lazy = _COMMANDS[cmd_name]
            found = getattr(importlib.import_module(lazy.module), lazy.attribute)
            assert isinstance(found, click.Command)
            self.add_command(found, cmd_name)
            command = found
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Summaries whole, and without importing a command to read its docstring.
        rows = [(name, _COMMANDS[name].summary) for name in sorted(_COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            nearest = difflib.get_close_matches(name, self.list_commands(ctx), n=1, cutoff=0.6)
            hint = f" Did you mean {nearest[0]!r}?" if nearest else ""
            ctx.fail(f"No such command {name!r}.{hint} (`spm-connector --help` lists them)")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConnectorError as error:
            for line in str(error).splitlines() or [type(error).__name__]:
                click.echo(f"error: {line}", err=True)
            ctx.exit(error.exit_code)


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
    ctx.ensure_object(State).config_option = config_option


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
