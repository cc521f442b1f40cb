"""The pay cycle end to end on both sandboxes, through the real CLI and client libraries:
close, late CRM changes becoming adjustments, manual adjustments, payroll, reopen.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from connector.config import load_config
from connector.core.closing import Books
from connector.core.fields import RecordKind
from connector.core.models import LineKind, Rep, Statement
from connector.core.periods import PeriodKind, label, period_of
from connector.core.snapshots import engine_deals
from connector.core.statements import calculate
from connector.store.state import Store
from connector.store.statements import statement_body
from crm_sandbox.hubspot import HubSpotSandbox
from crm_sandbox.salesforce import SalesforceSandbox
from tests.crm_sync_helpers import run, write_config
from tests.fixtures.crm_pair import Crm
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox

pytestmark = pytest.mark.usefixtures("fast_retries")

ROOT = Path(__file__).resolve().parents[1]
TODAY = datetime.now(UTC).date()
MONTH = PeriodKind.MONTH
LAST_MONTH = label(period_of(TODAY, MONTH) - 1, MONTH)
THIS_MONTH = label(period_of(TODAY, MONTH), MONTH)


def bodies(statements: list[Statement]) -> dict[tuple[str, str, str], str]:
    return {(s.rep_id, s.plan_id, s.period): statement_body(s) for s in statements}


def recomputed_earnings(crm: Crm, store: Store) -> dict[str, Decimal]:
    """What recomputing everything from the store's deals, with nothing closed, gives."""
    config = load_config(crm.config)
    snapshots = {d.id: d for d in store.deals.for_reps([u.id for u in store.users.all()])}
    deals, _ = engine_deals(snapshots.values(), store.deals.splits(list(snapshots)), "USD")
    reps = [Rep(u.id, u.name, u.email, u.active) for u in store.users.all()]
    result = calculate(config.plans, reps, deals, period_kind=MONTH, as_of=TODAY, books=Books())
    totals: dict[str, Decimal] = {}
    for s in result.statements:
        totals[s.rep_id] = totals.get(s.rep_id, Decimal(0)) + s.earnings
    return totals


def test_close_late_changes_adjust_payroll_and_reopen(crm: Crm) -> None:
    crm.ok("install")
    crm.ok("sync")

    # Closing last month with the months before it open is refused, saying how.
    refused = crm.cli("periods", "close", LAST_MONTH)
    assert refused.exit_code == 2
    assert "close the earlier open periods first" in refused.output
    assert "--with-earlier" in refused.output
    assert crm.cli("periods", "close", THIS_MONTH).exit_code == 2  # not ended yet

    closing = crm.ok("periods", "close", LAST_MONTH, "--with-earlier", "--by", "fin@example.com")
    assert f"closed {LAST_MONTH}:" in closing.output
    with crm.store() as store:
        closed_before = bodies(store.pay.books().all())
        last_month = store.pay.statements_of(LAST_MONTH)
    paid_lines = [
        (s.rep_id, line)
        for s in last_month
        for line in s.lines
        if line.kind is LineKind.COMMISSION and line.deal_id and line.amount > 0
    ]
    credited: dict[str, set[str]] = {}
    for rep_id, line in paid_lines:
        assert line.deal_id is not None
        credited.setdefault(line.deal_id, set()).add(rep_id)
    alone = sorted(deal for deal, reps in credited.items() if len(reps) == 1)
    assert len(alone) >= 5
    assert crm.cli("periods", "close", LAST_MONTH).exit_code == 2  # already closed

    # Late changes in the CRM to deals paid in the closed month.
    lowered, moved, redated, cancelled, deleted = alone[:5]
    crm.sandbox.set_amount(lowered, Decimal("1000"))
    crm.sandbox.close_deal(redated, won=True, on=date.fromisoformat(THIS_MONTH + "-01"))
    crm.sandbox.reverse_deal(cancelled)
    if isinstance(crm.sandbox, SalesforceSandbox):
        crm.sandbox.delete_deal(deleted)
    else:
        assert isinstance(crm.sandbox, HubSpotSandbox)
        crm.sandbox.archive_deal(deleted)
    rep_ids = sorted({s.rep_id for s in last_month})
    (owner_of_moved,) = credited[moved]
    new_owner = next(r for r in rep_ids if r != owner_of_moved)
    crm.sandbox.set_owner(moved, new_owner)
    backdated = crm.sandbox.create_deal(
        rep_ids[0], Decimal("5000"), date.fromisoformat(LAST_MONTH + "-10"), won=True
    )
    # Exit 0: the deleted deal's clawback goes on the statement, and no write is sent to
    # a record the CRM no longer has (it would fail on every sync).
    crm.ok("sync")

    with crm.store() as store:
        # Closed statements are byte-identical.
        current = bodies([s for rep in rep_ids for s in store.statements.of_rep(rep)])
        for key, body in closed_before.items():
            assert current[key] == body, key
        adjustments = [
            (s.rep_id, line)
            for rep in rep_ids
            for s in store.statements.of_rep(rep, THIS_MONTH)
            for line in s.lines
            if line.kind is LineKind.ADJUSTMENT
        ]
        said = {line.deal_id: line.rule for _, line in adjustments}
        assert "amount changed" in said[lowered]
        assert "owner changed" in said[moved]
        assert "now counts there" in said[backdated]
        assert "close date moved" in said[redated]
        assert {line.paid_period for _, line in adjustments} == {LAST_MONTH}
        # Cancelled and deleted deals paid in the closed period are clawbacks, as before
        # the close: in the period they were cancelled, not adjustments.
        clawed = {
            line.deal_id: line
            for rep in rep_ids
            for s in store.statements.of_rep(rep, THIS_MONTH)
            for line in s.lines
            if line.kind is LineKind.CLAWBACK
        }
        assert {cancelled, deleted} <= clawed.keys() and cancelled not in said
        assert clawed[cancelled].paid_period == LAST_MONTH and clawed[cancelled].amount < 0
        assert deleted not in said
        # The re-dated deal is paid again in the open period, at the rules of that period.
        assert any(
            line.deal_id == redated and line.kind is LineKind.COMMISSION
            for rep in rep_ids
            for s in store.statements.of_rep(rep, THIS_MONTH)
            for line in s.lines
        )
        # Closed figures plus adjustments equal recomputing everything, to the cent.
        stored: dict[str, Decimal] = {}
        for rep in rep_ids:
            for s in store.statements.of_rep(rep):
                stored[rep] = stored.get(rep, Decimal(0)) + s.earnings
        assert stored == {r: v for r, v in recomputed_earnings(crm, store).items() if r in stored}
        # The deal's own field: what it paid when closed plus what the adjustment moved.
        now_paid = sum(
            (
                line.amount
                for rep in rep_ids
                for s in store.statements.of_rep(rep)
                for line in s.lines
                if line.deal_id == lowered
                and line.kind in (LineKind.COMMISSION, LineKind.ADJUSTMENT)
            ),
            Decimal(0),
        )
        state = store.crm_values.states(RecordKind.DEAL, [lowered])[lowered, "commission"]
        assert state.crm is not None and Decimal(state.crm) == now_paid
        this_month = {
            s.rep_id: s for rep in rep_ids for s in store.statements.of_rep(rep, THIS_MONTH)
        }

    # The CRM shows each rep's adjustments and the period status.
    for rep, statement in this_month.items():
        assert Decimal(str(crm.rep_field(rep, "Adjustments"))) == statement.adjustments
        assert crm.rep_field(rep, "Period_Status") == "preliminary"

    # explain: a closed period from what was closed (the deal at its old amount), with
    # the close in its history; the open one with the adjustment and its reason.
    lowered_owner = next(iter(credited[lowered]))
    closed_explained = crm.ok("explain", lowered_owner, "--period", LAST_MONTH).output
    assert f"period {LAST_MONTH}: closed" in closed_explained
    assert "plan version " in closed_explained and "unknown" not in closed_explained
    assert f"{lowered}: won, 1000.00" not in closed_explained  # as it stood at the close
    assert f"{lowered}: won, " in closed_explained
    assert "fin@example.com: close" in closed_explained
    open_explained = crm.ok("explain", lowered_owner, "--period", THIS_MONTH).output
    assert f"period {THIS_MONTH}: preliminary" in open_explained
    assert "amount changed" in open_explained and f"[{LAST_MONTH}]" in open_explained
    refused = crm.cli("explain", lowered_owner, "--period", "2031-01")
    assert refused.exit_code == 2 and "has no statement for 2031-01" in refused.output

    shown = crm.ok("statement", owner_of_moved, "--period", THIS_MONTH).output
    assert "Adjustments" in shown and f"late change to closed {LAST_MONTH}" in shown

    # A manual adjustment, then its reversal: never edited, both on the statement.
    rep = rep_ids[1]
    crm.ok("adjust", rep, "--period", THIS_MONTH, "--amount", "-250.00", "--reason", "phone")
    before = this_month[rep].adjustments
    assert Decimal(str(crm.rep_field(rep, "Adjustments"))) == before - Decimal("250.00")
    refused = crm.cli("adjust", rep, "--period", LAST_MONTH, "--amount", "5", "--reason", "x")
    assert refused.exit_code == 2 and "is closed" in refused.output
    crm.ok("adjust", "--reverse", "1", "--reason", "entered in error")
    assert Decimal(str(crm.rep_field(rep, "Adjustments"))) == before
    assert crm.cli("adjust", "--reverse", "1", "--reason", "again").exit_code == 2

    # Payroll: exact, totals equal the closed statements, then paid.
    assert crm.cli("payroll", THIS_MONTH).exit_code == 2  # open
    ids = crm.directory / "ids.csv"
    ids.write_text("rep,payroll_id\n" + "".join(f"{r},E{n:03d}\n" for n, r in enumerate(rep_ids)))
    sheet = crm.directory / "payroll.csv"
    crm.ok("payroll", LAST_MONTH, "--ids", str(ids), "--output", str(sheet), "--mark-paid")
    rows = list(csv.DictReader(io.StringIO(sheet.read_text())))
    total = rows.pop()
    assert total["payroll_id"] == "TOTAL"
    assert [row["payroll_id"] for row in rows] == [f"E{n:03d}" for n in range(len(rows))]
    assert Decimal(total["payout"]) == sum(s.payout for s in last_month)
    assert Decimal(total["payout"]) == sum(Decimal(row["payout"]) for row in rows)
    assert oct(sheet.stat().st_mode & 0o777) == "0o600"
    listed = crm.ok("periods", "list").output
    assert f"{LAST_MONTH}   paid" in listed
    as_json = json.loads(crm.ok("payroll", LAST_MONTH, "--format", "json").stdout)
    assert as_json["status"] == "paid" and as_json["totals"]["payout"] == total["payout"]

    refused = crm.cli("periods", "reopen", LAST_MONTH, "--reason", "oops")
    assert refused.exit_code == 2 and "is paid" in refused.output
    with crm.store() as store:
        actions = [event.action for event in store.pay.events()]
    assert actions.count("close") >= 1 and actions[-4:] == [
        "adjust",
        "payroll_export",
        "paid",
        "payroll_export",
    ]


def test_reopen_the_latest_closed_period_follows_the_crm_again(crm: Crm) -> None:
    crm.ok("install")
    crm.ok("sync")
    crm.ok("periods", "close", LAST_MONTH, "--with-earlier")
    with crm.store() as store:
        paid = [s for s in store.pay.statements_of(LAST_MONTH) if s.commission > 0]
    deal = next(line.deal_id for line in paid[0].lines if line.deal_id)
    assert deal is not None
    crm.sandbox.set_amount(deal, Decimal("1000"))
    crm.ok("sync")
    with crm.store() as store:
        assert store.statements.of_rep(paid[0].rep_id, LAST_MONTH)[0] == paid[0]
    crm.ok("periods", "reopen", LAST_MONTH, "--reason", "late booking correction")
    with crm.store() as store:
        assert (store.pay.closed_through() or "9999") < LAST_MONTH  # the months before stay
        reopened = store.statements.of_rep(paid[0].rep_id, LAST_MONTH)[0]
        assert reopened != paid[0]  # recomputed with the new amount
        now = store.statements.of_rep(paid[0].rep_id, THIS_MONTH)[0]
        assert not [line for line in now.lines if line.paid_period == LAST_MONTH]


def test_a_close_killed_midway_leaves_nothing_half_closed(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path
) -> None:
    sf = make_salesforce_sandbox(reps=4, deals=80)
    config = write_config(tmp_path, sf.settings()["crm"], [u["Id"] for u in sf.users()])
    env = {**os.environ, **sf.settings()["env"]}
    assert run(config, env, "install").exit_code == 0
    assert run(config, env, "sync").exit_code == 0
    # Die inside the close's transaction, after the statements are written.
    died = subprocess.run(
        [sys.executable, "-m", "tests.crash_close", "--config", str(config), "periods", "close",
         LAST_MONTH, "--with-earlier"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert died.returncode in (137, -signal.SIGKILL), died.stderr
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}", existing=True) as store:
        assert store.pay.closes() == []
        assert store.pay.books().all() == []
    again = run(config, env, "periods", "close", LAST_MONTH, "--with-earlier")
    assert again.exit_code == 0, again.output
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}", existing=True) as store:
        assert [c.period for c in store.pay.closes()][-1] == LAST_MONTH
        assert len(store.pay.statements_of(LAST_MONTH)) == 4


def test_a_plan_changed_by_a_version_leaves_closed_periods_alone_an_edit_is_called_out(
    crm: Crm,
) -> None:
    crm.ok("install")
    crm.ok("sync")
    crm.ok("periods", "close", LAST_MONTH, "--with-earlier")
    with crm.store() as store:
        closed = bodies(store.pay.books().all())
    config = yaml.safe_load(crm.config.read_text())
    plan = config["plans"][0]
    raised = {"tiers": [{"up_to": "1.0", "rate": "0.09"}, {"rate": "0.20"}]}
    plan["versions"] = [{"effective_from": f"{THIS_MONTH}-01", "commission": raised}]
    crm.config.write_text(yaml.safe_dump(config, sort_keys=False))
    versioned = crm.ok("sync")
    assert "are not those the period was closed with" not in versioned.output
    with crm.store() as store:
        assert bodies(store.pay.books().all()) == closed
        now = [s for rep in store.statements.reps() for s in store.statements.of_rep(rep)]
        assert not [line for s in now for line in s.lines if line.kind is LineKind.ADJUSTMENT]
        assert any(line.rate == Decimal("0.09") for s in now for line in s.lines)

    # Editing the plan in place instead: every sync says so.
    plan.pop("versions")
    plan["commission"]["tiers"][0]["rate"] = "0.07"
    crm.config.write_text(yaml.safe_dump(config, sort_keys=False))
    edited = crm.ok("sync")
    assert "plan ae: its rules for closed" in edited.output
    assert "add a version" in edited.output


@pytest.mark.parametrize("stage", ["rename", "mark"])
def test_a_payroll_export_killed_midway_leaves_no_half_file_and_no_false_paid(
    make_salesforce_sandbox: MakeSalesforceSandbox, tmp_path: Path, stage: str
) -> None:
    sf = make_salesforce_sandbox(reps=4, deals=80)
    config = write_config(tmp_path, sf.settings()["crm"], [u["Id"] for u in sf.users()])
    env = {**os.environ, **sf.settings()["env"]}
    for args in (("install",), ("sync",), ("periods", "close", LAST_MONTH, "--with-earlier")):
        assert run(config, env, *args).exit_code == 0
    sheet = tmp_path / "payroll.csv"
    died = subprocess.run(
        [sys.executable, "-m", "tests.crash_payroll", stage, "--config", str(config),
         "payroll", LAST_MONTH, "--output", str(sheet), "--mark-paid"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert died.returncode in (137, -signal.SIGKILL), died.stderr
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}", existing=True) as store:
        assert store.pay.statuses()[LAST_MONTH] == "closed"  # never paid without its file
    if stage == "rename":
        assert not sheet.exists()  # no half file where payroll would pick it up
    else:
        assert sheet.read_text().splitlines()[-1].startswith("TOTAL,")
    again = run(config, env, "payroll", LAST_MONTH, "--output", str(sheet), "--mark-paid")
    assert again.exit_code == 0, again.output
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}", existing=True) as store:
        assert store.pay.statuses()[LAST_MONTH] == "paid"


def test_payroll_ids_come_from_the_crm_field_named_in_spm_yaml(crm: Crm) -> None:
    crm.ok("install")
    config = yaml.safe_load(crm.config.read_text())
    config["pay_cycle"] = {"payroll_id_field": "employee_number"}
    crm.config.write_text(yaml.safe_dump(config, sort_keys=False))
    refused = crm.cli("sync")
    assert refused.exit_code == 2 and "pay_cycle.payroll_id_field" in refused.output
    assert "employee_number" in refused.output

    if isinstance(crm.sandbox, SalesforceSandbox):
        field = "EmployeeNumber"  # the standard User field (seeded E10000, E10001, …)
    else:
        assert isinstance(crm.sandbox, HubSpotSandbox)
        field = "employee_id"  # a property the portal's admin created on the users object
        portal = crm.sandbox.portal
        definition = {"name": field, "label": "Employee ID", "type": "string"}
        portal.create_property(
            "users", {**definition, "fieldType": "text", "groupName": "userinformation"}
        )
        for n, record_id in enumerate(portal.user_ids):
            record = portal.get("users", record_id)
            assert record is not None
            portal.update("users", record, {field: f"E{10_000 + n}"})
    config["pay_cycle"] = {"payroll_id_field": field}
    crm.config.write_text(yaml.safe_dump(config, sort_keys=False))
    crm.ok("sync")
    crm.ok("periods", "close", LAST_MONTH, "--with-earlier")
    rows = list(csv.DictReader(io.StringIO(crm.ok("payroll", LAST_MONTH).stdout)))
    rows.pop()  # the totals
    assert rows and all(re.fullmatch(r"E1000\d", row["payroll_id"]) for row in rows)
    assert len({row["payroll_id"] for row in rows}) == len(rows)
