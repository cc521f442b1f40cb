"""The command group: a help that starts at once, summaries that match, typos that get a hint."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from connector.cli import _COMMANDS, cli


def test_help_lists_every_command_without_importing_any() -> None:
    probe = (
        "import sys\n"
        "from connector.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('sqlalchemy', 'alembic', 'flask', 'rich', 'simple_salesforce', 'hubspot',\n"
        "         'pydantic', 'connector.commands.calc', 'connector.config', 'crm_sandbox')\n"
        "print('IMPORTED', [m for m in heavy if m in sys.modules])\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert "IMPORTED []" in shown
    for name in _COMMANDS:
        assert f"  {name} " in shown


def test_each_summary_is_the_commands_own_first_line() -> None:
    group = click.Context(cli)
    for name, lazy in _COMMANDS.items():
        command = cli.get_command(group, name)
        assert command is not None and command.help is not None
        assert lazy.summary == command.help.strip().splitlines()[0], name


def test_a_mistyped_command_names_the_nearest_one() -> None:
    result = CliRunner().invoke(cli, ["synk"])
    assert result.exit_code == 2
    assert "No such command 'synk'. Did you mean 'sync'?" in result.output
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert "No such command 'frobnicate'." in result.output and "Did you mean" not in result.output
