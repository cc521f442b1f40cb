"""The pay cycle on the web: each rep's signed link to their own statements (acknowledge,
dispute), and the admin's approvals, dispute answers and close on the reports page,
in a real Chromium too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlparse

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.config import load_config
from connector.core.fields import RecordKind
from connector.core.periods import PeriodKind, label, period_of
from connector.store.inbox import Inbox
from connector.store.owed import OWED_REP
from connector.store.state import Store
from connector.sync.links import StatementLinks
from tests.browser import SCREENSHOTS, browser_page, needs_chromium
from tests.crm_sync_helpers import run, write_config
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox
from webhooks.app import create_app

TOKEN = "pay-admin-token-123"
SECRET = "statement-link-secret-1"
PUBLIC = "https://spm.example.com"
TODAY = datetime.now(UTC).date()
LAST_MONTH = label(period_of(TODAY, PeriodKind.MONTH) - 1, PeriodKind.MONTH)

pytestmark = pytest.mark.usefixtures("fast_retries")


@dataclass
class Site:
    app: Flask
    config: Path
    env: dict[str, str]
    users: list[dict[str, Any]]
    store_url: str

    def link(self, rep_id: str) -> str:
        user = next(u for u in self.users if u["Id"] == rep_id)
        found = user["SPM_Statement_Link__c"]
        assert isinstance(found, str) and found.startswith(f"{PUBLIC}/my/")
        return urlparse(found).path

    def admin(self) -> FlaskClient:
        client = self.app.test_client()
        assert client.get(f"/reports?token={TOKEN}").status_code == 303
        return client


@pytest.fixture
def site(make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path) -> Iterator[Site]:
    sandbox = make_salesforce_sandbox(reps=4, deals=90)
    extra = {
        "webhooks": {"public_url": PUBLIC},
        "pay_cycle": {"approvals": ["manager", "finance"], "link_days": 45},
    }
    users = sandbox.users()
    config = write_config(
        tmp_path, sandbox.settings()["crm"], [u["Id"] for u in users], extra=extra
    )
    env = {**sandbox.settings()["env"], "SPM_STATEMENT_LINK_SECRET": SECRET}
    for args in (("install",), ("sync",)):
        result = run(config, env, *args)
        assert result.exit_code == 0, result.output
    app = create_app(load_config(config), environ={**env, "SPM_ADMIN_TOKEN": TOKEN})
    yield Site(app, config, env, sandbox.users(), f"sqlite:///{tmp_path / 'spm.db'}")


def close_earlier(site: Site) -> None:
    """Periods close oldest first: approve and close the months before last (the CLI)."""
    earlier = label(period_of(TODAY, PeriodKind.MONTH) - 2, PeriodKind.MONTH)
    with Store.open(site.store_url, existing=True) as store:
        periods = [p for p in store.statements.periods() if p <= earlier]
        for period in periods:
            for step in ("manager", "finance"):
                statements = store.statements.in_period(period)
                store.reviews.approve(statements, step, "t", datetime.now(UTC))
    if periods:
        closed = run(site.config, site.env, "periods", "close", earlier, "--with-earlier")
        assert closed.exit_code == 0, closed.output


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_a_reps_link_shows_them_only_and_takes_acknowledgements_and_disputes(site: Site) -> None:
    with Store.open(site.store_url, existing=True) as store:
        first = next(s.rep_id for s in store.statements.in_period(LAST_MONTH) if s.lines)
    second = next(u["Id"] for u in site.users if u["Id"] != first)
    names = {u["Id"]: u["Name"] for u in site.users}
    client = site.app.test_client()  # no admin token: the link is the credential
    mine = client.get(site.link(first))
    assert mine.status_code == 200
    page = mine.get_data(as_text=True)
    assert names[first] in page and names[second] not in page
    assert 'id="status">preliminary<' in page
    # Another period of the same rep, never another rep.
    other = client.get(site.link(first) + f"?period={LAST_MONTH}")
    assert other.status_code == 200 and names[second] not in other.get_data(as_text=True)

    # Tampering: another rep's id in the payload, a changed signature, or no link.
    token = site.link(first).rsplit("/", 1)[1]
    forged = StatementLinks("not-our-secret", PUBLIC).token(second, TODAY)
    payload, signature = token.split(".")
    for bad in (forged, f"{payload}.{signature[:-2]}xx", f"{forged.split('.')[0]}.{signature}"):
        refused = client.get(f"/my/{bad}")
        assert refused.status_code == 403, bad
        assert names[second] not in refused.get_data(as_text=True)
    # Expired: a link made 3 months ago.
    old = StatementLinks(SECRET, PUBLIC, 45).token(first, TODAY - timedelta(days=92))
    expired = client.get(f"/my/{old}")
    assert expired.status_code == 403 and "expired" in expired.get_data(as_text=True)
    # A rotated key voids every link.
    rotated = create_app(
        load_config(site.config),
        environ={**site.env, "SPM_STATEMENT_LINK_SECRET": "a-new-secret", "SPM_ADMIN_TOKEN": TOKEN},
    )
    assert rotated.test_client().get(site.link(first)).status_code == 403

    page = other.get_data(as_text=True)  # last month's: it has lines to question
    assert '<option value="0">' in page
    period = re.search(r'name="period" value="([^"]+)"', page)
    plan = re.search(r'name="plan" value="([^"]+)"', page)
    assert period is not None and plan is not None
    form = {"period": period.group(1), "plan": plan.group(1)}
    done = client.post(site.link(first) + "/acknowledge", data=form)
    assert done.status_code == 303
    assert "You acknowledged this statement" in client.get(done.headers["Location"]).get_data(
        as_text=True
    )
    assert (
        client.post(site.link(first) + "/dispute", data={**form, "comment": ""}).status_code == 400
    )
    disputed = client.post(
        site.link(first) + "/dispute", data={**form, "line": "0", "comment": "<b>missing</b> deal"}
    )
    assert disputed.status_code == 303
    shown = client.get(disputed.headers["Location"]).get_data(as_text=True)
    assert "&lt;b&gt;missing&lt;/b&gt; deal" in shown and "<b>missing" not in shown

    # The admin sees the open dispute and answers it with an adjustment.
    admin = site.admin()
    reports = admin.get(f"/reports?period={period.group(1)}").get_data(as_text=True)
    assert 'id="disputes"' in reports and "&lt;b&gt;missing" in reports
    number = re.search(r"/reports/disputes/(\d+)/resolve", reports)
    assert number is not None
    without = admin.post(
        f"/reports/disputes/{number.group(1)}/resolve", data={"reply": "x", "by": "ana"}
    )
    assert without.status_code == 403  # no CSRF token: refused
    answered = admin.post(
        f"/reports/disputes/{number.group(1)}/resolve",
        data={"csrf": csrf_of(reports), "reply": "added the deal", "amount": "120.00", "by": "ana"},
    )
    assert answered.status_code == 303
    with Store.open(site.store_url, existing=True) as store:
        (adjustment,) = store.pay.adjustments()
        assert (adjustment.rep_id, str(adjustment.amount)) == (first, "120.00")
        assert first in store.owed.of(OWED_REP)
        assert Inbox(store).depth().queued == 1  # the worker applies it without a sync
        review = store.reviews.get(int(number.group(1)))
        assert review is not None and review.status == "resolved"
    answer = client.get(disputed.headers["Location"]).get_data(as_text=True)
    assert "answered" in answer and "added the deal" in answer


def test_approvals_in_order_reset_when_the_statement_changes(site: Site) -> None:
    admin = site.admin()
    page = admin.get(f"/reports?period={LAST_MONTH}").get_data(as_text=True)
    assert 'data-step="manager"' in page and 'data-step="finance"' in page
    csrf = csrf_of(page)
    finance_first = admin.post(
        f"/reports/periods/{LAST_MONTH}/approve", data={"csrf": csrf, "step": "finance", "by": "fi"}
    )
    assert finance_first.status_code == 303
    assert "approved 0 statement(s) at finance; 4 wait for an earlier step" in unquote_plus(
        finance_first.headers["Location"]
    )
    for step, who in (("manager", "mo"), ("finance", "fi")):
        done = admin.post(
            f"/reports/periods/{LAST_MONTH}/approve", data={"csrf": csrf, "step": step, "by": who}
        )
        assert done.status_code == 303
    page = admin.get(f"/reports?period={LAST_MONTH}").get_data(as_text=True)
    assert page.count('">0 waiting</span>') == 2

    # A recompute that changes one statement voids its approvals, and says why.
    rep = site.users[0]["Id"]
    with Store.open(site.store_url, existing=True) as store:
        store.pay.adjust(rep, "ae", LAST_MONTH, Decimal("10.00"), "x", "t",
                         datetime.now(UTC))  # fmt: skip
        store.owed.add(OWED_REP, [rep])
    assert run(site.config, site.env, "sync").exit_code == 0
    page = admin.get(f"/reports?period={LAST_MONTH}").get_data(as_text=True)
    assert page.count('">1 waiting</span>') == 2
    assert "the statement changed since" in page
    # Closing is refused until the chain is complete again.
    close_earlier(site)
    refused = admin.post(
        f"/reports/periods/{LAST_MONTH}/close",
        data={"csrf": csrf, "by": "fi", "confirm": "yes"},
    )
    assert refused.status_code == 409 and b"wait for approval" in refused.data


@needs_chromium
def test_in_a_real_browser_the_admin_approves_and_closes_after_confirming(site: Site) -> None:
    close_earlier(site)
    with browser_page(site.app) as (page, base, errors):
        page.goto(f"{base}/reports?token={TOKEN}&period={LAST_MONTH}")
        assert page.locator("#period-status").inner_text() == "preliminary"
        for step in ("manager", "finance"):
            form = page.locator(f'[data-step="{step}"] form')
            form.locator('input[name="by"]').fill("Ana Finance")
            form.locator("button").click()
            page.wait_for_load_state()
            assert "approved" in page.locator("#notice").inner_text()
        page.screenshot(path=str(SCREENSHOTS / "pay-cycle-approved.png"), full_page=True)
        close = page.locator("#close-period")
        close.locator('input[name="by"]').fill("Ana Finance")
        close.locator("button").click()
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == f"Close {LAST_MONTH}?"  # it asks first
        page.screenshot(path=str(SCREENSHOTS / "pay-cycle-confirm.png"), full_page=True)
        page.locator("#confirm-close").click()
        page.wait_for_load_state()
        assert page.locator("#period-status").inner_text() == "closed"
        assert f"closed {LAST_MONTH}" in page.locator("#notice").inner_text()
        page.screenshot(path=str(SCREENSHOTS / "pay-cycle-closed.png"), full_page=True)
    assert errors == []
    with Store.open(site.store_url, existing=True) as store:
        assert store.pay.closed_through() == LAST_MONTH
        assert store.pay.events()[-1].actor == "Ana Finance"


def test_the_link_is_the_same_all_month_and_changes_with_the_next(site: Site) -> None:
    links = StatementLinks(SECRET, PUBLIC, 45)
    first = date(2026, 12, 1)
    assert links.token("r", first) == links.token("r", date(2026, 12, 31))
    assert links.token("r", first) != links.token("r", date(2027, 1, 1))
    assert links.rep_of(links.token("r", first), date(2027, 1, 15)) == "r"


def test_the_admin_adjusts_and_reverses_on_the_page_and_the_worker_applies_it(
    site: Site,
) -> None:
    from connector.commands.realtime import build_worker

    this_month = label(period_of(TODAY, PeriodKind.MONTH), PeriodKind.MONTH)
    rep = site.users[2]["Id"]
    admin = site.admin()
    page = admin.get(f"/reports?period={this_month}").get_data(as_text=True)
    assert 'id="adjust"' in page
    form = {"csrf": csrf_of(page), "period": this_month, "rep": rep, "by": "ana"}
    added = admin.post("/reports/adjustments", data={**form, "amount": "-75.50", "reason": "fee"})
    assert added.status_code == 303
    assert "adjustment #1 added" in unquote_plus(added.headers["Location"])
    bad = admin.post("/reports/adjustments", data={**form, "amount": "1.005", "reason": "x"})
    assert bad.status_code == 409 and b"in cents" in bad.data

    config = load_config(site.config)
    with Store.open(site.store_url) as store:
        worker = build_worker(config, store, environ=site.env)
        assert worker.drain() == 1
        (statement,) = store.statements.of_rep(rep, this_month)
        assert statement.adjustments == Decimal("-75.50")
        state = store.crm_values.states(RecordKind.REP, [rep])[rep, "adjustments"]
        assert state.crm == "-75.50"  # written to the CRM by the worker

    page = admin.get(f"/reports?period={this_month}").get_data(as_text=True)
    assert 'id="adjustments"' in page and "fee" in page
    reversed_ = admin.post(
        "/reports/adjustments/1/reverse", data={"csrf": csrf_of(page), "reason": "oops", "by": "bo"}
    )
    assert reversed_.status_code == 303
    again = admin.post(
        "/reports/adjustments/1/reverse", data={"csrf": csrf_of(page), "reason": "x", "by": "bo"}
    )
    assert again.status_code == 409 and b"already reversed" in again.data
    with Store.open(site.store_url) as store:
        assert build_worker(config, store, environ=site.env).drain() == 1
        (statement,) = store.statements.of_rep(rep, this_month)
        assert statement.adjustments == 0
        assert [e.action for e in store.pay.events()][-2:] == ["adjust", "adjust"]
    page = admin.get(f"/reports?period={this_month}").get_data(as_text=True)
    assert ">reversed<" in page


def test_a_dry_run_shows_that_links_change_without_showing_them(site: Site) -> None:
    rotated = {**site.env, "SPM_STATEMENT_LINK_SECRET": "a-new-secret"}
    planned = run(site.config, rotated, "sync", "--dry-run")
    assert planned.exit_code == 0, planned.output
    assert f"SPM_Statement_Link__c: {PUBLIC}/my/… -> {PUBLIC}/my/…" in planned.stdout
    old = site.link(site.users[0]["Id"]).rsplit("/", 1)[1]
    new = StatementLinks("a-new-secret", PUBLIC).token(site.users[0]["Id"], TODAY)
    assert old not in planned.output and new not in planned.output


def test_an_approvers_token_approves_its_own_step_and_nothing_else(site: Site) -> None:
    environ = {**site.env, "SPM_ADMIN_TOKEN": TOKEN,
               "SPM_APPROVER_TOKENS": "manager=mgr-token-1, finance=fin-token-2"}  # fmt: skip
    app = create_app(load_config(site.config), environ=environ)
    manager = app.test_client()
    assert manager.get("/reports?token=wrong").status_code == 401
    assert manager.get("/reports?token=mgr-token-1").status_code == 303
    page = manager.get(f"/reports?period={LAST_MONTH}").get_data(as_text=True)
    assert 'data-step="manager"' in page
    assert f'action="/reports/periods/{LAST_MONTH}/approve"' in page  # their own step only
    assert page.count("Approve all as") == 1 and 'id="close-period"' not in page
    form = {"csrf": csrf_of(page), "by": "Mo Manager"}
    theirs = manager.post(
        f"/reports/periods/{LAST_MONTH}/approve", data={**form, "step": "manager"}
    )
    assert theirs.status_code == 303
    other = manager.post(f"/reports/periods/{LAST_MONTH}/approve", data={**form, "step": "finance"})
    assert other.status_code == 403
    closing = manager.post(f"/reports/periods/{LAST_MONTH}/close", data={**form, "confirm": "yes"})
    assert closing.status_code == 403 and b"needs the admin token" in closing.data
    # A changed approver token ends that approver's session.
    changed = create_app(
        load_config(site.config),
        environ={**environ, "SPM_APPROVER_TOKENS": "manager=mgr-token-NEW"},
    )
    stale = changed.test_client()
    with manager.session_transaction() as held, stale.session_transaction() as copied:
        copied.update(held)
    assert stale.get("/reports").status_code == 401
    with Store.open(site.store_url, existing=True) as store:
        approvals = store.reviews.approvals(LAST_MONTH)
    assert approvals and {a.step for a in approvals} == {"manager"}
    assert {a.approved_by for a in approvals} == {"Mo Manager"}


def test_a_manager_leaves_a_note_the_rep_reads_on_their_own_page(site: Site) -> None:
    rep = site.users[0]["Id"]
    admin = site.admin()
    page = admin.get(f"/reports/statements/{rep}").get_data(as_text=True)
    assert 'aria-label="Leave a note"' in page
    # A form from another site (no session token) is refused.
    stale = site.app.test_client()
    stale.get(f"/reports?token={TOKEN}")
    refused = stale.post(f"/reports/statements/{rep}/notes", data={"by": "x", "note": "hi"})
    assert refused.status_code == 403
    said = "Great month. Next: more multi-year deals <script>alert(1)</script>"
    posted = admin.post(f"/reports/statements/{rep}/notes",
                        data={"csrf": csrf_of(page), "by": "Morgan Lee", "note": said})  # fmt: skip
    assert posted.status_code == 303, posted.get_data(as_text=True)
    empty = admin.post(f"/reports/statements/{rep}/notes",
                       data={"csrf": csrf_of(page), "by": "Morgan Lee", "note": "  "})  # fmt: skip
    assert empty.status_code == 400 and "note:" in empty.get_data(as_text=True)
    # The rep reads it on their own page, escaped, with its author and time.
    mine = site.app.test_client().get(site.link(rep)).get_data(as_text=True)
    assert "<strong>Morgan Lee (admin)</strong>" in mine
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mine and "<script>alert" not in mine
    assert 'aria-label="Leave a note"' not in mine  # a rep reads notes; managers write them
    with Store.open(site.store_url, existing=True) as store:
        (kept,) = store.notes.of(rep)
        assert (kept.author, kept.body) == ("Morgan Lee (admin)", said)
    shown = run(site.config, site.env, "statement", rep).output
    assert "Notes" in shown and "Morgan Lee (admin)" in shown
