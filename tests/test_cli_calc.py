"""`spm-connector calc` end to end through click's CliRunner."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli
from connector.config import load_config
from connector.inputs import load_inputs
from connector.views.calc import LINE_FIELDS, STATEMENT_FIELDS

CONFIG = """\
currency: USD
period: month
timezone: UTC
plans:
  - id: ae-2026
    start: 2026-01-01
    end: 2026-12-31
    members: [r1, r2]
    quota: 10000
    commission:
      tiers:
        - {up_to: 1.0, rate: 0.10}
        - {rate: 0.15}
    draw: {type: recoverable, amount: 500, periods: 2}
    bonuses: [{at: 1.0, amount: 100}]
    spiffs: [{name: new-logo, when: {type: New Business}, amount: 50}]
    clawback: {window_days: 90}
"""
DEALS = """\
id,owner_id,amount,close_date,status,cancel_date,type,region
D1,r1,6000,2026-01-10,won,,New Business,East
D2,r1,6000,2026-01-20,won,,Renewal,East
D3,r2,3000,2026-01-05,lost,,,West
D4,r2,4000,2026-02-11,cancelled,2026-03-15,New Business,West
D5,r1,-500,2026-02-02,won,,Renewal,East
D6,r2,2500,2026-03-30,open,,,West
D7,r1,8000,2026-03-03,won,,New Business,East
"""
REPS = """\
id,name,email,start_date,end_date
r1,Avery Chen,avery@acme.example,,
r2,Blake Osei,blake@acme.example,2026-01-01,
"""
SPLITS = """\
deal_id,rep_id,percent
D7,r1,75
D7,r2,25
"""
MONEY = re.compile(r"^-?\d+\.\d{2}$")
FRACTION = re.compile(r"^-?\d+\.\d{4}$")
MONEY_KEYS = {
    "quota",
    "bookings",
    "commission",
    "spiffs",
    "bonuses",
    "clawbacks",
    "earnings",
    "draw",
    "draw_paid",
    "draw_recovered",
    "draw_balance",
    "draw_forgiven",
    "payout",
    "average_deal_size",
    "open_pipeline",
}


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name, text in (
        ("spm.yaml", CONFIG),
        ("deals.csv", DEALS),
        ("reps.csv", REPS),
        ("splits.csv", SPLITS),
    ):
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def calc(*extra: str, deals: str = "deals.csv") -> Result:
    base = ["--config", "spm.yaml", "calc", "--deals", deals, "--reps", "reps.csv"]
    return run(*base, "--splits", "splits.csv", "--as-of", "2026-03-31", *extra)


def test_json_document_shape(files: Path) -> None:
    result = calc()
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert list(document) == ["currency", "as_of", "statements", "teams"]
    assert document["teams"] == []  # no team goals in this plan
    assert document["currency"] == "USD"
    assert document["as_of"] == "2026-03-31"
    statements = document["statements"]
    assert [(s["rep_id"], s["period"]) for s in statements] == [
        ("r1", "2026-01"),
        ("r1", "2026-02"),
        ("r1", "2026-03"),
        ("r2", "2026-01"),
        ("r2", "2026-02"),
        ("r2", "2026-03"),
    ]
    for statement in statements:
        assert list(statement) == [*STATEMENT_FIELDS, "goals", "lines"]
        assert statement["goals"] == []
        for key in MONEY_KEYS:
            value = statement[key]
            assert value is None or MONEY.match(value), (key, value)
        assert FRACTION.match(statement["attainment"])
        assert statement["win_rate"] is None or FRACTION.match(statement["win_rate"])
        assert isinstance(statement["won_count"], int)
        assert isinstance(statement["lost_count"], int)
        for line in statement["lines"]:
            expected = [*LINE_FIELDS, "paid_period"] if line["kind"] == "clawback" else LINE_FIELDS
            assert list(line) == list(expected)
            assert MONEY.match(line["amount"])
            assert line["rate"] is None or FRACTION.match(line["rate"])

    r1_january = statements[0]
    assert r1_january["plan_id"] == "ae-2026"
    assert r1_january["bookings"] == "12000.00"
    assert r1_january["attainment"] == "1.2000"
    assert r1_january["commission"] == "1300.00"  # 10 % of 10,000 + 15 % of 2,000
    assert r1_january["lines"][0] == {
        "kind": "commission",
        "deal_id": "D1",
        "amount": "600.00",
        "rate": "0.1000",
        "rule": r1_january["lines"][0]["rule"],
    }
    bonus = [line for line in r1_january["lines"] if line["kind"] == "bonus"]
    assert bonus and bonus[0]["deal_id"] is None

    r2_march = statements[5]
    (clawback,) = [line for line in r2_march["lines"] if line["kind"] == "clawback"]
    assert clawback["deal_id"] == "D4"
    assert clawback["paid_period"] == "2026-02"
    assert clawback["amount"] == "-450.00"  # 10 % of 4,000 and the 50 SPIFF
    r2_january = statements[3]
    assert r2_january["win_rate"] == "0.0000"
    assert r2_january["average_deal_size"] is None  # no won deal


def test_same_output_whatever_the_row_order(files: Path) -> None:
    first = calc().stdout_bytes
    rng = random.Random(5)
    for name in ("deals.csv", "reps.csv", "splits.csv"):
        header, *rows = (files / name).read_text(encoding="utf-8").splitlines(keepends=True)
        rng.shuffle(rows)
        (files / name).write_text(header + "".join(rows), encoding="utf-8")
    assert calc().stdout_bytes == first
    assert calc().stdout_bytes == first  # and again: nothing depends on the run


def test_rep_filter(files: Path) -> None:
    statements = json.loads(calc("--rep", "r2").stdout)["statements"]
    assert {s["rep_id"] for s in statements} == {"r2"}
    assert len(statements) == 3


def test_unknown_rep_is_an_error(files: Path) -> None:
    result = calc("--rep", "r9")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --rep r9: no statements; not a member of any plan by 2026-03-31\n"
    )


def test_period_filter(files: Path) -> None:
    statements = json.loads(calc("--period", "2026-02").stdout)["statements"]
    assert [(s["rep_id"], s["period"]) for s in statements] == [
        ("r1", "2026-02"),
        ("r2", "2026-02"),
    ]
    # The draw balance carried into February is still the whole history's.
    assert (
        statements[0]["draw_balance"] == json.loads(calc().stdout)["statements"][1]["draw_balance"]
    )


def test_period_must_match_the_configured_kind(files: Path) -> None:
    result = calc("--period", "2026-Q1")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --period: '2026-Q1' is not a month like 2026-03 (the config's period is month)\n"
    )


def test_csv_format(files: Path) -> None:
    result = calc("--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == [*STATEMENT_FIELDS, "lines"]
    assert len(rows) == 7
    january = dict(zip(rows[0], rows[1], strict=True))
    assert (january["rep_id"], january["period"], january["commission"]) == (
        "r1",
        "2026-01",
        "1300.00",
    )
    assert dict(zip(rows[0], rows[4], strict=True))["average_deal_size"] == ""  # null


def test_table_format(files: Path) -> None:
    result = calc("--format", "table")
    assert result.exit_code == 0
    for text in ("Statements as of 2026-03-31 (USD)", "Avery Chen", "Blake Osei", "2026-03"):
        assert text in result.stdout
    for text in ("120.00%", "Total", "$1,"):
        assert text in result.stdout
    # A pipe gets 100 columns: what does not fit is named, with where to see it.
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    assert "Not shown at 100 columns: " in result.stdout and "Draw paid" in result.stdout
    assert "--format csv has every column" in result.stdout


@pytest.mark.parametrize("width", [80, 120, 160])
def test_table_fits_the_terminal_and_keeps_what_matters(
    files: Path, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    from connector.core.statements import calculate
    from connector.views.calc import write_table

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", str(width))
    config = load_config(str(files / "spm.yaml"))
    inputs = load_inputs(
        str(files / "deals.csv"), str(files / "reps.csv"), str(files / "splits.csv"),
        currency="USD",
    )  # fmt: skip
    statements = calculate(
        config.plans, inputs.reps, inputs.deals, period_kind=config.period,
        as_of=date(2026, 3, 31),
    ).statements  # fmt: skip
    out = Terminal()
    write_table(out, statements, currency="USD", as_of=date(2026, 3, 31),
                names={"r1": "Avery Chen", "r2": "Blake Osei"})  # fmt: skip
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # a terminal gets colours
    assert max(len(line) for line in text.splitlines()) <= width
    for kept in ("Avery Chen", "Blake Osei", "Period", "Attain.", "Payout", "120.00%"):
        assert kept in text
    assert "…" not in text  # no cell cut short
    shown_in_table = text.split("Not shown at")[0]
    assert ("Draw paid" in shown_in_table) is (width >= 160)
    assert ("Not shown at" in text) is ("Draw paid" not in shown_in_table)


def test_a_long_name_ends_in_an_ellipsis_and_never_breaks_mid_word(files: Path) -> None:
    long = "Maximiliana-Theodora Vandenberghe-Oyelaran"
    (files / "reps.csv").write_text(REPS.replace("Avery Chen", long), encoding="utf-8")
    result = calc("--format", "table")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "Maximiliana" in line]
    assert len(rows) == 3 and all("…" in row for row in rows)  # one line each: not wrapped
    assert not any(line.startswith("│ Oyelaran") for line in result.stdout.splitlines())


def test_one_rep_one_period_reads_like_a_statement(files: Path) -> None:
    result = calc("--format", "table", "--rep", "r1", "--period", "2026-03")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("Statement: Avery Chen")
    assert "Payout, year to date (2026)" in out and "Commission by deal" in out
    assert all(len(line) <= 80 for line in out.splitlines())


def test_output_file(files: Path) -> None:
    result = calc("--output", "out.json")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert (files / "out.json").read_bytes() == calc().stdout_bytes


def test_output_files_are_private_whatever_the_umask(files: Path) -> None:
    old = os.umask(0o022)
    try:
        (files / "old.csv").write_text("left by someone\n")
        (files / "old.csv").chmod(0o644)
        for name, form in (("out.json", "json"), ("old.csv", "csv"), ("out.txt", "table")):
            assert calc("--format", form, "--output", name).exit_code == 0
            assert (files / name).stat().st_mode & 0o777 == 0o600, name
    finally:
        os.umask(old)
    assert "left by someone" not in (files / "old.csv").read_text()


def test_config_from_the_environment(files: Path) -> None:
    (files / "spm.yaml").rename(files / "other.yaml")
    args = ("calc", "--deals", "deals.csv", "--as-of", "2026-01-31")
    assert run(*args, env={"SPM_CONFIG": "other.yaml"}).exit_code == 0
    result = run(*args, env={"SPM_CONFIG": ""})
    assert result.exit_code == 2
    assert result.stderr == "error: spm.yaml: no such file (give --config PATH or set SPM_CONFIG)\n"


def test_bad_input_file_exits_2_without_traceback(files: Path) -> None:
    (files / "deals.csv").write_text(DEALS.replace("D2,r1,6000", "D2,r1,abc"), encoding="utf-8")
    result = calc()
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == "error: deals.csv:3: amount: 'abc' is not a number\n"
    assert "Traceback" not in result.output


def test_bad_config_lists_every_problem(files: Path) -> None:
    bad = CONFIG.replace("rate: 0.15", "rate: 15").replace("period: month", "period: week")
    (files / "spm.yaml").write_text(bad, encoding="utf-8")
    result = calc()
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: spm.yaml: period: must be 'month' or 'quarter'",
        "error: spm.yaml: plans[0].commission.tiers[1].rate: must be between 0 and 1",
    ]


def test_uncomputable_inputs_exit_2(files: Path) -> None:
    # Two plans over the same days whose members differ in text (an id, an email) but
    # are the same rep: only the engine, with reps.csv, can see it.
    second = CONFIG[CONFIG.index("  - id:") :].replace("ae-2026", "ae-bis")
    second = second.replace("members: [r1, r2]", "members: [avery@acme.example]")
    (files / "spm.yaml").write_text(CONFIG + second, encoding="utf-8")
    result = calc()
    assert result.exit_code == 2
    assert result.stderr == (
        "error: rep r1 is in plans ae-2026 and ae-bis, which cover the same days\n"
    )
    assert "Traceback" not in result.output


def test_bad_as_of(files: Path) -> None:
    result = calc("--as-of", "31/03/2026")
    assert result.exit_code == 2
    assert result.stderr == "error: --as-of: '31/03/2026' is not a date (YYYY-MM-DD)\n"


def test_warnings_go_to_stderr(files: Path) -> None:
    config = CONFIG.replace("members: [r1, r2]", "members: [r1, r2, nobody@acme.example]")
    (files / "spm.yaml").write_text(config, encoding="utf-8")
    result = calc()
    assert result.exit_code == 0
    assert "warning: plan ae-2026: member nobody@acme.example matches no rep; skipped" in (
        result.stderr
    )
    json.loads(result.stdout)  # stdout stays a clean document


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("spm-connector, version ")
    assert "calc" in run("--help").stdout


def test_the_shipped_example_runs() -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    result = run(
        "--config",
        str(examples / "spm.yaml"),
        "calc",
        "--deals",
        str(examples / "deals.csv"),
        "--reps",
        str(examples / "reps.csv"),
        "--splits",
        str(examples / "splits.csv"),
        "--as-of",
        "2026-12-31",
    )
    assert result.exit_code == 0, result.output
    statements = json.loads(result.stdout)["statements"]
    assert {s["plan_id"] for s in statements} == {"ae-2026", "se-2026"}
    kinds = {line["kind"] for s in statements for line in s["lines"]}
    assert kinds == {"commission", "spiff", "bonus", "clawback"}


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(files: Path) -> None:
    evil, other = "=cmd|' /C calc'!A0", "+SUM(1+1)"
    config = CONFIG.replace("members: [r1, r2]", "members: ['=cmd|'' /C calc''!A0', '+SUM(1+1)']")
    (files / "spm.yaml").write_text(config)
    for name in ("deals.csv", "reps.csv", "splits.csv"):
        text = (files / name).read_text()
        text = re.sub(r"\br1\b", "\"=cmd|' /C calc'!A0\"", text)
        (files / name).write_text(re.sub(r"\br2\b", '"+SUM(1+1)"', text))
    result = calc("--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert {row[0] for row in rows[1:]} == {"'" + evil, "'" + other}
    numbers = re.compile(r"^-?\d+(\.\d+)?$")
    for row in rows[1:]:
        for cell in row:
            # Nothing starts like a formula except our own numbers (a negative amount).
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
            assert not cell.startswith("-") or numbers.match(cell), cell
    negative = [cell for row in rows[1:] for cell in row if cell.startswith("-")]
    assert negative  # D5 is a credit note: its negative figures stay numbers


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-1+2", "'-1+2"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("r1", "r1"),
        ("", ""),
        (None, None),
    ],
)
def test_spreadsheet_safe_follows_owasps_list(cell: str | None, safe: str | None) -> None:
    from connector.views.calc import spreadsheet_safe

    assert spreadsheet_safe(cell) == safe


def test_leads_count_only_when_the_plan_asks_for_the_ratio(files: Path) -> None:
    (files / "leads.csv").write_text(
        "id,owner_id,created_date,converted\nL1,r1,2026-01-05,true\nL2,r1,2026-01-09,false\n",
        encoding="utf-8",
    )
    off = calc("--leads", "leads.csv", "--rep", "r1", "--period", "2026-01")
    assert off.exit_code == 0
    assert "--leads is ignored: the lead-to-sale ratio is off in spm.yaml" in off.stderr
    assert json.loads(off.stdout)["statements"][0]["lead_to_sale"] is None
    (files / "spm.yaml").write_text(CONFIG + "kpis: {lead_to_sale: true}\n", encoding="utf-8")
    on = calc("--leads", "leads.csv", "--rep", "r1", "--period", "2026-01")
    assert on.exit_code == 0 and "ignored" not in on.stderr
    assert json.loads(on.stdout)["statements"][0]["lead_to_sale"] == "0.5000"
