"""One receiver for many CRM accounts (connector/accounts.py).

    gunicorn 'webhooks.deployment:create_deployment_app("/srv/spm/accounts")'

Each account is served by its own receiver app (``create_app``) under
``/accounts/<name>``: its reports, pay pages, reps' statements, ``/healthz`` and
``/metrics``, and its own ``/webhooks/events``. The CRMs' own endpoints stay where
a CRM app calls them, ``/webhooks/hubspot`` and ``/webhooks/salesforce``: a
delivery goes to the account its ``portalId`` or ``OrganizationId`` names, whose
receiver checks its signature or org id and stores it in that account's inbox,
exactly as a receiver of one account does. A delivery for no account of the
deployment is refused (404, or Salesforce's SOAP fault) and counted.

The top-level ``/healthz`` says how every account is, and ``/metrics`` is every
account's metrics, each labelled ``account``.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.metrics_core import Metric
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import run_wsgi_app

from connector.accounts import Account, Deployment, load_deployment
from connector.config import CrmType
from connector.logs import about_account, log
from connector.store.state import Store
from webhooks import salesforce
from webhooks.admin import secured
from webhooks.app import create_app
from webhooks.hubspot import PUBLIC_BASE
from webhooks.ops import health
from webhooks.receiver import EXTENSION, Receiver
from webhooks.signing import Rejected

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

ACCOUNTS = "spm_accounts"
PREFIX = "/accounts/"
REFRESH_S = 5.0  # how often an unknown portal id may make the router look at the stores


class Router:
    """The accounts' receivers, and which CRM account id goes to which."""

    def __init__(self, deployment: Deployment, apps: Mapping[str, Flask]) -> None:
        self.deployment = deployment
        self.apps = dict(apps)
        self.registry = CollectorRegistry()
        self.unrouted = Counter(
            "spm_webhook_deliveries_unrouted",
            "Deliveries for no account of this deployment.",
            ["source"],
            registry=self.registry,
        )
        self._routes: dict[str, str] = {}
        self._looked_at = float("-inf")
        self._lock = threading.Lock()

    def state(self, name: str) -> Receiver:
        state: Receiver = self.apps[name].extensions[EXTENSION]
        return state

    def account_for(self, crm: CrmType, account_id: str) -> str | None:
        """The account a CRM account id belongs to; a HubSpot portal without ``portal_id:``
        is known once the account's first sync has recorded it."""
        key = f"{crm}:{account_id}"
        with self._lock:
            if key not in self._routes and time.monotonic() - self._looked_at >= REFRESH_S:
                self._looked_at = time.monotonic()
                self._routes = self._look_up()
            return self._routes.get(key)

    def _look_up(self) -> dict[str, str]:
        routes: dict[str, str] = {}
        for account in self.deployment.accounts:
            route = account.org_id or account.portal_id
            if route is None and account.crm is CrmType.HUBSPOT:
                try:
                    route = self.state(account.name).account()
                except Rejected:
                    route = None  # its store is down: its deliveries wait for the retry
            if route is not None:
                routes[f"{account.crm}:{route}"] = account.name
        return routes

    def forward(self, name: str, body: bytes, public_base: str) -> Response:
        """The delivery, as received, answered by one account's receiver."""
        environ = dict(request.environ)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ.pop("wsgi.input_terminated", None)
        environ.update(
            {
                "wsgi.input": io.BytesIO(body),
                "CONTENT_LENGTH": str(len(body)),
                PUBLIC_BASE: public_base,
            }
        )
        with about_account(name):
            app_iter, status, headers = run_wsgi_app(self.apps[name].wsgi_app, environ)
            try:
                content = b"".join(app_iter)
            finally:
                close = getattr(app_iter, "close", None)
                if close is not None:
                    close()
        return Response(content, status=status, headers=headers)


def create_deployment_app(
    deployment: Deployment | str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    stores: Mapping[str, Store] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Flask:
    """The receiver of every account under ``deployment`` (a loaded one, or its folder)."""
    env = os.environ if environ is None else environ
    if not isinstance(deployment, Deployment):
        deployment = load_deployment(deployment, env)
    apps: dict[str, Flask] = {}
    for account in deployment.accounts:
        apps[account.name] = _account_app(account, env, stores, clock)
    router = Router(deployment, apps)
    app = Flask(__name__)
    app.extensions[ACCOUNTS] = router
    app.config["MAX_CONTENT_LENGTH"] = deployment.settings.webhooks.max_body_bytes
    app.after_request(secured)
    _routes(app, router)
    mounted: dict[str, WSGIApplication] = {
        f"{PREFIX}{name}": account_app for name, account_app in apps.items()
    }
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, mounted)  # type: ignore[method-assign]
    proxies = deployment.settings.webhooks.trusted_proxies
    if proxies:
        n = proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n
        )
    return app


def _account_app(
    account: Account,
    env: Mapping[str, str],
    stores: Mapping[str, Store] | None,
    clock: Callable[[], datetime] | None,
) -> Flask:
    # The receiver leaves WAL checkpoints to the worker and the sync (see Store.open).
    store = stores[account.name] if stores is not None else None
    if store is None:
        store = Store.open(account.store_url, checkpoints=False)
    return create_app(account.config, environ=env, store=store, clock=clock,
                      secrets=account.secrets)  # fmt: skip


def router_of(app: Flask) -> Router:
    router: Router = app.extensions[ACCOUNTS]
    return router


def _routes(app: Flask, router: Router) -> None:
    @app.post("/webhooks/hubspot")
    def hubspot() -> Response | tuple[Response, int]:
        body = request.get_data(cache=False)
        try:
            payload: Any = json.loads(body)
        except (ValueError, RecursionError):
            payload = None
        if not isinstance(payload, list):
            detail = "expected a JSON array of events"
            return jsonify({"error": "malformed", "detail": detail}), 400
        portals = {str(item.get("portalId")) for item in payload if isinstance(item, dict)}
        names = sorted(
            {n for p in portals if (n := router.account_for(CrmType.HUBSPOT, p)) is not None}
        )
        if not names:
            return _unrouted(router, "hubspot", sorted(portals))
        # A HubSpot app's batch may hold several portals' events: each account's receiver
        # stores its own and skips the rest. It is acknowledged once every one has stored.
        answers = [router.forward(name, body, _public_base(router)) for name in names]
        failed = [a for a in answers if a.status_code >= 300]
        if failed:
            return max(failed, key=lambda a: a.status_code)
        if len(answers) == 1:
            return answers[0]
        stored = {name: a.get_json(silent=True) for name, a in zip(names, answers, strict=True)}
        return jsonify(stored), 200

    @app.post("/webhooks/salesforce")
    def salesforce_messages() -> Response:
        body = request.get_data(cache=False)
        try:
            org_id = salesforce.organization_of(body)
        except Rejected as error:
            return salesforce.fault(error)
        name = router.account_for(CrmType.SALESFORCE, org_id)
        if name is None:
            router.unrouted.labels("salesforce").inc()
            log("unrouted", source="salesforce", org_id=org_id)
            return salesforce.fault(
                Rejected(403, "unknown_org", "the message is from no organization served here")
            )
        return router.forward(name, body, _public_base(router))

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        accounts = {name: health(router.state(name))[0] for name in router.apps}
        statuses = {a.get("status") for a in accounts.values()}
        status = "ok" if statuses == {"ok"} else ("down" if statuses == {"down"} else "degraded")
        # A load balancer keeps this receiver while any account can be served.
        return jsonify({"status": status, "accounts": accounts}), 503 if status == "down" else 200

    @app.get("/metrics")
    def metrics() -> Response:
        registry = CollectorRegistry()
        registry.register(_Labelled(router))
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        return jsonify({"error": (error.name or "error").lower().replace(" ", "_")}), status


def _public_base(router: Router) -> str:
    """The scheme and host the CRM called: what HubSpot signed."""
    public = router.deployment.settings.webhooks.public_url
    return (public or request.host_url).rstrip("/")


def _unrouted(router: Router, source: str, ids: list[str]) -> tuple[Response, int]:
    router.unrouted.labels(source).inc()
    log("unrouted", source=source, portals=ids[:10])
    # 4xx: HubSpot does not retry a delivery no account here will ever take.
    return jsonify({"error": "unknown_account", "detail": "no account here is for it"}), 404


class _Labelled:
    """Every account's metrics, each sample labelled with its account."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        registries = [("", self.router.registry)] + [
            (name, self.router.state(name).metrics.registry) for name in self.router.apps
        ]
        for name, registry in registries:
            for family in registry.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = Metric(family.name, family.documentation, family.type, family.unit)
                    families[family.name] = merged
                for sample in family.samples:
                    labels = {**sample.labels, "account": name} if name else sample.labels
                    merged.samples.append(sample._replace(labels=labels))
        yield from families.values()
