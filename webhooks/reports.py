"""``GET /reports``: the team at a glance, for admins and sales leaders.

Behind ``SPM_ADMIN_TOKEN``: sent as ``Authorization: Bearer …``, or once as
``?token=…`` (which sets a cookie for ``/reports`` and redirects to the same
page without it, so the token does not stay in the address bar). A missing or
wrong token gets 401 and nothing else; with no token configured the page is off.
Everything is rendered on the server; charts are inline SVG, so the page
works offline and fetches nothing.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from urllib.parse import urlencode

from flask import Blueprint, make_response, redirect, render_template, request
from werkzeug.wrappers import Response

from connector.errors import ConnectorError, InputError
from connector.statement import html as statement_page
from connector.statement import load_view, money_text, percent_text
from connector.sync.engine import AS_OF_PERIOD_CURSOR
from connector.sync.inbox import Inbox
from connector.sync.periods import parse_label
from connector.team import team_view
from webhooks.logs import log
from webhooks.receiver import receiver

bp = Blueprint("reports", __name__, template_folder="templates")
COOKIE = "spm_admin"


def _token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.args.get("token") or request.cookies.get(COOKIE)


def _refusal() -> Response | None:
    """None when the request carries the admin token; else the 401 to answer."""
    secret = receiver().secrets.admin_token
    given = _token()
    expected = secret.get_secret_value().encode() if secret is not None else None
    if expected is not None and given is not None and hmac.compare_digest(given.encode(), expected):
        return None
    log("rejected", source="reports", status=401, reason="admin_token", remote=request.remote_addr)
    body = (
        "401 Unauthorized: this page needs the admin token."
        if secret is not None
        else "401 Unauthorized: the reports page is off until SPM_ADMIN_TOKEN is set."
    )
    response = make_response(body, 401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="spm-connector reports"'
    response.mimetype = "text/plain"
    return response


def _settled(page: Response | str) -> Response:
    """The page, and if the token came in the query, a cookie and a redirect without it."""
    if "token" in request.args:
        response = redirect(request.path + _query_without_token(), code=303)
        response.set_cookie(
            COOKIE,
            request.args["token"],
            httponly=True,
            samesite="Strict",
            secure=request.is_secure,
            path="/reports",
        )
        return response
    response = make_response(page)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'"
    )
    return response


def _query_without_token() -> str:
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
    return ("?" + urlencode(rest)) if rest else ""


@bp.get("/reports")
def team() -> Response:
    refusal = _refusal()
    if refusal is not None:
        return refusal
    if "token" in request.args:
        return _settled("")
    state = receiver()
    config, store = state.config, state.store
    try:
        current = store.cursor(AS_OF_PERIOD_CURSOR)
        period = request.args.get("period") or current
        if period is None:
            return _settled(render_template("reports_empty.html"))
        try:
            parse_label(period, config.period)
        except ValueError as error:
            return make_response(f"400: period: {error}", 400)
        statements = store.statements_in(period)
        payouts = store.payouts_by_period(period[:4])
        users = {user.id: user for user in store.users()}
        runs = store.runs(limit=10, kind="sync")
        inbox = Inbox(store)
        recent, depth, counts = inbox.recent(20), inbox.depth(), inbox.counts()
    except ConnectorError as error:
        return make_response(f"503: the store cannot be read ({error})", 503)
    view = team_view(
        statements,
        users,
        config.plans,
        payouts,
        period=period,
        kind=config.period,
        currency=config.currency,
        today=datetime.now(config.zone).date(),
    )
    page = render_template(
        "reports.html",
        team=view,
        runs=runs,
        recent=recent,
        depth=depth,
        counts=counts,
        periods=sorted(payouts),
        chart=view.rows[:50],
        stamp=lambda ms: (
            datetime.fromtimestamp(ms / 1000, config.zone).strftime("%H:%M:%S") if ms else ""
        ),
    )
    return _settled(page)


@bp.get("/reports/statements/<rep_id>")
def statement(rep_id: str) -> Response:
    refusal = _refusal()
    if refusal is not None:
        return refusal
    state = receiver()
    try:
        view = load_view(state.store, state.config.currency, rep_id, request.args.get("period"))
    except InputError as error:
        return make_response(str(error), 404)
    return _settled(statement_page(view))


bp.add_app_template_filter(money_text, "money")
bp.add_app_template_filter(percent_text, "percent")
