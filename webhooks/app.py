"""The Flask app factory: ``create_app()`` for any WSGI server, ``serve`` for one command.

    gunicorn 'webhooks.app:create_app()'

reads ``spm.yaml`` (or ``$SPM_CONFIG``) and the ``SPM_*`` secrets from the
environment, exactly as the CLI does. Tests and the demo pass a config.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from connector.config import (
    Config,
    Secrets,
    load_config,
    load_secrets,
    resolve_config_path,
    store_url,
)
from connector.logs import log
from connector.store.state import Store
from webhooks import events, hubspot, my, ops, pay, reports, salesforce
from webhooks.admin import init_admin
from webhooks.receiver import Receiver, init_app, receiver, rejected
from webhooks.signing import Rejected

_SOURCES = {"/webhooks/hubspot": "hubspot", "/webhooks/salesforce": "salesforce"}


def create_app(
    config: Config | str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    store: Store | None = None,
    clock: Callable[[], datetime] | None = None,
    secrets: Secrets | None = None,
) -> Flask:
    """The receiver: ``config`` is a loaded config, a path, or None for $SPM_CONFIG/spm.yaml.

    ``secrets``: an account's own (a deployment's, connector/accounts.py); else they are
    read from the environment and ``.env`` as the CLI reads them."""
    env = os.environ if environ is None else environ
    if not isinstance(config, Config):
        config = load_config(resolve_config_path(None if config is None else str(config), env))
    if secrets is None:
        secrets = load_secrets(env, Path.cwd(), config)
    # The receiver leaves WAL checkpoints to the worker and the sync (see Store.open).
    state = Receiver(
        config, secrets, store or Store.open(store_url(config, env), checkpoints=False)
    )
    if clock is not None:
        state.clock = clock
    app = Flask(__name__)
    init_app(app, state)
    for blueprint in (hubspot.bp, salesforce.bp, events.bp, ops.bp, reports.bp, pay.bp, my.bp):
        app.register_blueprint(blueprint)
    admin = secrets.admin_token.get_secret_value() if secrets.admin_token is not None else None
    init_admin(app, admin_token=admin, trusted_proxies=config.webhooks.trusted_proxies)
    _handle_errors(app)
    return app


def _handle_errors(app: Flask) -> None:
    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> tuple[Response, int]:
        # A body without a length that grew past webhooks.max_body_bytes while read.
        source = _SOURCES.get(request.path, "events")
        limit = receiver().config.webhooks.max_body_bytes
        rejected(
            source,
            Rejected(413, "too_large", f"the body is over {limit} bytes"),
            time.perf_counter(),
        )
        return jsonify({"error": "too_large"}), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        return jsonify({"error": (error.name or "error").lower().replace(" ", "_")}), status

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        # Never the traceback or the request to the caller; the log keeps what went wrong.
        log(
            "internal_error",
            level=logging.ERROR,
            path=request.path,
            error=f"{type(error).__name__}: {error}",
        )
        return jsonify({"error": "internal"}), 500
