"""The admin pages under attack: no script runs from an address, the session holds no token,
expires and ends, and every answer forbids framing, sniffing and script."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask

from connector.config import load_config
from connector.store.state import Store
from tests.browser import browser_page, needs_chromium
from tests.crm_sync_helpers import write_config
from webhooks.app import create_app

TOKEN = "reports-admin-token-456"
PAYLOADS = (
    "<img src=x onerror=\"document.title='XSS'\">",
    "<script>document.title='XSS'</script>",
    '"><svg onload="document.title=\'XSS\'">',
)


def make_app(tmp_path: Path, token: str = TOKEN, **webhooks: object) -> Flask:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_config(
        tmp_path, {"type": "salesforce", "instance_url": "https://127.0.0.1:9"}, ["a@b.example"]
    )
    if webhooks:
        path.write_text(
            path.read_text()
            + "webhooks:\n"
            + "".join(f"  {key}: {value}\n" for key, value in webhooks.items())
        )
    store = Store.open(f"sqlite:///{tmp_path / 'spm.db'}")
    environ = {"SPM_ADMIN_TOKEN": token, "SPM_SALESFORCE_ORG_ID": "00D000000000001AAA"}
    return create_app(load_config(path), environ=environ, store=store)


def hostile_paths() -> list[str]:
    paths = []
    for payload in PAYLOADS:
        escaped = quote(payload, safe="")
        paths += [
            f"/reports?period={escaped}",
            f"/reports/statements/{escaped}",
            f"/reports/statements/005000000000001AAA?period={escaped}",
        ]
    return paths


def test_errors_are_plain_text_and_every_answer_carries_the_headers(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    assert client.get(f"/reports?token={TOKEN}").status_code == 303
    for path in hostile_paths():
        reply = client.get(path)
        assert reply.status_code in (400, 404), path
        # Plain text (a path the router cannot match gets the JSON 404, echoing nothing).
        assert reply.mimetype in ("text/plain", "application/json"), path
        if reply.mimetype == "application/json":
            assert "<" not in reply.get_data(as_text=True)
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/reports", "/healthz", "/metrics", "/nowhere", "/reports/statements/x"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert "script-src" not in headers["Content-Security-Policy"]  # default-src 'none'
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_token_in_the_address_is_exchanged_before_anything_is_read(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    payload = quote(PAYLOADS[0], safe="")
    reply = client.get(f"/reports/statements/005000000000001AAA?period={payload}&token={TOKEN}")
    assert reply.status_code == 303
    assert TOKEN not in reply.headers["Location"]
    assert reply.get_data() == b""


def test_the_session_cookie_holds_no_token_and_is_secure_only_behind_a_trusted_proxy(
    tmp_path: Path,
) -> None:
    client = make_app(tmp_path).test_client()
    plain = client.get(f"/reports?token={TOKEN}", headers={"X-Forwarded-Proto": "https"})
    cookie = plain.headers["Set-Cookie"]
    assert cookie.startswith("spm_admin=") and TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/reports" in cookie
    assert "Secure" not in cookie  # the forwarded header is not trusted by default
    assert "Expires=" in cookie

    proxied = make_app(tmp_path / "p", trusted_proxies=1).test_client()
    behind = proxied.get(f"/reports?token={TOKEN}", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in behind.headers["Set-Cookie"]
    assert behind.headers["Location"].startswith("/reports")
    direct = proxied.get(f"/reports?token={TOKEN}", base_url="https://localhost")
    assert "Secure" in direct.headers["Set-Cookie"]


def test_the_session_expires_ends_on_logout_and_on_a_new_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path)
    client = app.test_client()
    client.get(f"/reports?token={TOKEN}")
    assert client.get("/reports").status_code == 200

    # Nine hours on: the signed session (eight hours) is refused.
    later = time.time() + 9 * 3600
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: later)
    assert client.get("/reports").status_code == 401
    monkeypatch.undo()
    assert client.get("/reports").status_code == 200

    # Another token: every session made with the old one is refused.
    rotated = make_app(tmp_path / "r", token="a-brand-new-token-789").test_client()
    cookie = client.get_cookie("spm_admin", path="/reports")
    assert cookie is not None
    rotated.set_cookie("spm_admin", cookie.value, path="/reports")
    assert rotated.get("/reports").status_code == 401

    out = client.post("/reports/logout")
    assert out.status_code == 200 and out.mimetype == "text/plain"
    assert client.get("/reports").status_code == 401


@needs_chromium
def test_in_chromium_no_hostile_address_runs_script(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    ran: list[str] = []
    with browser_page(app) as (page, base, _errors):
        page.on("dialog", lambda d: (ran.append(d.message), d.dismiss()))
        page.goto(f"{base}/reports?token={TOKEN}")  # the admin's session is set
        assert page.url == f"{base}/reports"
        for path in hostile_paths():
            page.goto(base + path)
            assert page.title() != "XSS", path
            if page.title() == "XSS":
                ran.append(path)
        # And with the token still in the address, as a link an attacker sends.
        for path in hostile_paths():
            joiner = "&" if "?" in path else "?"
            page.goto(f"{base}{path}{joiner}token={TOKEN}")
            assert page.title() != "XSS", path
    assert ran == []
