"""Who may read the admin pages, and the headers every answer carries.

The admin proves itself with ``SPM_ADMIN_TOKEN``: as ``Authorization: Bearer …``,
or once as ``?token=…``, which is exchanged for a session and redirected away so
the token leaves the address bar. The session is Flask's signed cookie
(itsdangerous), keyed by a value derived from the token: it holds no token, it
expires after ``SESSION_HOURS``, a changed token ends every session, and
``/reports/logout`` ends this one. The cookie is ``Secure`` whenever the request
came over HTTPS; behind a TLS proxy that is known only when
``webhooks.trusted_proxies`` says how many proxies to believe (werkzeug's ProxyFix).

Every answer, pages and JSON alike, forbids framing, sniffing, referrers and any
script: the pages need none.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from urllib.parse import quote, urlencode

from flask import Flask, Request, make_response, request, session
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from connector.logs import log
from webhooks.receiver import receiver

COOKIE = "spm_admin"
SESSION_HOURS = 8
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class _Sessions(SecureCookieSessionInterface):
    """Flask's signed session, its cookie ``Secure`` exactly when the request was HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure

    def get_cookie_path(self, app: Flask) -> str:
        # Under a deployment's /accounts/<name>, each account's session is its own.
        return request.script_root + "/reports"


def init_admin(app: Flask, *, admin_token: str | None, trusted_proxies: int) -> None:
    """Sessions keyed by the admin token, the proxy headers to trust, the headers to send."""
    if admin_token:
        # Derived, so the cookie's key is not the token itself; a new token, new key.
        app.secret_key = hmac.new(
            admin_token.encode(), b"spm-connector admin session", hashlib.sha256
        ).hexdigest()
    app.session_interface = _Sessions()
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )
    if trusted_proxies:
        n = trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n
        )
    app.after_request(secured)


def secured(response: Response) -> Response:
    """The headers every answer carries (an ``after_request`` hook)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def text(body: str, status: int) -> Response:
    """A plain-text answer: what a person reads, never parsed as a page."""
    response = make_response(body, status)
    response.mimetype = "text/plain"
    return response


def _bearer(req: Request) -> str | None:
    header = req.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else None


ADMIN = "admin"
APPROVER = "approver:"  # + the step: an approver sees the page and approves their step


def _roles() -> list[tuple[str, str]]:
    """(token, role) for the admin token and each approver's (SPM_APPROVER_TOKENS)."""
    secrets_ = receiver().secrets
    if secrets_.admin_token is None:
        return []  # the page is off: no approver gets in either
    roles = [(secrets_.admin_token.get_secret_value(), ADMIN)]
    listed = secrets_.approver_tokens.get_secret_value() if secrets_.approver_tokens else ""
    for pair in listed.split(","):
        step, _, token = pair.partition("=")
        if step.strip() and token.strip():
            roles.append((token.strip(), APPROVER + step.strip()))
    return roles


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def role() -> str | None:
    """Who the request is: ``admin``, ``approver:<step>``, or None (bearer token, the
    one-time ``?token=``, or the session's, which ends when its token is changed)."""
    given = _bearer(request) or request.args.get("token")
    if given is not None:
        found = None
        for token, who in _roles():
            if hmac.compare_digest(given.encode(), token.encode()):
                found = who
        return found
    held, key = session.get("role"), session.get("key")
    for token, who in _roles():
        if who == held and isinstance(key, str) and hmac.compare_digest(key, _digest(token)):
            return who
    return None


def refusal() -> Response | None:
    """None when the request is the admin's or an approver's; else the 401 to answer."""
    if role() is not None:
        return None
    expected = receiver().secrets.admin_token
    log("rejected", source="reports", status=401, reason="admin_token", remote=request.remote_addr)
    response = text(
        "401 Unauthorized: this page needs the admin token."
        if expected
        else "401 Unauthorized: the reports page is off until SPM_ADMIN_TOKEN is set.",
        401,
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="spm-connector reports"'
    return response


def csrf_token() -> str:
    """The session's token that every admin form carries back (made on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(24)
        session["csrf"] = token
    return token


def forged() -> Response | None:
    """None when a POST may act; else the 403 to answer.

    A browser's POST acts only with the form's token from this session (a page on
    another site cannot read it). A bearer-token POST carries no cookie to forge.
    """
    if _bearer(request) is not None:
        return None
    given = request.form.get("csrf", "")
    expected = session.get("csrf")
    if isinstance(expected, str) and expected and hmac.compare_digest(given, expected):
        return None
    log("rejected", source="reports", status=403, reason="csrf", remote=request.remote_addr)
    return text(
        "403 Forbidden: this form is stale or came from another page; reload and retry.", 403
    )


def exchanged_token() -> Response | None:
    """With ``?token=`` (already checked): a session and a redirect to the same address
    without the token, before anything else is read or shown; else None."""
    if "token" not in request.args:
        return None
    who = role()
    given = _bearer(request) or request.args.get("token") or ""
    session.clear()
    session["role"] = who
    session["key"] = _digest(given)
    session.permanent = True
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
    query = ("?" + urlencode(rest)) if rest else ""
    response = make_response("", 303)
    response.headers["Location"] = quote(request.script_root + request.path) + query
    return response


def log_out() -> Response:
    """End this browser's admin session (the cookie is emptied and expires)."""
    if receiver().secrets.admin_token is not None:
        session.clear()
    return text("Signed out: the admin session has ended.", 200)
