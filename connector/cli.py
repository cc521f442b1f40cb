"""The ``spm-connector`` command line: the group, its commands, and errors without tracebacks.

Thin on purpose: each command lives in :mod:`connector.commands`. Commands that
talk to a CRM are imported only when used: they pull in the CRM clients, which
``calc`` should not pay for at start-up. Every
:class:`~connector.errors.ConnectorError` becomes ``error: …`` lines on stderr
and its exit code (docs/cli.md), never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import click

from connector.commands.calc import calc
from connector.commands.common import State
from connector.errors import ConnectorError

# name → (module, attribute), imported on first use.
_LAZY_COMMANDS = {
    "install": ("connector.commands.crm", "install"),
    "sync": ("connector.commands.crm", "sync"),
    "sandbox": ("crm_sandbox.cli", "sandbox"),
    "serve": ("connector.commands.realtime", "serve"),
    "worker": ("connector.commands.realtime", "worker"),
    "statement": ("connector.commands.statement", "statement"),
    "demo": ("connector.commands.demo", "demo"),
}


class _Cli(click.Group):
    """The command group: lazy commands, and ConnectorErrors reported without tracebacks."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _LAZY_COMMANDS:
            module, attribute = _LAZY_COMMANDS[cmd_name]
            found = getattr(importlib.import_module(module), attribute)
            assert isinstance(found, click.Command)
            command = found
        return command

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


cli.add_command(calc)


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
