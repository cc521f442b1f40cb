"""``demo``: the whole product on one machine, with nothing to sign up for.

A sandbox CRM seeded with a team, a config written for it, ``install`` and a
full ``sync``, the webhook receiver and its worker, then a deal closed in the
sandbox: its real webhook (HubSpot) or outbound message (Salesforce) flows
through the receiver, and the rep's fields change in the CRM. The demo says
it worked only when they did.
"""

from __future__ import annotations

import os
import secrets as secrets_module
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from werkzeug.serving import make_server

from connector.commands.common import console, private_file
from connector.commands.crm import Progress, install_fields, print_summary
from connector.commands.realtime import build_worker, quiet_access_log
from connector.config import Config, load_config, load_secrets
from connector.connect import adapter_for, sync_settings
from connector.core.models import CrmUser
from connector.errors import ConnectorError
from connector.store.coaching import PLAY
from connector.store.cursors import AS_OF_PERIOD_CURSOR
from connector.store.state import Store
from connector.sync.engine import SyncEngine
from connector.sync.run import SyncOptions
from connector.views.money import money
from crm_sandbox.config_file import write_sandbox_config
from webhooks.app import create_app
from webhooks.receiver import EXTENSION, Receiver

SALESFORCE, HUBSPOT = "salesforce", "hubspot"
SHOWN = (
    "bookings",
    "attainment",
    "deals_won_attainment",
    "team_attainment",
    "pace",
    "earnings",
    "payout",
    "payout_ytd",
)
_PERCENT = frozenset({"attainment", "deals_won_attainment", "team_attainment", "pace"})
WAIT_S = 20.0


class _LateApp:
    """Listens at once, so the sandbox can be told where to post; serves once attached."""

    def __init__(self) -> None:
        self.app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"starting"]
        return self.app(environ, start_response)


@dataclass
class _Crm:
    sandbox: Any
    env: dict[str, str]
    crm: dict[str, Any]
    members: list[str]
    open_deal: Callable[[date], tuple[str, str, str]]  # → (deal id, owner id, deal name)
    close: Callable[[str, date], None]
    team_managers: dict[str, str] = field(default_factory=dict)  # HubSpot's teams name none


def _salesforce(directory: Path, url: str) -> _Crm:
    from crm_sandbox.salesforce import SalesforceSandbox

    sandbox = SalesforceSandbox(
        reps=12, deals=400, ca_path=directory / "sandbox-ca.pem", outbound_url=url
    ).start()

    def open_deal(today: date) -> tuple[str, str, str]:
        deals = [d for d in sandbox.opportunities() if not d["IsClosed"]]
        deal = min(deals, key=lambda d: (abs((d["CloseDate"] - today).days), d["Id"]))
        return deal["Id"], deal["OwnerId"], deal["Name"]

    settings = sandbox.settings()
    return _Crm(
        sandbox,
        dict(settings["env"]),
        settings["crm"],
        [u["Id"] for u in sandbox.users()],
        open_deal,
        lambda deal_id, on: sandbox.close_deal(deal_id, won=True, on=on),
    )


def _hubspot(directory: Path, url: str) -> _Crm:
    from crm_sandbox.hubspot import HubSpotSandbox

    del directory
    sandbox = HubSpotSandbox(reps=12, deals=400, webhook_url=url).start()

    def open_deal(today: date) -> tuple[str, str, str]:
        deals = [d for d in sandbox.deals() if d["dealstage"] not in ("closedwon", "closedlost")]
        deal = min(deals, key=lambda d: (abs(_day(d["closedate"]) - today.toordinal()), d["id"]))
        return deal["id"], deal["hubspot_owner_id"], deal["dealname"]

    settings = sandbox.settings()
    return _Crm(
        sandbox,
        dict(settings["env"]),
        settings["crm"],
        [o["id"] for o in sandbox.owners()],
        open_deal,
        lambda deal_id, on: sandbox.close_deal(deal_id, won=True, on=on),
        sandbox.team_managers(),
    )


def _day(text: str) -> int:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).date().toordinal()


@click.command()
@click.option(
    "--crm", type=click.Choice([SALESFORCE, HUBSPOT]), default=SALESFORCE, show_default=True
)
@click.option("--keep-running", is_flag=True, help="Leave the sandbox and receiver up afterwards.")
@click.option(
    "--dir",
    "where",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the config, store and statement page in this folder "
    "(default: a temporary one, removed at the end).",
)
@click.pass_context
def demo(ctx: click.Context, crm: str, keep_running: bool, where: Path | None) -> None:
    """See it all work: a sandbox CRM, install, sync, and a live deal through the webhooks."""
    started = time.monotonic()
    out = console()
    quiet_access_log()
    directory = (where or Path(tempfile.mkdtemp(prefix="spm-demo-"))).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    late = _LateApp()
    server = make_server("127.0.0.1", 0, late, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    receiver_url = f"http://127.0.0.1:{server.port}"
    hook = f"{receiver_url}/webhooks/{crm}"
    target = (_salesforce if crm == SALESFORCE else _hubspot)(directory, hook)
    stop = threading.Event()
    kept = where is not None
    try:
        ok = _run(
            out, crm, target, directory, late, receiver_url, stop, started, keep_running, kept
        )
    finally:
        stop.set()
        server.shutdown()
        target.sandbox.stop()
        if not kept:
            # Its store holds a sandbox's fake org: nothing worth leaving in /tmp.
            shutil.rmtree(directory, ignore_errors=True)
    ctx.exit(0 if ok else 1)


def _run(
    out: Console,
    crm: str,
    target: _Crm,
    directory: Path,
    late: _LateApp,
    receiver_url: str,
    stop: threading.Event,
    started: float,
    keep_running: bool,
    kept: bool,
) -> bool:
    out.print(
        f"1. A {crm} sandbox with {len(target.members)} reps is running at {target.sandbox.url}"
    )
    config_path = write_sandbox_config(
        directory, target.crm, target.members, team_managers=target.team_managers
    )
    out.print(f"2. Wrote its config to {config_path}")
    os.environ.update(target.env)  # as an admin would export them; this process only
    os.environ.setdefault("SPM_ADMIN_TOKEN", secrets_module.token_urlsafe(16))
    config = load_config(config_path)
    secrets = load_secrets(os.environ, directory)
    today = datetime.now(config.zone).date()
    with Store.open(config.store) as store, Store.open(config.store, checkpoints=False) as rx:
        adapter = adapter_for(config, secrets, cache=store.cache, budget=store.budgets)
        out.print("3. install: creating the custom fields")
        install_fields(adapter, config, out, dry_run=False, no_assign=False)
        out.print("4. sync: computing every rep's statements and writing them back")
        progress = Progress(out)
        engine = SyncEngine(
            sync_settings(config, secrets), adapter, store, lambda: datetime.now(UTC), progress
        )
        try:
            summary = engine.run(SyncOptions(as_of=today, full=True))
        finally:
            progress.close()
        print_summary(out, summary, dry_run=False)
        _coaching(out, store)

        app = create_app(config, environ=os.environ, store=rx)
        state: Receiver = app.extensions[EXTENSION]
        worker = build_worker(config, store, state.metrics, environ=os.environ, as_of=today)
        threading.Thread(target=worker.run, args=(stop, state.wake), daemon=True).start()
        late.app = app
        out.print(f"5. The webhook receiver and its worker are listening at {receiver_url}")

        deal_id, owner_id, deal_name = target.open_deal(today)
        rep = _user(adapter.read_users(), owner_id)
        before = dict(rep.fields)
        out.print(
            f"6. Closing deal {deal_name!r} ({deal_id}) as won for {rep.name} in the sandbox; "
            "waiting for its webhook…"
        )
        changed_at = time.monotonic()
        target.close(deal_id, today)
        after = _await_change(adapter, owner_id, before)
        if after is None:
            out.print(
                f"[red]The fields of {rep.name} did not change within {WAIT_S:.0f} s.[/red] "
                f"The receiver's log and {receiver_url}/healthz say why."
            )
            return False
        out.print(
            f"   {rep.name}'s fields changed in the CRM {time.monotonic() - changed_at:.1f} s "
            "after the deal closed:"
        )
        _before_after(out, before, after)
        _leaderboard(out, config, store)
        _plays_of(out, store, rep)
        if kept:
            statement = directory / f"statement-{owner_id}.html"
            _write_statement(config, store, owner_id, statement)
            out.print(f"   {rep.name}'s statement, as a page: {statement}")
        if not keep_running:
            out.print(
                "   (`spm-connector demo --keep-running` keeps it all up, with the reports page)"
            )
        elapsed = f"Done in {time.monotonic() - started:.1f} s."
        if kept:
            out.print(f"{elapsed} Everything is in {directory}")
        else:
            out.print(
                f"{elapsed} Its temporary folder is removed at the end; `--dir FOLDER` keeps "
                "the config, the store and a rep's statement page"
            )
        if keep_running:
            _keep_running(out, crm, target, receiver_url, config_path, owner_id)
    return True


def _user(users: Any, user_id: str) -> CrmUser:
    for user in users:
        if user.id == user_id:
            found: CrmUser = user
            return found
    raise ConnectorError(f"the sandbox has no user {user_id}")


def _await_change(
    adapter: Any, owner_id: str, before: dict[str, str | None]
) -> dict[str, str | None] | None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = dict(_user(adapter.read_users(), owner_id).fields)
        if now.get("payout") != before.get("payout") or now.get("bookings") != before.get(
            "bookings"
        ):
            return now
    return None


def _shown(key: str, value: str | None) -> str:
    if not value:
        return "—"
    if key in _PERCENT:
        return f"{Decimal(value) * 100:.2f}%"
    return value


def _before_after(
    out: Console, before: Mapping[str, str | None], after: Mapping[str, str | None]
) -> None:
    if not out.is_terminal:
        for key in SHOWN:
            out.print(f"   {key}: {_shown(key, before.get(key))} -> {_shown(key, after.get(key))}")
        return
    table = Table("field", "before", "after", title="The rep's fields in the CRM")
    for key in SHOWN:
        table.add_row(key, _shown(key, before.get(key)), _shown(key, after.get(key)))
    out.print(table)


def _leaderboard(out: Console, config: Config, store: Store) -> None:
    period = store.cursors.get(AS_OF_PERIOD_CURSOR)
    users = {u.id: u for u in store.users.all()}
    rows = []
    for user_id in users:
        for s in store.statements.of_rep(user_id, period):
            rows.append((s.attainment or 0, users[user_id].name or user_id, s))
    rows.sort(key=lambda row: row[0], reverse=True)
    awards = store.awards.summary()

    def award(rep_id: str) -> str:
        count, latest = awards.get(rep_id, (0, None))
        return "—" if latest is None else f"{count} · {latest.title}"

    if not out.is_terminal:
        out.print(f"   Leaderboard, {period}:")
        for rank, (_, name, s) in enumerate(rows, start=1):
            attainment = f"{s.attainment * 100:.1f}%" if s.attainment is not None else "—"
            payout = money(s.payout, config.currency, config.locale)
            out.print(
                f"   {rank:>2}. {name:<22} {attainment:>8}  payout {payout:>12}  "
                f"awards {award(s.rep_id)}"
            )
        return
    table = Table(title=f"Leaderboard, {period} ({config.currency})")
    table.add_column("#", justify="right")
    table.add_column("rep")
    for heading in ("attainment", "bookings", "payout"):
        table.add_column(heading, justify="right", no_wrap=True)
    table.add_column("awards")
    for rank, (_, name, s) in enumerate(rows, start=1):
        attainment = f"{s.attainment * 100:.1f}%" if s.attainment is not None else "—"
        table.add_row(
            str(rank),
            name,
            attainment,
            money(s.bookings, config.currency, config.locale),
            money(s.payout, config.currency, config.locale),
            award(s.rep_id),
        )
    out.print(table)


def _coaching(out: Console, store: Store) -> None:
    """What the plays opened: tasks for managers, modules for reps (docs/coaching.md)."""
    tasks = [t for t in store.coaching.of() if t.crm_id is not None]
    plays = [t for t in tasks if t.kind == PLAY]
    if not tasks:
        return
    names = {u.id: u.name for u in store.users.all()}
    out.print(
        f"   Coaching: {len(plays)} play(s) opened a task for a manager in the CRM, and "
        f"{len(tasks) - len(plays)} training module(s) were assigned to reps; for example:"
    )
    for task in plays[:3]:
        out.print(f"   · {task.subject!r}, for {names.get(task.assignee_id, task.assignee_id)}")


def _plays_of(out: Console, store: Store, rep: CrmUser) -> None:
    """The rep's plays now: a win can clear one (its task gets a note)."""
    tasks = [t for t in store.coaching.of([rep.id]) if t.kind == PLAY]
    if tasks:
        said = ", ".join(f"{t.play} ({t.period}): {t.state}" for t in tasks)
        out.print(f"   {rep.name}'s coaching plays now: {said}")


def _write_statement(config: Config, store: Store, rep_id: str, path: Path) -> None:
    from connector.sync.reading import load_view
    from connector.views.statement import html

    with private_file(path) as out:
        out.write(html(load_view(store, config.currency, rep_id, None, config.locale)))


def _keep_running(
    out: Console, crm: str, target: _Crm, receiver_url: str, config_path: Path, rep_id: str
) -> None:
    settings = target.sandbox.settings()
    out.print("\nStill running (Ctrl-C stops everything):")
    out.print(
        f"  sandbox         {target.sandbox.url}  (admin: {settings['admin_url']}, "
        f"header X-Sandbox-Token: {settings['admin_token']})"
    )
    out.print(f"  receiver        {receiver_url}/webhooks/{crm}")
    token = os.environ["SPM_ADMIN_TOKEN"]
    out.print(f"  reports page    {receiver_url}/reports?token={token}")
    out.print(f"  a statement     {receiver_url}/reports/statements/{rep_id}?token={token}")
    out.print(f"  health, metrics {receiver_url}/healthz  {receiver_url}/metrics")
    out.print(f"  config          {config_path}")
    out.print(f"  try             spm-connector --config {config_path} statement <rep email>")
    stopping = threading.Event()
    # SIGTERM (a service manager, a test) stops it as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        stopping.wait()
        out.print("stopped")
    except KeyboardInterrupt:
        out.print("stopped")
