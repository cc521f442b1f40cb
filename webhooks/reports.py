"""``GET /reports``: the team at a glance, for admins and sales leaders.

Behind ``SPM_ADMIN_TOKEN`` (see :mod:`webhooks.admin`: a bearer token, or once
``?token=…`` exchanged for a signed, expiring session). A missing or wrong token
gets 401 and nothing else; with no token configured the page is off. Errors are
plain text; pages are Jinja templates with autoescaping.
Everything is rendered on the server; charts are inline SVG, so the page
works offline and fetches nothing.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from flask import Blueprint, make_response, render_template, request
from werkzeug.wrappers import Response

from connector.core.periods import parse_label
from connector.errors import ConnectorError, InputError
from connector.store.cursors import AS_OF_PERIOD_CURSOR
from connector.store.inbox import Inbox
from connector.sync.reading import load_view
from connector.views.money import money
from connector.views.statement import html as statement_page
from connector.views.statement import percent_text
from connector.views.team import team_view
from webhooks.admin import exchanged_token, log_out, refusal, text
from webhooks.receiver import receiver

bp = Blueprint("reports", __name__, template_folder="templates")


def _admitted() -> Response | None:
    """The answer to give instead of the page (a 401, or the token's redirect), or None."""
    refused = refusal()
    return refused if refused is not None else exchanged_token()


@bp.get("/reports")
def team() -> Response:
    if (answer := _admitted()) is not None:
        return answer
    state = receiver()
    config, store = state.config, state.store
    try:
        current = store.cursors.get(AS_OF_PERIOD_CURSOR)
        period = request.args.get("period") or current
        if period is None:
            return _page(render_template("reports_empty.html"))
        try:
            parse_label(period, config.period)
        except ValueError as error:
            return text(f"400 Bad Request: period: {error}", 400)
        statements = store.statements.in_period(period)
        payouts = store.statements.payouts_by_period(period[:4])
        users = {user.id: user for user in store.users.all()}
        runs = store.runs.recent(limit=10, kind="sync")
        inbox = Inbox(store)
        recent, depth, counts = inbox.recent(20), inbox.depth(), inbox.counts()
    except ConnectorError as error:
        return text(f"503 Service Unavailable: the store cannot be read ({error})", 503)
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
    return _page(page)


@bp.get("/reports/statements/<rep_id>")
def statement(rep_id: str) -> Response:
    if (answer := _admitted()) is not None:
        return answer
    state = receiver()
    try:
        view = load_view(
            state.store,
            state.config.currency,
            rep_id,
            request.args.get("period"),
            state.config.locale,
        )
    except InputError as error:
        return text(f"404 Not Found: {error}", 404)
    return _page(statement_page(view))


@bp.post("/reports/logout")
def logout() -> Response:
    return log_out()


def _page(html: str) -> Response:
    """A rendered page (Jinja, autoescaped), never kept by a cache."""
    response = make_response(html)
    response.headers["Cache-Control"] = "no-store"
    return response


def _money(value: Decimal | None) -> str:
    """Money as the page's readers read it: the config's currency and locale."""
    config = receiver().config
    return money(value, config.currency, config.locale)


bp.add_app_template_filter(_money, "money")
bp.add_app_template_filter(percent_text, "percent")
