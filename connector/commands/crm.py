"""``install`` and ``sync``: the commands that talk to a CRM.

Kept apart from ``calc`` so that it never imports the CRM clients. Progress
goes to stderr: a rich progress display on a terminal, plain lines otherwise
(cron logs, CI). Every run ends with a one-screen summary.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.status import Status

from connector.adapters.base import CrmAdapter
from connector.adapters.retry import RetryPolicy
from connector.commands.common import (
    as_of_date,
    config_of,
    config_option,
    console,
    wait_option,
)
from connector.config import Config, config_warnings, load_secrets, store_url
from connector.connect import adapter_for, field_specs, sync_settings
from connector.core.fields import RecordKind
from connector.core.members import resolve_members
from connector.store.state import Store
from connector.sync.engine import SyncEngine
from connector.sync.run import SyncOptions, SyncSummary


class Progress:
    """Stage counters: a live status line on a terminal, a plain line per step otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._status: Status | None = None
        self._last: dict[str, int] = {}

    def __call__(self, stage: str, count: int) -> None:
        if self.live:
            text = f"{stage}: {count:,}"
            if self._status is None:
                self._status = self.console.status(text)
                self._status.start()
            else:
                self._status.update(text)
        elif self._last.get(stage) != count:
            self.console.print(f"{stage}: {count:,}")
        self._last[stage] = count

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()


# HubSpot has no API for record layouts: what an admin clicks instead (docs/hubspot.md).
HUBSPOT_RECORD_STEPS = (
    "next: show the values on HubSpot records (HubSpot has no API for this; once per portal):",
    "  1. Settings > Objects > Deals > Record Customization > Default view (or a team's view).",
    "  2. In the left sidebar, edit the 'About this deal' card (or add a card): Add properties,",
    "     search 'SPM', tick the properties of the group 'Compensation', then Save.",
    "  3. Rep values are properties of the Users object (group 'Compensation'): add them to",
    "     the views where your managers look, or to a report of users.",
)


def _retry(out: Console) -> RetryPolicy:
    """The retry policy, telling the person watching whenever it waits."""
    return RetryPolicy(on_wait=lambda line: out.print(f"waiting: {line}"))


@click.command()
@config_option
@click.option("--dry-run", is_flag=True, help="Show what would be created; change nothing.")
@click.option(
    "--no-assign",
    is_flag=True,
    help="Do not assign the read-only permission set to plan members and their managers.",
)
@click.option(
    "--layouts",
    "layout_names",
    metavar="NAME,...",
    help="Salesforce: the page layouts to show our fields on (default: those assigned to "
    "the plan members' and managers' profiles).",
)
@click.option("--no-layouts", is_flag=True, help="Salesforce: leave page layouts alone.")
@click.pass_context
def install(
    ctx: click.Context,
    dry_run: bool,
    no_assign: bool,
    layout_names: str | None,
    no_layouts: bool,
) -> None:
    """Create the custom fields, and on Salesforce the permission sets that grant them."""
    if no_layouts and layout_names:
        raise click.UsageError("--layouts and --no-layouts exclude each other")
    layouts = [n.strip() for n in (layout_names or "").split(",") if n.strip()] or None
    config = config_of(ctx)
    out = console()
    for warning in config_warnings(config):
        out.print(f"warning: {warning}")
    with Store.open(store_url(config, os.environ)) as store:
        # The store keeps what install learns of the CRM (fields, pipelines, owners).
        adapter = adapter_for(
            config,
            load_secrets(os.environ, Path.cwd(), config),
            retry=_retry(out),
            cache=store.cache,
        )
        install_fields(
            adapter,
            config,
            out,
            dry_run=dry_run,
            no_assign=no_assign,
            layouts=layouts,
            no_layouts=no_layouts,
        )


def install_fields(
    adapter: CrmAdapter,
    config: Config,
    out: Console,
    *,
    dry_run: bool,
    no_assign: bool,
    layouts: list[str] | None = None,
    no_layouts: bool = False,
) -> None:
    users = {user.id: user for user in adapter.read_users(include_fields=False)}
    members = resolve_members(config.plans, users)
    # Managers read their reps' payouts too (a manager who is not in the CRM is skipped).
    managers = {users[m].manager_id for m in members if m in users}
    readers = members | {m for m in managers if m is not None and m in users}
    report = adapter.ensure_fields(
        field_specs(config),
        dry_run=dry_run,
        assign_to=set() if no_assign else readers,
        readers=readers,
        layouts=layouts,
        skip_layouts=no_layouts,
    )
    counts = Counter(item.action for item in report)
    for item in report:
        detail = f" ({item.detail})" if item.detail else ""
        out.print(f"{item.action:>13}  {item.name}{detail}")
    if adapter.name == "hubspot" and not no_layouts:
        for line in HUBSPOT_RECORD_STEPS:
            out.print(line, highlight=False)
    usage = adapter.usage()
    out.print(
        ("dry run: nothing was changed; " if dry_run else "install: ")
        + ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
        + f"; {usage.calls} API calls"
    )


@click.command()
@config_option
@click.option("--full", is_flag=True, help="Re-read everything, not just what changed.")
@click.option("--dry-run", is_flag=True, help="Print the planned writes; write nothing.")
@click.option("--as-of", "as_of_text", metavar="DATE", help="Fix 'today' (YYYY-MM-DD).")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Forget the store's state (say, it belonged to another CRM account) and sync in full.",
)
@wait_option
@click.pass_context
def sync(
    ctx: click.Context,
    full: bool,
    dry_run: bool,
    as_of_text: str | None,
    rebuild: bool,
    wait_s: float,
) -> None:
    """Pull changes, recompute affected reps, write back only what differs."""
    config = config_of(ctx)
    as_of = as_of_date(as_of_text, config)
    out = console()
    progress = Progress(out)
    secrets = load_secrets(os.environ, Path.cwd(), config)
    with Store.open(store_url(config, os.environ)) as store:
        adapter = adapter_for(
            config, secrets, retry=_retry(out), cache=store.cache, budget=store.budgets
        )
        engine = SyncEngine(
            sync_settings(config, secrets),
            adapter,
            store,
            clock=lambda: datetime.now(UTC),
            progress=progress,
            say=lambda line: out.print(line, highlight=False),
        )
        options = SyncOptions(
            as_of=as_of, full=full, dry_run=dry_run, rebuild=rebuild, lock_wait_s=wait_s
        )
        try:
            summary = engine.run(options)
        finally:
            progress.close()
    summary.warnings[:0] = config_warnings(config)
    if dry_run:
        _print_plan(summary, config, adapter)
    print_summary(out, summary, dry_run)
    ctx.exit(summary.exit_code)


def _print_plan(summary: SyncSummary, config: Config, adapter: CrmAdapter) -> None:
    """What the real run would write, record by record, on stdout: each value as the CRM's
    field will hold it (a Salesforce percent field gets 8.0 for a rate of 0.08)."""
    names = {spec.key: spec for spec in field_specs(config)}
    crm = config.crm.type.value if config.crm is not None else "salesforce"
    out = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    for change in summary.planned:
        spec = names[change.key]
        field = spec.salesforce if crm == "salesforce" else spec.hubspot
        what = "deal" if change.record is RecordKind.DEAL else "rep"
        before = adapter.as_written(change.key, change.before)
        after = adapter.as_written(change.key, change.after)
        if change.key == "statement_link":  # each link opens a rep's pay: not for a terminal
            before, after = _masked(before), _masked(after)
        out.print(
            f"{what} {change.record_id}  {field}: {before or '(empty)'} -> {after or '(empty)'}"
        )


def _masked(link: str | None) -> str | None:
    """A rep's link with its signed token left out."""
    return None if not link else link.rsplit("/", 1)[0] + "/…"


def print_summary(console: Console, summary: SyncSummary, dry_run: bool) -> None:
    usage = summary.usage
    lines: list[str] = [
        f"read: {summary.users_read:,} users, {summary.deals_read:,} deals "
        f"({summary.deals_changed:,} changed)",
        f"computed: {summary.reps_recomputed:,} reps, {summary.statements:,} rep-periods",
    ]
    if summary.quotas_read is not None:
        lines.append(f"quotas: {summary.quotas_read:,} read from the CRM")
    if summary.leads_read is not None:
        lines.append(
            f"leads: {summary.leads_read:,} read for the lead-to-sale ratio "
            f"({summary.lead_calls:,} API calls)"
        )
    if dry_run:
        records = len({(c.record, c.record_id) for c in summary.planned})
        lines.append(
            f"would write: {len(summary.planned):,} fields on {records:,} records "
            "(dry run: nothing was written)"
        )
    else:
        lines.append(
            f"written: {summary.fields_written:,} fields on {summary.records_written:,} records"
        )
    if usage is not None:
        api = f"API calls: {usage.calls:,}"
        if usage.used is not None and usage.limit is not None:
            api += f" (the account's daily usage: {usage.used:,} of {usage.limit:,})"
        if usage.waited_s:
            api += f"; waited {usage.waited_s:.1f} s on retries and rate limits"
        lines.append(api)
    for warning in summary.warnings:
        lines.append(f"warning: {warning}")
    if summary.interrupted_runs:
        lines.append(
            f"finished the work of {summary.interrupted_runs} interrupted run(s) before this one"
        )
    if summary.failures:
        by_code = Counter(f.code for f in summary.failures)
        lines.append(
            f"not written: {len(summary.failures):,} records ("
            + ", ".join(f"{n} {code}" for code, n in sorted(by_code.items()))
            + "); the next sync retries them"
        )
        for failure in summary.failures[:50]:
            lines.append(
                f"  {failure.record.value} {failure.record_id}: {failure.code}: {failure.message}"
            )
        if len(summary.failures) > 50:
            lines.append(f"  … and {len(summary.failures) - 50:,} more")
    for line in lines:
        console.print(line)
