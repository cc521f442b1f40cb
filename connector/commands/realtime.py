"""``serve`` and ``worker``: the real-time half.

``serve`` runs the webhook receiver (werkzeug's threaded server; in production
put any WSGI server on ``webhooks.app:create_app()``) and, unless told not
to, the worker in the same process. ``worker`` runs the worker alone, beside
web-only receivers; any number of them share the store's inbox.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType

import click
from flask import Flask
from werkzeug.serving import make_server

from connector.accounts import Deployment, load_deployment
from connector.adapters.retry import RetryPolicy
from connector.commands.common import as_of_date, config_of, config_option, console
from connector.config import Config, Secrets, config_warnings, load_secrets, store_url
from connector.connect import adapter_for, sync_settings
from connector.errors import ConfigError
from connector.logs import log
from connector.store.inbox import Inbox
from connector.store.state import Store
from connector.store.wakeups import InboxListener
from connector.sync.accounts import AccountsWorker
from connector.sync.engine import SyncEngine
from connector.sync.metrics import Metrics
from connector.sync.run import SyncOptions, SyncSummary
from connector.sync.schedule import Scheduler
from connector.sync.worker import Worker
from webhooks.app import create_app
from webhooks.deployment import create_deployment_app, router_of
from webhooks.receiver import EXTENSION, Receiver

SWITCH_INTERVAL_S = 0.0005


def build_worker(
    config: Config,
    store: Store,
    metrics: Metrics | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    as_of: date | None = None,
    secrets: Secrets | None = None,
) -> Worker:
    """A worker on ``store``'s inbox, with its own adapter and engine; ``secrets``: an
    account's own, else read from the environment and ``.env`` as every command does."""
    retry = RetryPolicy(on_wait=lambda line: log("waiting", detail=line))
    if secrets is None:
        secrets = load_secrets(os.environ if environ is None else environ, Path.cwd(), config)
    adapter = adapter_for(config, secrets, retry=retry, cache=store.cache, budget=store.budgets)
    engine = SyncEngine(
        sync_settings(config, secrets), adapter, store, clock=lambda: datetime.now(UTC)
    )

    def today() -> date:
        return as_of if as_of is not None else datetime.now(config.zone).date()

    scheduler = None
    if config.schedule is not None:

        def run_sync(full: bool, still_due: Callable[[], bool]) -> SyncSummary:
            options = SyncOptions(as_of=today(), full=full, only_if=still_due)
            return engine.run(options)

        scheduler = Scheduler(config.schedule, store, run_sync, config.zone,
                              lambda: datetime.now(UTC), today)  # fmt: skip
    return Worker(Inbox(store), engine, today=today, metrics=metrics, scheduler=scheduler)


def quiet_access_log() -> None:
    """No line per request from werkzeug: our own log says what each delivery did."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def _logging() -> None:
    """One JSON object per line on stderr: what log collectors ingest as is."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("spm")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    quiet_access_log()


def _on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@dataclass
class _Serving:
    """What ``serve`` runs: the app, the worker it may run beside it, and its wake-up."""

    app: Flask
    runner: Callable[[], Worker | AccountsWorker]
    stores: list[Store]
    wake: threading.Event
    warnings: list[str]


def _missing_lines(prefix: str, state: Receiver) -> list[str]:
    return [
        f"{prefix}{name} is not set: every delivery from the CRM will be refused "
        "(403/401) and /healthz answers not_ready until it is"
        for name in state.missing_secrets()
    ]


@contextmanager
def _one_account(ctx: click.Context) -> Iterator[_Serving]:
    config = config_of(ctx)
    url = store_url(config, os.environ)
    # Two handles on one store: acknowledgements never wait for the worker's
    # checkpoints (Store.open), while the worker's commits keep the log short.
    with Store.open(url) as store, Store.open(url, checkpoints=False) as receiving:
        app = create_app(config, store=receiving)
        state: Receiver = app.extensions[EXTENSION]
        warnings = [*config_warnings(config), *_missing_lines("", state)]
        yield _Serving(app, lambda: build_worker(config, store, state.metrics), [store],
                       state.wake, warnings)  # fmt: skip


@contextmanager
def _many_accounts(deployment: Deployment) -> Iterator[_Serving]:
    with contextlib.ExitStack() as stack:
        stores = {a.name: stack.enter_context(Store.open(a.store_url)) for a in deployment.accounts}
        receiving = {
            a.name: stack.enter_context(Store.open(a.store_url, checkpoints=False))
            for a in deployment.accounts
        }
        app = create_deployment_app(deployment, stores=receiving)
        router = router_of(app)
        wake = threading.Event()  # one worker for every account: any delivery wakes it
        warnings: list[str] = []
        for account in deployment.accounts:
            state = router.state(account.name)
            state.wake = wake
            warnings += [f"{account.name}: {w}" for w in config_warnings(account.config)]
            warnings += _missing_lines(f"{account.name}: ", state)

        def runner() -> AccountsWorker:
            return accounts_worker(deployment, stores,
                                   {n: router.state(n).metrics for n in stores})  # fmt: skip

        yield _Serving(app, runner, list(stores.values()), wake, warnings)


def accounts_worker(
    deployment: Deployment,
    stores: Mapping[str, Store],
    metrics: Mapping[str, Metrics] | None = None,
    *,
    as_of: date | None = None,
) -> AccountsWorker:
    """One worker for every account of a deployment, each on its own store."""
    workers = {
        a.name: build_worker(
            a.config,
            stores[a.name],
            metrics[a.name] if metrics is not None else None,
            as_of=as_of,
            secrets=a.secrets,
        )
        for a in deployment.accounts
    }
    return AccountsWorker(workers)


def listen(stores: Sequence[Store], wake: threading.Event, stop: threading.Event) -> bool:
    """LISTEN for the receivers' inserts, once per database server the stores are on."""
    servers = {store.server: store for store in stores}
    started = [InboxListener(store, wake, stop).start() for store in servers.values()]
    return any(started)


accounts_option = click.option(
    "--accounts",
    "accounts_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Serve every account in DIR (DIR/<account>/spm.yaml and .env) instead of --config.",
)


@click.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free."
)
@click.option("--no-worker", is_flag=True, help="Only receive; run `spm-connector worker` apart.")
@accounts_option
@click.pass_context
def serve(
    ctx: click.Context, host: str, port: int, no_worker: bool, accounts_dir: Path | None
) -> None:
    """Receive CRM webhooks and apply them (the worker runs in the same process)."""
    out = console()
    _logging()
    deployment = load_deployment(accounts_dir, os.environ) if accounts_dir is not None else None
    serving = _many_accounts(deployment) if deployment is not None else _one_account(ctx)
    with serving as served:
        for warning in served.warnings:
            out.print(f"warning: {warning}")
        stop = threading.Event()
        try:
            # werkzeug prints its own paragraph about a port in use, then exits 1: ours
            # is the one line, with exit 2.
            with contextlib.redirect_stderr(io.StringIO()):
                server = make_server(host, port, served.app, threaded=True)
        except (OSError, SystemExit) as error:
            reason = error.strerror if isinstance(error, OSError) else "the address is in use"
            raise ConfigError(
                f"serve: cannot listen on {host}:{port} ({reason}); choose another --port or --host"
            ) from None
        thread: threading.Thread | None = None
        if not no_worker:
            # The worker's computing holds the GIL for up to the switch interval at a time,
            # and an acknowledgement needs it a dozen times: hand it over more often.
            sys.setswitchinterval(SWITCH_INTERVAL_S)
            runner = served.runner()
            # Receivers in other processes (gunicorn) wake it too, on PostgreSQL.
            listen(served.stores, served.wake, stop)
            thread = threading.Thread(
                target=runner.run, args=(stop, served.wake), name="spm-worker", daemon=True
            )
            thread.start()
        shown_host = f"[{host}]" if ":" in host else host
        out.print(f"receiving webhooks on http://{shown_host}:{server.port}", highlight=False)
        out.print("  POST /webhooks/hubspot  /webhooks/salesforce  /webhooks/events")
        out.print("  GET  /healthz  /metrics  /reports (with SPM_ADMIN_TOKEN)")
        if deployment is not None:
            names = ", ".join(a.name for a in deployment.accounts)
            out.print(f"  accounts: {names}, each under /accounts/<name>/", highlight=False)
        if no_worker:
            out.print("  worker: not in this process (run `spm-connector worker`)")

        def shut_down() -> None:
            stop.set()
            served.wake.set()
            # shutdown() waits for serve_forever to return: never from its own thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

        _on_signals(shut_down)
        try:
            server.serve_forever()
        finally:
            stop.set()
            served.wake.set()
            if thread is not None:
                thread.join(timeout=30)
            server.server_close()
    out.print("stopped")


@click.command()
@config_option
@click.option("--once", is_flag=True, help="Apply what is due, then exit.")
@click.option(
    "--retry-parked", is_flag=True, help="Queue parked events again (after fixing their cause)."
)
@click.option("--as-of", "as_of_text", metavar="DATE", help="Fix 'today' (YYYY-MM-DD).")
@accounts_option
@click.pass_context
def worker(
    ctx: click.Context,
    once: bool,
    retry_parked: bool,
    as_of_text: str | None,
    accounts_dir: Path | None,
) -> None:
    """Apply stored webhook events to the CRM (beside web-only `serve --no-worker` receivers)."""
    out = console()
    _logging()
    with contextlib.ExitStack() as stack:
        if accounts_dir is not None:
            deployment = load_deployment(accounts_dir, os.environ)
            as_of = as_of_date(as_of_text, deployment.accounts[0].config) if as_of_text else None
            stores = {
                a.name: stack.enter_context(Store.open(a.store_url)) for a in deployment.accounts
            }
            runner: Worker | AccountsWorker = accounts_worker(deployment, stores, as_of=as_of)
        else:
            config = config_of(ctx)
            as_of = as_of_date(as_of_text, config) if as_of_text else None
            stores = {"": stack.enter_context(Store.open(store_url(config, os.environ)))}
            runner = build_worker(config, stores[""], as_of=as_of)
        inboxes = {name: Inbox(store) for name, store in stores.items()}
        if retry_parked:
            count = sum(inbox.retry_parked(datetime.now(UTC)) for inbox in inboxes.values())
            out.print(f"queued {count} parked event(s) again")
        if once:
            applied = runner.drain()
            depths = [inbox.depth() for inbox in inboxes.values()]
            waiting, parked = sum(d.queued for d in depths), sum(d.parked for d in depths)
            out.print(f"worker: {applied} event(s) handled; {waiting} waiting, {parked} parked")
            ctx.exit(1 if parked else 0)
        stop, wake = threading.Event(), threading.Event()
        _on_signals(stop.set)
        # PostgreSQL: a receiver's insert wakes this worker at once (LISTEN/NOTIFY).
        woken = listen(list(stores.values()), wake, stop)
        how = "woken by the receivers (LISTEN/NOTIFY)" if woken else "polling the inbox"
        out.print(f"worker running, {how}; Ctrl-C or SIGTERM stops it after the current batch")
        runner.run(stop, wake)
    out.print("stopped")
