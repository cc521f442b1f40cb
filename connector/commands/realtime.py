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
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType

import click
from werkzeug.serving import make_server

from connector.adapters.retry import RetryPolicy
from connector.commands.common import as_of_date, config_of, config_option, console
from connector.config import Config, config_warnings, load_secrets, store_url
from connector.connect import adapter_for, sync_settings
from connector.errors import ConfigError
from connector.logs import log
from connector.store.inbox import Inbox
from connector.store.state import Store
from connector.store.wakeups import InboxListener
from connector.sync.engine import SyncEngine
from connector.sync.metrics import Metrics
from connector.sync.run import SyncOptions, SyncSummary
from connector.sync.schedule import Scheduler
from connector.sync.worker import Worker
from webhooks.app import create_app
from webhooks.receiver import EXTENSION, Receiver

SWITCH_INTERVAL_S = 0.0005


def build_worker(
    config: Config,
    store: Store,
    metrics: Metrics | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    as_of: date | None = None,
) -> Worker:
    """A worker on ``store``'s inbox, with its own adapter and engine."""
    retry = RetryPolicy(on_wait=lambda line: log("waiting", detail=line))
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


@click.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free."
)
@click.option("--no-worker", is_flag=True, help="Only receive; run `spm-connector worker` apart.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, no_worker: bool) -> None:
    """Receive CRM webhooks and apply them (the worker runs in the same process)."""
    config = config_of(ctx)
    out = console()
    for warning in config_warnings(config):
        out.print(f"warning: {warning}")
    _logging()
    url = store_url(config, os.environ)
    # Two handles on one store: acknowledgements never wait for the worker's
    # checkpoints (Store.open), while the worker's commits keep the log short.
    with Store.open(url) as store, Store.open(url, checkpoints=False) as receiving:
        app = create_app(config, store=receiving)
        state: Receiver = app.extensions[EXTENSION]
        for name in state.missing_secrets():
            out.print(
                f"warning: {name} is not set: every delivery from the CRM will be refused "
                "(403/401) and /healthz answers not_ready until it is"
            )
        stop = threading.Event()
        try:
            # werkzeug prints its own paragraph about a port in use, then exits 1: ours
            # is the one line, with exit 2.
            with contextlib.redirect_stderr(io.StringIO()):
                server = make_server(host, port, app, threaded=True)
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
            worker = build_worker(config, store, state.metrics)
            # Receivers in other processes (gunicorn) wake it too, on PostgreSQL.
            InboxListener(store, state.wake, stop).start()
            thread = threading.Thread(
                target=worker.run, args=(stop, state.wake), name="spm-worker", daemon=True
            )
            thread.start()
        shown_host = f"[{host}]" if ":" in host else host
        out.print(f"receiving webhooks on http://{shown_host}:{server.port}", highlight=False)
        out.print("  POST /webhooks/hubspot  /webhooks/salesforce  /webhooks/events")
        out.print("  GET  /healthz  /metrics  /reports (with SPM_ADMIN_TOKEN)")
        if no_worker:
            out.print("  worker: not in this process (run `spm-connector worker`)")

        def shut_down() -> None:
            stop.set()
            state.wake.set()
            # shutdown() waits for serve_forever to return: never from its own thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

        _on_signals(shut_down)
        try:
            server.serve_forever()
        finally:
            stop.set()
            state.wake.set()
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
@click.pass_context
def worker(ctx: click.Context, once: bool, retry_parked: bool, as_of_text: str | None) -> None:
    """Apply stored webhook events to the CRM (beside web-only `serve --no-worker` receivers)."""
    config = config_of(ctx)
    as_of = as_of_date(as_of_text, config) if as_of_text else None
    out = console()
    _logging()
    with Store.open(store_url(config, os.environ)) as store:
        inbox = Inbox(store)
        if retry_parked:
            count = inbox.retry_parked(datetime.now(UTC))
            out.print(f"queued {count} parked event(s) again")
        runner = build_worker(config, store, as_of=as_of)
        if once:
            applied = runner.drain()
            depth = inbox.depth()
            out.print(
                f"worker: {applied} event(s) handled; {depth.queued} waiting, {depth.parked} parked"
            )
            ctx.exit(1 if depth.parked else 0)
        stop, wake = threading.Event(), threading.Event()
        _on_signals(stop.set)
        # PostgreSQL: a receiver's insert wakes this worker at once (LISTEN/NOTIFY).
        woken = InboxListener(store, wake, stop).start()
        how = "woken by the receivers (LISTEN/NOTIFY)" if woken else "polling the inbox"
        out.print(f"worker running, {how}; Ctrl-C or SIGTERM stops it after the current batch")
        runner.run(stop, wake)
    out.print("stopped")
