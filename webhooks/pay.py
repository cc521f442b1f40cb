"""The admin's pay-cycle actions on the reports page: approve, close, resolve a dispute.

Behind the admin token like the page, and each form carries the session's CSRF
token (:func:`webhooks.admin.forged`). Closing asks for confirmation on a page
of its own first, and then runs the same checks and the same one-transaction
freeze as ``spm-connector periods close`` (minus its sync: the page refuses when
no sync has finished since the period ended).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TypeVar
from urllib.parse import urlencode

from flask import Blueprint, make_response, render_template, request
from werkzeug.wrappers import Response

from connector.connect import close_rules, sync_settings
from connector.core.money import ZERO
from connector.errors import ConnectorError, InputError
from connector.store.db import new_holder
from connector.store.reviews import DISPUTE, OPEN
from connector.store.state import Store
from connector.sync import pay_cycle
from connector.sync.lease import sync_lock
from connector.sync.reading import load_pay_panel
from connector.sync.run import SyncSettings
from webhooks.admin import ADMIN, APPROVER, csrf_token, exchanged_token, forged, refusal, role, text
from webhooks.receiver import receiver

bp = Blueprint("pay", __name__, template_folder="templates")
T = TypeVar("T")


def _refused(step: str | None = None) -> Response | None:
    """The answer to give instead of acting: not signed in, a stale form, or a role that
    may not do this (approvers approve their own step; everything else is the admin's)."""
    refused = refusal() or exchanged_token() or forged()
    if refused is not None:
        return refused
    who = role()
    if who == ADMIN or (step is not None and who == APPROVER + step):
        return None
    needed = "the admin token" if step is None else f"the admin's or the {step} approver's token"
    return text(f"403 Forbidden: this action needs {needed}", 403)


def _back(period: str, notice: str) -> Response:
    response = make_response("", 303)
    query = urlencode({"period": period, "notice": notice})
    response.headers["Location"] = f"{request.script_root}/reports?{query}"
    return response


def _actor() -> str | Response:
    name = request.form.get("by", "").strip()
    if not name or len(name) > 120:
        return text("400 Bad Request: by: say who you are (it goes into the event log)", 400)
    return name


def _amount(text_value: str) -> Decimal | Response:
    try:
        return Decimal(text_value.strip())
    except InvalidOperation:
        return text(f"400 Bad Request: amount: {text_value!r} is not an amount (like -250.00)", 400)


def _adjusted(record: Callable[[Store, SyncSettings, date], T]) -> T | Response:
    """Run ``record`` (an adjustment's transaction) under the sync lock: a pass computing
    the rep right now would otherwise pay off the recompute it owes without seeing it.
    The webhook worker applies it at once (it is woken; the inbox has its event)."""
    state = receiver()
    try:
        with sync_lock(state.store, new_holder(), state.clock, wait_s=10.0):
            done = record(
                state.store, sync_settings(state.config), datetime.now(state.config.zone).date()
            )
    except ConnectorError as error:
        return text(f"409 Conflict: {error}", 409)
    state.wake.set()
    return done


def _period(text_value: str) -> str | Response:
    try:
        return pay_cycle.parse_period(receiver().config.period, text_value)
    except InputError as error:
        return text(f"400 Bad Request: {error}", 400)


@bp.post("/reports/periods/<period>/approve")
def approve(period: str) -> Response:
    if (answer := _refused(request.form.get("step", ""))) is not None:
        return answer
    chosen, actor = _period(period), _actor()
    if isinstance(chosen, Response) or isinstance(actor, Response):
        return chosen if isinstance(chosen, Response) else actor  # type: ignore[return-value]
    state = receiver()
    try:
        done, not_ready = pay_cycle.approve(
            state.store, chosen, request.form.get("step", ""), actor, state.clock,
            steps=state.config.pay_cycle.approvals,
        )  # fmt: skip
    except InputError as error:
        return text(f"409 Conflict: {error}", 409)
    waiting = f"; {not_ready} wait for an earlier step" if not_ready else ""
    return _back(chosen, f"approved {done} statement(s) at {request.form['step']}{waiting}")


@bp.post("/reports/periods/<period>/close")
def close(period: str) -> Response:
    """Without ``confirm=yes``: the confirmation page. With it: the close."""
    if (answer := _refused()) is not None:
        return answer
    chosen, actor = _period(period), _actor()
    if isinstance(chosen, Response) or isinstance(actor, Response):
        return chosen if isinstance(chosen, Response) else actor  # type: ignore[return-value]
    state = receiver()
    config = state.config
    today = datetime.now(config.zone).date()
    if request.form.get("confirm") != "yes":
        panel = load_pay_panel(
            state.store, chosen, config.period, today, config.pay_cycle.approvals
        )
        payout = sum((s.payout for s in state.store.statements.in_period(chosen)), ZERO)
        page = render_template(
            "close_confirm.html", pay=panel, payout=payout, by=actor, csrf=csrf_token()
        )
        response = make_response(page)
        response.headers["Cache-Control"] = "no-store"
        return response
    try:
        closed = pay_cycle.freeze(
            state.store, sync_settings(config), chosen, actor,
            today=today, holder=new_holder(), clock=state.clock, lock_wait_s=10.0,
            rules=close_rules(config),
        )  # fmt: skip
    except ConnectorError as error:
        return text(f"409 Conflict: {error}", 409)
    return _back(chosen, f"closed {', '.join(c.period for c in closed)}")


@bp.post("/reports/disputes/<int:number>/resolve")
def resolve(number: int) -> Response:
    """Answer a dispute, with an adjustment in the current period when an amount is given."""
    if (answer := _refused()) is not None:
        return answer
    actor = _actor()
    if isinstance(actor, Response):
        return actor
    state = receiver()
    review = state.store.reviews.get(number)
    if review is None or review.kind != DISPUTE or review.status != OPEN:
        return text(f"404 Not Found: no open dispute #{number}", 404)
    reply = request.form.get("reply", "").strip()
    if not reply:
        return text("400 Bad Request: reply: say what was decided (the rep reads it)", 400)
    amount_text = request.form.get("amount", "").strip()
    if not amount_text:
        state.store.reviews.resolve(number, reply, actor, state.clock())
        return _back(review.period, f"dispute #{number} resolved")
    amount = _amount(amount_text)
    if isinstance(amount, Response):
        return amount
    rep_id = review.rep_id

    def answer_with_adjustment(store: Store, settings: SyncSettings, today: date) -> int:
        # One transaction: a retry after a crash cannot pay the same answer twice.
        with store.transaction():
            added = pay_cycle.record_adjustment(
                store, settings, rep_id, amount, f"dispute #{number}: {reply}", actor,
                state.clock, today=today,
            )  # fmt: skip
            store.reviews.resolve(number, reply, actor, state.clock(), added)
        return added

    added = _adjusted(answer_with_adjustment)
    if isinstance(added, Response):
        return added
    return _back(review.period, f"dispute #{number} resolved")


@bp.post("/reports/adjustments")
def add_adjustment() -> Response:
    """A manual adjustment for a rep's open period, applied by the worker through the inbox."""
    if (answer := _refused()) is not None:
        return answer
    actor, period = _actor(), _period(request.form.get("period", ""))
    if isinstance(actor, Response) or isinstance(period, Response):
        return actor if isinstance(actor, Response) else period  # type: ignore[return-value]
    state = receiver()
    amount = _amount(request.form.get("amount", ""))
    if isinstance(amount, Response):
        return amount
    rep, reason = request.form.get("rep", ""), request.form.get("reason", "")
    number = _adjusted(
        lambda store, settings, today: pay_cycle.record_adjustment(
            store, settings, rep, amount, reason, actor, state.clock, today=today, period=period
        )
    )
    if isinstance(number, Response):
        return number
    return _back(period, f"adjustment #{number} added")


@bp.post("/reports/adjustments/<int:number>/reverse")
def reverse_adjustment(number: int) -> Response:
    if (answer := _refused()) is not None:
        return answer
    actor = _actor()
    if isinstance(actor, Response):
        return actor
    state, reason = receiver(), request.form.get("reason", "")
    done = _adjusted(
        lambda store, settings, today: pay_cycle.record_reversal(
            store, settings, number, reason, actor, state.clock, today=today
        )
    )
    if isinstance(done, Response):
        return done
    return _back(done.period, f"adjustment #{number} reversed by #{done.id}")
