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
from urllib.parse import quote

from flask import Blueprint, make_response, render_template, request
from werkzeug.wrappers import Response

from connector.core.periods import parse_label
from connector.errors import ConnectorError, InputError
from connector.store.cursors import AS_OF_PERIOD_CURSOR
from connector.sync.coaching_page import load_coaching
from connector.sync.reading import TeamPage, load_pay_panel, load_team_page, load_view
from connector.views.money import money
from connector.views.statement import NoteForm, percent_text
from connector.views.statement import html as statement_page
from connector.views.team import SPANS
from connector.views.team_csv import EXPORTS, export_csv
from webhooks.admin import csrf_token, exchanged_token, forged, log_out, refusal, role, text
from webhooks.receiver import receiver

bp = Blueprint("reports", __name__, template_folder="templates")


def _admitted() -> Response | None:
    """The answer to give instead of the page (a 401, or the token's redirect), or None."""
    refused = refusal()
    return refused if refused is not None else exchanged_token()


def _team_page() -> TeamPage | Response:
    """The page's data for the period and team asked for, or the answer to give instead."""
    state = receiver()
    config, store = state.config, state.store
    try:
        period = request.args.get("period") or store.cursors.get(AS_OF_PERIOD_CURSOR)
        if period is None:
            return _page(render_template("reports_empty.html"))
        try:
            parse_label(period, config.period)
        except ValueError as error:
            return text(f"400 Bad Request: period: {error}", 400)
        span = request.args.get("span") or "period"
        if span not in SPANS:
            return text(f"400 Bad Request: span: one of {', '.join(SPANS)}", 400)
        return load_team_page(
            store,
            config.plans,
            period=period,
            kind=config.period,
            currency=config.currency,
            today=datetime.now(config.zone).date(),
            team=request.args.get("team"),
            span=span,
        )
    except ConnectorError as error:
        return text(f"503 Service Unavailable: the store cannot be read ({error})", 503)


@bp.get("/reports")
def team() -> Response:
    if (answer := _admitted()) is not None:
        return answer
    data = _team_page()
    if isinstance(data, Response):
        return data
    config = receiver().config
    zone = config.zone
    pay = load_pay_panel(
        receiver().store, data.team.period, config.period, datetime.now(zone).date(),
        config.pay_cycle.approvals,
    )  # fmt: skip
    page = render_template(
        "reports.html",
        pay=pay,
        csrf=csrf_token(),
        role=role(),
        notice=request.args.get("notice", "")[:300],
        team=data.team,
        syncs=data.syncs,
        activity=data.activity,
        depth=data.depth,
        counts=data.counts,
        periods=data.periods,
        chart=data.team.rows[:50],
        awards=receiver().store.awards.summary(),
        coaching=load_coaching(
            receiver().store,
            config.coaching,
            config.training,
            {r.rep_id: (r.name, _team_name(data, r.team_id)) for r in data.team.rows},
            datetime.now(zone).date(),
        ),
        spans=SPANS,
        stamp=lambda ms: datetime.fromtimestamp(ms / 1000, zone).strftime("%H:%M:%S") if ms else "",
    )
    return _page(page)


@bp.get("/reports/export.csv")
def export() -> Response:
    """One of the page's tables as CSV, for a spreadsheet: exact figures, safe cells."""
    if (answer := _admitted()) is not None:
        return answer
    which = request.args.get("table", "")
    if which not in EXPORTS:
        return text(f"400 Bad Request: table: one of {', '.join(sorted(EXPORTS))}", 400)
    data = _team_page()
    if isinstance(data, Response):
        return data
    body = export_csv(which, data.team, data.syncs, data.activity)
    response = make_response(body)
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    span = "" if data.team.span == "period" else f"-{data.team.span}"
    name = f"{which}-{data.team.period}{span}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


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
    action = f"{request.script_root}/reports/statements/{quote(view.rep.id, safe='')}/notes"
    form = NoteForm(action, csrf_token())
    return _page(statement_page(view, note_form=form))


@bp.post("/reports/statements/<rep_id>/notes")
def note(rep_id: str) -> Response:
    """A manager's note for the rep (the admin's or an approver's token; a form from this
    session): kept with its author and time, shown on the rep's statement pages."""
    refused = refusal() or exchanged_token() or forged()
    if refused is not None:
        return refused
    state = receiver()
    try:
        view = load_view(state.store, state.config.currency, rep_id, request.form.get("period"))
        state.store.notes.add(
            view.rep.id,
            view.statement.period,
            _author(request.form.get("by", "")),
            request.form.get("note", ""),
            datetime.now(state.config.zone),
        )
    except InputError as error:
        return text(f"404 Not Found: {error}", 404)
    except ValueError as error:
        return text(f"400 Bad Request: {error}", 400)
    response = make_response("", 303)
    response.headers["Location"] = (
        f"{request.script_root}/reports/statements/{quote(view.rep.id, safe='')}"
        f"?period={view.statement.period}"
    )
    return response


@bp.post("/reports/logout")
def logout() -> Response:
    return log_out()


def _author(name: str) -> str:
    """Who left a note: the name they gave and the role they signed in with ("" when they
    gave none, which the note refuses)."""
    name = name.strip()[:80]
    return f"{name} ({role()})" if name else ""


def _team_name(data: TeamPage, team_id: str) -> str:
    return next((t.name for t in data.team.teams if t.team_id == team_id), "No team")


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
