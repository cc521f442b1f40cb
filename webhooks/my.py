"""``/my/<link>``: a rep's own statements, opened from the link on their CRM record.

The link is the rep's credential (:mod:`connector.sync.links`): it names one rep,
expires, and dies with the signing key. No admin token is needed and none is
accepted here; a link shows its rep and no one else, whatever the query says.
On the page the rep acknowledges a statement or opens a dispute on a line; each
action is stored with its time and goes into the pay cycle's event log.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote, urlencode

from flask import Blueprint, make_response, request
from werkzeug.wrappers import Response

from connector.connect import statement_links
from connector.core.closing import PRELIMINARY
from connector.errors import ConnectorError, InputError
from connector.logs import log
from connector.store.reviews import ACKNOWLEDGED, DISPUTE
from connector.sync.links import LinkRefused
from connector.sync.reading import load_view
from connector.views.statement import ReviewPanel
from connector.views.statement import html as statement_page
from webhooks.admin import text
from webhooks.receiver import receiver

bp = Blueprint("my", __name__)

COMMENT_LIMIT = 2000
_NOTICES = {"acknowledged": "Thank you: your acknowledgement is recorded.",
            "disputed": "Your dispute is recorded; finance will answer here."}  # fmt: skip


def _rep_of(token: str) -> str | Response:
    state = receiver()
    links = statement_links(state.config, state.secrets)
    if links is None:
        return text("404 Not Found: statement links are off here.", 404)
    try:
        return links.rep_of(token, datetime.now(state.config.zone).date())
    except (LinkRefused, ValueError) as error:
        log("rejected", source="my", status=403, reason="link", remote=request.remote_addr)
        return text(f"403 Forbidden: {error}", 403)


def _page(html: str) -> Response:
    response = make_response(html)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/my/<token>")
def mine(token: str) -> Response:
    rep = _rep_of(token)
    if isinstance(rep, Response):
        return rep
    state = receiver()
    store, config = state.store, state.config
    try:
        view = load_view(store, config.currency, rep, request.args.get("period"), config.locale)
        statement = view.statement
        statuses = store.pay.statuses()
        reviews = [
            r
            for r in store.reviews.of_rep(rep)
            if r.period == statement.period and r.plan_id == statement.plan_id
        ]
        periods = sorted({s.period for s in store.statements.of_rep(rep)})
    except InputError as error:
        return text(f"404 Not Found: {error}", 404)
    except ConnectorError as error:
        return text(f"503 Service Unavailable: the store cannot be read ({error})", 503)
    acknowledged = [r.at for r in reviews if r.kind == ACKNOWLEDGED]
    history = []
    for review in reviews:
        if review.kind != DISPUTE:
            continue
        said = f"Dispute of {review.at}: {review.comment}"
        if review.reply:
            said += f" — answered {review.resolved_at}: {review.reply}"
        history.append(said)
    panel = ReviewPanel(
        action=f"{request.script_root}/my/{quote(token)}",
        status=statuses.get(statement.period, PRELIMINARY),
        periods=periods,
        acknowledged_at=acknowledged[0] if acknowledged else None,
        history=history,
        notice=_NOTICES.get(request.args.get("done", ""), ""),
    )
    return _page(statement_page(view, panel))


@bp.post("/my/<token>/acknowledge")
def acknowledge(token: str) -> Response:
    return _act(token, ACKNOWLEDGED)


@bp.post("/my/<token>/dispute")
def dispute(token: str) -> Response:
    return _act(token, DISPUTE)


def _act(token: str, kind: str) -> Response:
    rep = _rep_of(token)
    if isinstance(rep, Response):
        return rep
    state = receiver()
    period, plan = request.form.get("period", ""), request.form.get("plan", "")
    found = [s for s in state.store.statements.of_rep(rep, period) if s.plan_id == plan]
    if not found:
        return text(f"404 Not Found: no statement of yours for {period} on {plan}", 404)
    statement = found[0]
    now = state.clock()
    if kind == ACKNOWLEDGED:
        state.store.reviews.acknowledge(statement, now)
        done = "acknowledged"
    else:
        comment = request.form.get("comment", "").strip()
        if not comment or len(comment) > COMMENT_LIMIT:
            return text(
                f"400 Bad Request: say what is wrong (1 to {COMMENT_LIMIT} characters)", 400
            )
        line_text = request.form.get("line", "")
        line = int(line_text) if line_text.isdigit() else None
        if line is not None and line >= len(statement.lines):
            return text("400 Bad Request: line: the statement has no such line", 400)
        state.store.reviews.dispute(statement, line, comment, now)
        done = "disputed"
    response = make_response("", 303)
    query = urlencode({"period": period, "done": done})
    response.headers["Location"] = f"{request.script_root}/my/{quote(token)}?{query}"
    return response
