"""``calc``: statements offline from CSV files, with no CRM."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import date
from typing import TextIO

import click

from connector.commands.common import (
    as_of_date,
    config_name,
    config_of,
    config_option,
    gc_paused,
    private_file,
)
from connector.config import Config, config_warnings
from connector.core.currency import RateBasis
from connector.core.goals import team_spells
from connector.core.models import Deal, Rep, Statement, TeamResult
from connector.core.overrides import reporting_lines
from connector.core.periods import parse_label
from connector.core.plan_checks import filter_problems
from connector.core.statements import calculate
from connector.errors import ConfigError, InputError
from connector.inputs import Inputs, load_inputs, read_leads, read_quotas, read_rates
from connector.views.calc import write_csv, write_json, write_table

MAX_WARNINGS = 20


@click.command()
@config_option
@click.option("--deals", "deals_path", required=True, metavar="FILE", help="deals.csv")
@click.option("--reps", "reps_path", metavar="FILE", help="reps.csv (default: the plan members)")
@click.option("--splits", "splits_path", metavar="FILE", help="splits.csv")
@click.option(
    "--quotas",
    "quotas_path",
    metavar="FILE",
    help="quotas.csv: the CRM's quotas, for plans with quota_source: crm",
)
@click.option("--leads", "leads_path", metavar="FILE", help="leads.csv, for the lead-to-sale ratio")
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
@click.option(
    "--rates",
    "rates_path",
    metavar="FILE",
    help="rates.csv (currency, from, rate): converts deals in other currencies "
    "(default: currency_rates.file in the config).",
)
@click.pass_context
def calc(
    ctx: click.Context,
    deals_path: str,
    reps_path: str | None,
    splits_path: str | None,
    quotas_path: str | None,
    leads_path: str | None,
    as_of_text: str | None,
    output_format: str,
    rep_ids: tuple[str, ...],
    period: str | None,
    output_path: str | None,
    rates_path: str | None,
) -> None:
    """Compute statements offline from CSV files, with no CRM."""
    config = config_of(ctx)
    if period is not None:
        try:
            parse_label(period, config.period)
        except ValueError as error:
            raise InputError(
                f"--period: {error} (the config's period is {config.period})"
            ) from None
    as_of = as_of_date(as_of_text, config)
    chosen_rates = rates_path or config.rates_path()
    basis = config.currency_rates.basis if config.currency_rates else RateBasis.CLOSE_DATE
    rates = read_rates(chosen_rates, basis) if chosen_rates is not None else None
    inputs = load_inputs(deals_path, reps_path, splits_path, currency=config.currency, rates=rates)
    problems = filter_problems(config.plans, inputs.deal_columns, deals_path)
    if problems:
        raise ConfigError("\n".join(f"{config_name(ctx)}: {problem}" for problem in problems))
    quotas = read_quotas(quotas_path) if quotas_path is not None else []
    leads = None
    if leads_path is not None and config.kpis.lead_to_sale:
        leads = read_leads(leads_path)
    elif leads_path is not None:
        # The ratio is opt-in (docs/calculation.md §7): computing it anyway would put
        # a figure on statements that the plan never asked for.
        click.echo(
            "warning: --leads is ignored: the lead-to-sale ratio is off in "
            f"{config_name(ctx)} (set kpis: {{lead_to_sale: true}} to compute it)",
            err=True,
        )
    spells = team_spells(config.teams, inputs.reps)
    listed = spells if isinstance(config.teams, tuple) else ()
    with gc_paused():
        calculation = calculate(
            config.plans,
            inputs.reps,
            inputs.deals,
            period_kind=config.period,
            as_of=as_of,
            rep_ids=rep_ids or None,
            teams=spells,
            crm_quotas=quotas,
            leads=leads,
            reporting=reporting_lines(inputs.reps, None, listed, config.team_managers),
        )
        statements = _selected(calculation.statements, rep_ids, period, as_of)
        warnings = [
            *config_warnings(config),
            *input_warnings(config, inputs.reps, inputs.deals, reps_given=reps_path is not None),
            *(w.message for w in calculation.warnings),
        ]
        for warning in warnings[:MAX_WARNINGS]:
            click.echo(f"warning: {warning}", err=True)
        if len(warnings) > MAX_WARNINGS:
            # A large org can produce thousands; the count below still tells them all.
            click.echo(f"warning: … and {len(warnings) - MAX_WARNINGS} more", err=True)

        names = {rep.id: rep.name for rep in inputs.reps if rep.name}
        single = None
        if output_format == "table" and len(statements) == 1:
            # One rep, one period: it reads like the statement the rep gets.
            single = _statement_text(statements[0], calculation.statements, config, inputs)
        teams = _selected_teams(calculation.teams, rep_ids, period)
        if output_path is None:
            _write(sys.stdout, output_format, statements, config, as_of, names, single, teams)
            sys.stdout.flush()  # the summary below goes to stderr: keep the two in order
        else:
            try:
                with private_file(output_path) as out:
                    _write(out, output_format, statements, config, as_of, names, single, teams)
            except OSError as error:
                raise InputError(f"{output_path}: cannot be written ({error.strerror})") from None
    click.echo(
        f"calc: {_count(len(inputs.deals), 'deal')}, {_count(len(inputs.reps), 'rep')} read; "
        f"{_count(len(statements), 'statement')}, {_count(len(warnings), 'warning')}",
        err=True,
    )


def input_warnings(
    config: Config, reps: Sequence[Rep], deals: Sequence[Deal], *, reps_given: bool
) -> list[str]:
    """Inputs that compute, but probably not as meant: money credited to no one, $0 members."""
    known = {rep.id for rep in reps}
    members = {m for plan in config.plans for m in plan.members if "@" not in m}
    warnings: list[str] = []
    if reps_given:
        for index, plan in enumerate(config.plans):
            for member in plan.members:
                if "@" not in member and member not in known:
                    warnings.append(
                        f"plans[{index}].members: {member} has no row in reps.csv: computed "
                        "with the plan's dates and no name"
                    )
    for deal in deals:
        for split in deal.splits:
            if split.rep_id not in known and split.rep_id not in members:
                warnings.append(
                    f"splits.csv: deal {deal.id} credits {split.percent}% to {split.rep_id}, "
                    "who is in no reps.csv row and no plan: that share pays no one"
                )
    return warnings


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _selected(
    statements: Sequence[Statement], rep_ids: Sequence[str], period: str | None, as_of: date
) -> list[Statement]:
    found = {statement.rep_id for statement in statements}
    for rep_id in rep_ids:
        if rep_id not in found:
            # A typo must not look like a rep who earned nothing.
            raise InputError(f"--rep {rep_id}: no statements; not a member of any plan by {as_of}")
    wanted = set(rep_ids)
    # With team goals the engine computes the chosen reps' teammates too: show only the chosen.
    return [
        s
        for s in statements
        if (period is None or s.period == period) and (not wanted or s.rep_id in wanted)
    ]


def _selected_teams(
    teams: Sequence[TeamResult], rep_ids: Sequence[str], period: str | None
) -> list[TeamResult]:
    """The team results a selection shows: the chosen period, teams of the chosen reps."""
    wanted = set(rep_ids)
    return [
        team
        for team in teams
        if (period is None or team.period == period)
        and (not wanted or wanted & {*team.members, team.manager_id})
    ]


def _write(
    out: TextIO,
    output_format: str,
    statements: Sequence[Statement],
    config: Config,
    as_of: date,
    names: Mapping[str, str],
    single: str | None,
    teams: Sequence[TeamResult] = (),
) -> None:
    if output_format == "json":
        write_json(out, statements, currency=config.currency, as_of=as_of, teams=teams)
    elif output_format == "csv":
        write_csv(out, statements)
    elif single is not None:
        out.write(single)
    else:
        write_table(
            out,
            statements,
            currency=config.currency,
            as_of=as_of,
            names=names,
            locale=config.locale,
        )


def _statement_text(
    statement: Statement, everything: Sequence[Statement], config: Config, inputs: Inputs
) -> str:
    """The statement view of ``statement``, its year to date from ``everything``."""
    from connector.core.models import CrmUser
    from connector.views.statement import text, view_of

    rep = next((r for r in inputs.reps if r.id == statement.rep_id), None)
    user = CrmUser(
        statement.rep_id,
        rep.name if rep else "",
        rep.email if rep else "",
        rep.active if rep else True,
    )
    deal_names = {d.id: d.properties.get("name", "") for d in inputs.deals}
    own = [s for s in everything if s.rep_id == statement.rep_id]
    return text(view_of(user, own, statement, config.currency, deal_names, locale=config.locale))
