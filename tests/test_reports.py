"""The reports page: behind the admin token, the team's figures as calc computes them, and a
real headless Chromium (Debian's, through Playwright) following a leaderboard link."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from connector.config import load_config
from connector.views.money import money
from tests import test_salesforce_sync as sf
from tests.browser import SCREENSHOTS, browser_page, needs_chromium
from tests.crm_sync_helpers import write_config
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox
from webhooks.app import create_app

TOKEN = "reports-admin-token-123"


pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
def synced(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> Iterator[tuple[Flask, sf.Org, date, list[dict[str, Any]]]]:
    sandbox = make_salesforce_sandbox(reps=8, deals=200)
    config = write_config(tmp_path, sandbox.settings()["crm"], [u["Id"] for u in sandbox.users()])
    org = sf.Org(sandbox, config, dict(sandbox.settings()["env"]), tmp_path, sf.Clock())
    as_of = sf.as_of_for(sandbox)
    for args in (("install",), ("sync", "--as-of", as_of.isoformat())):
        assert org.cli(*args).exit_code == 0
    app = create_app(load_config(config), environ={"SPM_ADMIN_TOKEN": TOKEN})
    yield app, org, as_of, sf.oracle(org, as_of)


def period_of(as_of: date) -> str:
    return f"{as_of.year:04d}-{as_of.month:02d}"


def test_without_the_right_token_nothing_is_shown(
    synced: tuple[Flask, sf.Org, date, list[dict[str, Any]]], tmp_path: Path
) -> None:
    app, org, *_ = synced
    client = app.test_client()
    name = org.sandbox.users()[0]["Name"]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        reply = client.get("/reports", headers=headers)
        assert reply.status_code == 401 and name.encode() not in reply.data
    rep = org.sandbox.users()[0]["Id"]
    assert client.get(f"/reports/statements/{rep}").status_code == 401
    assert client.get("/reports?token=wrong").status_code == 401
    # No token configured: the page is off, whatever is sent.
    config = write_config(tmp_path, {"type": "hubspot", "base_url": "http://127.0.0.1:9"}, ["a@b"])
    off = create_app(load_config(config), environ={}).test_client()
    assert off.get("/reports", headers={"Authorization": "Bearer "}).status_code == 401


def test_the_team_page_shows_calcs_figures_for_the_period(
    synced: tuple[Flask, sf.Org, date, list[dict[str, Any]]],
) -> None:
    app, org, as_of, oracle = synced
    client = app.test_client()
    reply = client.get("/reports", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 200
    page = reply.get_data(as_text=True)
    period = period_of(as_of)
    current = [s for s in oracle if s["period"] == period]
    assert current
    for key in ("bookings", "payout"):
        total = sum(Decimal(s[key]) for s in current)
        assert f'data-total="{key}">{money(total, "USD")}<' in page  # $1,234.50
    for user in org.sandbox.users():
        assert user["Name"] in page
    for statement in current:
        attainment = statement["attainment"]
        shown = f"{Decimal(attainment) * 100:.2f}%" if attainment is not None else "—"
        assert f'data-rep="{statement["rep_id"]}">{shown}<' in page
    assert "<script" not in page and "http://" not in page.replace(org.sandbox.url, "")
    bad = client.get("/reports?period=last-week", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code == 400 and b"period" in bad.data


def test_a_token_in_the_address_becomes_a_cookie_and_leaves_the_address(
    synced: tuple[Flask, sf.Org, date, list[dict[str, Any]]],
) -> None:
    app, _org, as_of, oracle = synced
    client = app.test_client()
    first = client.get(f"/reports?token={TOKEN}&period={period_of(as_of)}")
    assert first.status_code == 303
    assert first.headers["Location"] == f"/reports?period={period_of(as_of)}"
    cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get(first.headers["Location"]).status_code == 200
    want = max(oracle, key=lambda s: (len(s["lines"]), s["period"]))
    page = client.get(f"/reports/statements/{want['rep_id']}?period={want['period']}")
    assert page.status_code == 200
    shown = money(Decimal(want["payout"]), "USD")
    assert f'data-figure="payout">{shown}<' in page.get_data(as_text=True)
    assert client.get("/reports/statements/005000000000000AAA").status_code == 404


@needs_chromium
def test_in_a_real_browser_the_leaderboard_links_to_a_statement(
    synced: tuple[Flask, sf.Org, date, list[dict[str, Any]]],
) -> None:
    app, org, as_of, oracle = synced
    with browser_page(app) as (page, base, errors):
        page.goto(f"{base}/reports?token={TOKEN}")
        assert page.url == f"{base}/reports"  # the token left the address bar
        assert page.locator("h1").inner_text() == f"Team, {period_of(as_of)}"
        rows = page.locator("#leaderboard tbody tr")
        assert rows.count() == len(org.sandbox.users())
        page.screenshot(path=str(SCREENSHOTS / "reports.png"), full_page=True)
        # A manager drills into one team, then looks at the year to date.
        team = page.locator("#teams tbody tr a").first
        team_name = team.inner_text()
        team.click()
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == f"{team_name}, {period_of(as_of)}"
        assert 0 < page.locator("#leaderboard tbody tr").count() < len(org.sandbox.users())
        page.select_option("#span", "ytd")
        page.locator("form[action='/reports'] button").click()
        page.wait_for_load_state()
        assert "the year to date" in page.locator("h1").inner_text()
        page.screenshot(path=str(SCREENSHOTS / "reports-team-ytd.png"), full_page=True)
        page.goto(f"{base}/reports")
        rows = page.locator("#leaderboard tbody tr")
        leader = rows.first.locator("a")
        name = leader.inner_text()
        leader.click()
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == name
        payout = page.locator('[data-figure="payout"]').first.inner_text()
        rep_id = re.search(r"/reports/statements/(\w+)", page.url)
        assert rep_id is not None
        want = next(
            s for s in oracle if s["rep_id"] == rep_id.group(1) and s["period"] == period_of(as_of)
        )
        assert payout == money(Decimal(want["payout"]), "USD")
        page.screenshot(path=str(SCREENSHOTS / "statement.png"), full_page=True)
    assert errors == []
    assert (SCREENSHOTS / "reports.png").stat().st_size > 10_000


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_a_managers_view_teams_distribution_cost_of_sales_and_the_period_before(
    synced: tuple[Flask, sf.Org, date, list[dict[str, Any]]],
) -> None:
    import csv
    import io

    app, _org, as_of, oracle = synced
    client = app.test_client()
    period = period_of(as_of)
    current = [s for s in oracle if s["period"] == period]
    page = client.get("/reports", headers=bearer()).get_data(as_text=True)
    # How many reps stand under 50 %, at 50-100 %, at 100 % or more.
    attained = [Decimal(s["attainment"]) for s in current if s["attainment"] is not None]
    for band, count in (
        ("under 50%", sum(1 for a in attained if a < Decimal("0.5"))),
        ("50% to 100%", sum(1 for a in attained if Decimal("0.5") <= a < 1)),
        ("100% or more", sum(1 for a in attained if a >= 1)),
    ):
        assert f'data-band="{band}">{count}<' in page
    bookings = sum(Decimal(s["bookings"]) for s in current)
    payout = sum(Decimal(s["payout"]) for s in current)
    cost = f"{(payout / bookings).quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP) * 100:.2f}%"
    assert f'data-total="cost_of_sales" title="payout ÷ bookings">{cost}<' in page
    owed = sum(Decimal(s["draw_balance"]) for s in current if Decimal(s["draw_balance"]) > 0)
    assert f'data-total="draws">{money(owed, "USD")}<' in page  # money, not a count
    prior = f"{as_of.year:04d}-{as_of.month - 1:02d}"
    assert f"on {prior}" in page  # bookings and payout against the period before

    # Teams: the CRM's hierarchy, each team's figures adding up to the whole.
    teams = list(csv.DictReader(io.StringIO(
        client.get(f"/reports/export.csv?table=teams&period={period}", headers=bearer())
        .get_data(as_text=True)
    )))  # fmt: skip
    assert len(teams) >= 2 and any(t["team"].endswith("'s team") for t in teams)
    assert sum(Decimal(t["bookings"]) for t in teams) == bookings
    assert sum(Decimal(t["payout"]) for t in teams) == payout
    # Drilling down to one team shows its reps only.
    first = teams[0]
    mine = client.get(f"/reports?period={period}&team={first['team_id']}", headers=bearer())
    shown = mine.get_data(as_text=True)
    assert f"<h1>{first['team']}, {period}</h1>".replace("'", "&#39;") in shown
    assert shown.count('data-rep="') == int(first["reps"])


def test_every_table_exports_as_csv_with_exact_figures(
    synced: tuple[Flask, sf.Org, date, list[dict[str, Any]]],
) -> None:
    import csv
    import io

    app, _org, as_of, oracle = synced
    client = app.test_client()
    period = period_of(as_of)
    current = {s["rep_id"]: s for s in oracle if s["period"] == period}
    reply = client.get(f"/reports/export.csv?table=leaderboard&period={period}", headers=bearer())
    assert reply.status_code == 200 and reply.mimetype == "text/csv"
    assert f'filename="leaderboard-{period}.csv"' in reply.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(reply.get_data(as_text=True))))
    assert {r["rep_id"] for r in rows} == set(current)
    for row in rows:
        want = current[row["rep_id"]]
        assert Decimal(row["payout"]) == Decimal(want["payout"])  # plain exact decimals
        assert Decimal(row["bookings"]) == Decimal(want["bookings"])
    for table in ("draws", "syncs", "activity", "teams"):
        assert (
            client.get(
                f"/reports/export.csv?table={table}&period={period}", headers=bearer()
            ).status_code
            == 200
        )
    assert client.get("/reports/export.csv?table=secrets", headers=bearer()).status_code == 400
    assert client.get(f"/reports/export.csv?table=teams&period={period}").status_code == 401


def test_a_failed_sync_says_why_and_a_skipped_echo_is_not_an_error(
    synced: tuple[Flask, sf.Org, date, list[dict[str, Any]]],
) -> None:
    from datetime import UTC, datetime

    from connector.store.inbox import Event, Inbox
    from connector.views.team import OWN_WRITE_BACK
    from webhooks.receiver import EXTENSION

    app, org, _as_of, _oracle = synced
    store = app.extensions[EXTENSION].store
    now = datetime.now(UTC)
    run_id = store.runs.start("sync", now, {})
    store.runs.finish(run_id, now, "failed", {"error": "Salesforce refused the credentials"})
    deal = next(d for d in org.sandbox.opportunities() if d["IsWon"])
    inbox = Inbox(store)
    inbox.add([Event("salesforce", "n-1", "deal", deal["Id"], "Opportunity")], now)
    token, (claimed,) = inbox.claim(now)
    inbox.done(token, [claimed.id], now, OWN_WRITE_BACK)
    page = app.test_client().get("/reports", headers=bearer()).get_data(as_text=True)
    assert "Salesforce refused the credentials" in page
    assert f"{deal['Name']} ({deal['Id']})" in page  # the deal by name, not only its id
    assert "skipped: our own write-back" in page


@pytest.mark.parametrize("span", ["quarter", "ytd"])
def test_the_quarter_and_the_year_to_date_add_up_their_periods(
    synced: tuple[Flask, sf.Org, date, list[dict[str, Any]]], span: str
) -> None:
    import csv
    import io

    app, _org, as_of, oracle = synced
    client = app.test_client()
    period = period_of(as_of)
    first = 1 if span == "ytd" else (as_of.month - 1) // 3 * 3 + 1
    covered = {f"{as_of.year:04d}-{m:02d}" for m in range(first, as_of.month + 1)}
    reply = client.get(
        f"/reports/export.csv?table=leaderboard&span={span}&period={period}", headers=bearer()
    )
    assert f'filename="leaderboard-{period}-{span}.csv"' in reply.headers["Content-Disposition"]
    rows = {r["rep_id"]: r for r in csv.DictReader(io.StringIO(reply.get_data(as_text=True)))}
    for rep_id, row in rows.items():
        own = [s for s in oracle if s["rep_id"] == rep_id and s["period"] in covered]
        assert Decimal(row["bookings"]) == sum(Decimal(s["bookings"]) for s in own)
        assert Decimal(row["payout"]) == sum(Decimal(s["payout"]) for s in own)
        quotas = [Decimal(s["quota"]) for s in own if s["quota"] is not None]
        if quotas:
            want = (sum(Decimal(s["bookings"]) for s in own) / sum(quotas)).quantize(
                Decimal("0.0001"), rounding=ROUND_HALF_UP
            )
            assert Decimal(row["attainment"]) == want
        assert row["pace"] == ""  # a pace belongs to one period
    page = client.get(f"/reports?span={span}&period={period}", headers=bearer())
    assert page.status_code == 200 and b"to date" in page.data
    assert client.get(f"/reports?span=decade&period={period}", headers=bearer()).status_code == 400
