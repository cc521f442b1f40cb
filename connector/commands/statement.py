"""``statement REP``: one rep's statement from the store, as text, JSON or HTML."""

from __future__ import annotations

import io
import os
from datetime import date, datetime
from pathlib import Path

import click

from connector.commands.common import config_of, config_option, private_file
from connector.config import Config, store_url
from connector.store.state import Store
from connector.sync.reading import load_explanations, load_view
from connector.views.calc import write_json
from connector.views.explain import explain as explained
from connector.views.statement import html, text


def _as_of(store: Store, config: Config) -> date:
    """The date the store's figures were computed for: the last sync's, else today."""
    for run in store.runs.recent(limit=1, kind="sync"):
        text_value = run.options.get("as_of")
        if isinstance(text_value, str):
            return date.fromisoformat(text_value)
    return datetime.now(config.zone).date()


@click.command()
@config_option
@click.argument("rep")
@click.option("--period", metavar="P", help="The period (2026-04, 2026-Q2); default: the current.")
@click.option(
    "--format",
    "form",
    type=click.Choice(["text", "json", "html"]),
    default="text",
    show_default=True,
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@click.pass_context
def statement(
    ctx: click.Context, rep: str, period: str | None, form: str, output: Path | None
) -> None:
    """One rep's statement (REP: a user id, email or name), from what the last sync stored."""
    config = config_of(ctx)
    with Store.open(store_url(config, os.environ), existing=True) as store:
        view = load_view(store, config.currency, rep, period, config.locale)
        as_of = _as_of(store, config)
    if form == "json":
        buffer = io.StringIO()
        write_json(buffer, [view.statement], currency=config.currency, as_of=as_of)
        rendered = buffer.getvalue()
    elif form == "html":
        rendered = html(view)
    else:
        rendered = text(view)
    if output is not None:
        with private_file(output) as out:
            out.write(rendered)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(rendered, nl=False)


@click.command()
@config_option
@click.argument("rep")
@click.option("--period", metavar="P", required=True, help="The period (2026-04, 2026-Q2).")
@click.pass_context
def explain(ctx: click.Context, rep: str, period: str) -> None:
    """Why each figure of a rep's statement is what it is: inputs, lines, draws, history."""
    config = config_of(ctx)
    with Store.open(store_url(config, os.environ), existing=True) as store:
        found = load_explanations(store, config.plans, config.currency, rep, period, config.period)
    click.echo("\n".join(explained(e) for e in found), nl=False)
