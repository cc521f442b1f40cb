"""`spm-connector statement`: one rep's statement from the store equals `calc`, in every form."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.views.money import money
from tests import test_salesforce_sync as sf
from tests.crm_sync_helpers import run, write_config
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox

pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
def synced(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> Iterator[tuple[sf.Org, date, list[dict[str, Any]]]]:
    sandbox = make_salesforce_sandbox(reps=8, deals=200)
    config = write_config(tmp_path, sandbox.settings()["crm"], [u["Id"] for u in sandbox.users()])
    org = sf.Org(sandbox, config, dict(sandbox.settings()["env"]), tmp_path, sf.Clock())
    as_of = sf.as_of_for(sandbox)
    for args in (("install",), ("sync", "--as-of", as_of.isoformat())):
        assert org.cli(*args).exit_code == 0
    yield org, as_of, sf.oracle(org, as_of)


def busiest(statements: list[dict[str, Any]]) -> dict[str, Any]:
    """The calc statement with the most kinds of lines: the best test of a statement."""
    return max(
        statements,
        key=lambda s: (len({line["kind"] for line in s["lines"]}), len(s["lines"]), s["period"]),
    )


def test_json_is_calcs_document_for_that_rep_and_period(
    synced: tuple[sf.Org, date, list[dict[str, Any]]],
) -> None:
    org, as_of, oracle = synced
    want = busiest(oracle)
    result = run(
        org.config, {}, "statement", want["rep_id"], "--period", want["period"], "--format", "json"
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["as_of"] == as_of.isoformat()
    assert document["statements"] == [want]


def shown(amount: str) -> str:
    """calc's exact figure as a statement shows it (USD, en_US: ``$22,085.95``)."""
    return money(Decimal(amount), "USD")


def test_text_fits_80_columns_and_names_every_figure(
    synced: tuple[sf.Org, date, list[dict[str, Any]]],
) -> None:
    org, _as_of, oracle = synced
    want = busiest(oracle)
    user = next(u for u in org.sandbox.users() if u["Id"] == want["rep_id"])
    # By email and by name, as a manager would ask for it.
    for who in (user["Email"], user["Name"].upper(), want["rep_id"]):
        result = run(org.config, {}, "statement", who, "--period", want["period"])
        assert result.exit_code == 0, result.output
        out = result.stdout
        assert all(len(line) <= 80 for line in out.splitlines())
        assert user["Name"] in out and want["period"] in out
        for figure in ("payout", "commission", "bookings", "draw_balance"):
            assert shown(want[figure]) in out, figure  # $22,085.95: money as people read it
        for line in want["lines"]:
            assert shown(line["amount"]) in out
    year = [
        s["payout"] for s in oracle
        if s["rep_id"] == want["rep_id"] and s["period"][:4] == want["period"][:4]
        and s["period"] <= want["period"]
    ]  # fmt: skip
    assert shown(f"{sum(Decimal(p) for p in year):.2f}") in out


def test_html_is_one_self_contained_page_with_the_figures(
    synced: tuple[sf.Org, date, list[dict[str, Any]]], tmp_path: Path
) -> None:
    org, _as_of, oracle = synced
    want = busiest(oracle)
    target = tmp_path / "statement.html"
    result = run(
        org.config,
        {},
        "statement",
        want["rep_id"],
        "--period",
        want["period"],
        "--format",
        "html",
        "--output",
        str(target),
    )
    assert result.exit_code == 0, result.output
    assert target.stat().st_mode & 0o777 == 0o600  # pay data: its owner's only
    page = target.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert not re.search(r"<script|<link|src=|https?://", page)  # nothing fetched
    figures = dict(re.findall(r'data-figure="(\w+)">([^<]+)<', page))
    assert figures["payout"] == shown(want["payout"])
    assert figures["commission"] == shown(want["commission"])
    assert figures["bookings"] == shown(want["bookings"])


def test_unknown_and_ambiguous_reps_are_named(
    synced: tuple[sf.Org, date, list[dict[str, Any]]], tmp_path: Path
) -> None:
    org, *_ = synced
    missing = run(org.config, {}, "statement", "nobody@nowhere.example")
    assert missing.exit_code == 2
    assert "no user with the id, email or name 'nobody@nowhere.example'" in missing.output
    rep = org.sandbox.users()[0]["Id"]
    bad_period = run(org.config, {}, "statement", rep, "--period", "1999-01")
    assert bad_period.exit_code == 2 and "no statement for 1999-01" in bad_period.output


def test_before_any_sync_the_store_says_what_to_do(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"type": "hubspot", "base_url": "http://127.0.0.1:9"}, ["a@b"])
    result = run(config, {}, "statement", "a@b")
    assert result.exit_code == 2 and "run `spm-connector sync` first" in result.output
    assert "there is no store at sqlite:///" in result.output
    assert not (tmp_path / "spm.db").exists()  # asking leaves no empty store behind
