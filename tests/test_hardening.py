"""Bad config and broken stores: one plain message, the right exit code, no traceback."""
# ruff: noqa: E501  (the tables of bad inputs read best one case per line)

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from connector import config as config_module
from connector.cli import cli
from connector.config import load_config, store_url
from connector.errors import ConfigError, StoreBusyError, StoreError
from connector.store import db as store_module
from connector.store.state import Store

BASE = {
    "currency": "USD",
    "period": "month",
    "plans": [
        {
            "id": "ae",
            "start": "2026-01-01",
            "members": ["u1"],
            "quota": "1000",
            "commission": {"tiers": [{"rate": "0.1"}]},
        }
    ],
}


def config_text(**plan: object) -> str:
    text = yaml.safe_dump({**BASE, "plans": [{**BASE["plans"][0], **plan}]}, sort_keys=False)
    return text


def load(tmp_path: Path, text: str) -> config_module.Config:
    path = tmp_path / "spm.yaml"
    path.write_text(text)
    return load_config(path)


def test_numbers_are_read_as_written(tmp_path: Path) -> None:
    text = config_text().replace("quota: '1000'", "quota: 010000").replace("- u1", "- 0123")
    config = load(tmp_path, text)
    assert config.plans[0].quota == 10000  # not octal 4096
    assert config.plans[0].members == ("0123",)  # the id keeps its zero


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (("quota: '1000'", "quota: 10:00"), "plans[0].quota: '10:00' is not a number"),
        (
            ("quota: '1000'", "quota: 1e400"),
            "plans[0].quota: 1E+400 is beyond any plausible amount",
        ),
        (("quota: '1000'", "quota: 10000000000000000000000000000000000000000"), "beyond any"),
        (("start: '2026-01-01'", "start: 0"), "plans[0].start: 0 is not a date"),
        (("start: '2026-01-01'", "start: 1870-01-01"), "not a plausible plan date"),
    ],
)
def test_absurd_config_values_are_one_clear_error(
    tmp_path: Path, replace: tuple[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, config_text().replace(*replace))
    assert message in str(caught.value)


def test_pathological_nesting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nested too deeply"):
        load(tmp_path, "x: " + "[" * 10_000)


@pytest.mark.parametrize(
    ("crm", "fields", "message"),
    [
        ({"type": "salesforce", "instance_url": "https://x.my.salesforce.com"},
         {"commission": "Amount"}, "fields.commission: 'Amount' is not a Salesforce custom field"),
        ({"type": "hubspot"}, {"commission": "amount"}, "fields.commission: 'amount' is a HubSpot property spm-connector reads"),
        ({"type": "hubspot"}, {"commission": "hs_x"}, "hs_ properties"),
        ({"type": "hubspot"}, {"hubspot_rep_object": "users/../../owners"}, "is not a HubSpot object name"),
        ({"type": "hubspot"}, {"commission": "spm_x", "clawback": "spm_x"}, "already the target of fields.commission"),
    ],
)  # fmt: skip
def test_fields_may_only_name_fields_of_our_own(
    tmp_path: Path, crm: dict[str, str], fields: dict[str, str], message: str
) -> None:
    text = yaml.safe_dump({**BASE, "crm": crm, "fields": fields}, sort_keys=False)
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert message in str(caught.value)


def test_doubtful_inputs_are_warned_of(tmp_path: Path) -> None:
    text = config_text(bonuses=[{"at": "1.0", "amount": "-500"}], members=["u1", "u9"])
    (tmp_path / "spm.yaml").write_text(text)
    (tmp_path / "deals.csv").write_text(
        "id,owner_id,amount,close_date,status\nd1,u1,100,2026-01-05,won\n"
    )
    (tmp_path / "reps.csv").write_text("id,name\nu1,Dana\n")
    (tmp_path / "splits.csv").write_text("deal_id,rep_id,percent\nd1,u1,60\nd1,ghost,40\n")
    result = CliRunner().invoke(
        cli,
        ["--config", str(tmp_path / "spm.yaml"), "calc", "--deals", str(tmp_path / "deals.csv"),
         "--reps", str(tmp_path / "reps.csv"), "--splits", str(tmp_path / "splits.csv"),
         "--as-of", "2026-01-31"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "bonuses[0].amount: -500 is negative" in result.stderr
    assert "u9 has no row in reps.csv" in result.stderr
    assert "credits 40% to ghost" in result.stderr


def test_a_bad_byte_is_reported_on_its_own_line(tmp_path: Path) -> None:
    from connector.errors import InputError
    from connector.inputs import read_deals

    lines = [b"id,owner_id,amount,close_date,status\n"]
    lines += [b"d%d,u1,100,2026-01-05,won\n" % n for n in range(30_000)]
    lines[20_000] = b"d\xff,u1,100,2026-01-05,won\n"
    (tmp_path / "deals.csv").write_bytes(b"".join(lines))
    with pytest.raises(InputError, match=r"deals.csv:20001: not UTF-8"):
        read_deals(tmp_path / "deals.csv", currency="USD")


def test_store_url_comes_from_the_environment_first(tmp_path: Path) -> None:
    config = load(tmp_path, config_text())
    assert store_url(config, {}) == "sqlite:///spm.db"
    assert store_url(config, {"SPM_STORE_URL": "postgresql://a@b/c"}) == "postgresql://a@b/c"


# -- stores --------------------------------------------------------------------------------------


def test_a_new_sqlite_store_is_private(tmp_path: Path) -> None:
    Store.open(f"sqlite:///{tmp_path / 'spm.db'}").close()
    assert stat.S_IMODE(os.stat(tmp_path / "spm.db").st_mode) == 0o600


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "spm.db").write_text("hello, I am a text file\n" * 100)
    with pytest.raises(StoreError, match="is not an spm-connector store"):
        Store.open(f"sqlite:///{tmp_path / 'spm.db'}")


def test_a_store_from_a_newer_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spm.db'}"
    Store.open(url).close()
    with sqlite3.connect(tmp_path / "spm.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="written by a newer spm-connector"):
        Store.open(url)


def test_a_dropped_table_and_a_damaged_cursor(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spm.db'}"
    with Store.open(url) as store:
        store.cursors.set("deals_modified", "garbage")
        with pytest.raises(StoreError, match=r"cursor deals_modified is damaged.*--full"):
            store.cursors.time("deals_modified")
    with sqlite3.connect(tmp_path / "spm.db") as db:
        db.execute("DROP TABLE deals")
    with Store.open(url) as store, pytest.raises(StoreError) as caught:
        store.deals.for_reps(["r1"])
    assert "is damaged (no such table: deals)" in str(caught.value)
    assert "SELECT" not in str(caught.value)


def test_a_store_locked_by_another_process_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "SQLITE_BUSY_S", 0.2)
    url = f"sqlite:///{tmp_path / 'spm.db'}"
    with Store.open(url) as store:
        other = sqlite3.connect(tmp_path / "spm.db", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreBusyError) as caught:
                store.cursors.set("x", "y")
        finally:
            other.execute("ROLLBACK")
            other.close()
    assert caught.value.exit_code == 4


def test_two_first_opens_at_once_on_postgresql() -> None:
    import threading

    from tests.test_store import _postgres_url

    urls = _postgres_url()
    url = next(urls)
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            Store.open(url).close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    urls.close()
    assert errors == []
