"""The state store on SQLite and on the local PostgreSQL (skipped when absent)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from connector.core.fields import RecordKind
from connector.core.models import CrmUser, DealSnapshot, DealStatus, Outcome
from connector.errors import StoreError, SyncLockedError
from connector.store.state import Store
from connector.sync.lease import LEASE, sync_lock

from .engine_helpers import deal, plan, run

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _postgres_url() -> Iterator[str]:
    try:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            name = f"spm_test_{uuid.uuid4().hex[:10]}"
            connection.execute(sa.text(f"CREATE DATABASE {name}"))
    except Exception as error:  # any failure to reach the server means: skip
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not available ({type(error).__name__})")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'spm.db'}"
    else:
        yield from _postgres_url()


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with Store.open(url) as opened:
        yield opened


def snapshot(deal_id: str, owner: str = "u1", **changes: object) -> DealSnapshot:
    values: dict[str, object] = {
        "id": deal_id,
        "owner_id": owner,
        "amount": Decimal("1234.50"),
        "currency": "USD",
        "close_date": date(2026, 3, 1),
        "outcome": Outcome.WON,
        "status": DealStatus.WON,
        "first_won_on": date(2026, 3, 1),
        "cancel_date": None,
        "type": "New Business",
        "name": "Acme",
        "properties": {"StageName": "Closed Won"},
        "modified_at": datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        "deleted": False,
    }
    values.update(changes)
    return DealSnapshot(**values)  # type: ignore[arg-type]


def test_reopening_is_idempotent_and_keeps_data(url: str) -> None:
    with Store.open(url) as first:
        first.cursors.set("deals", "2026-03-01T00:00:00+00:00")
        first.deals.upsert([snapshot("d1")])
    with Store.open(url) as again:  # migrations run again: nothing to do, nothing lost
        assert again.cursors.get("deals") == "2026-03-01T00:00:00+00:00"
        assert again.deals.by_id(["d1"])["d1"] == snapshot("d1")


def test_deal_snapshots_round_trip_exactly(store: Store) -> None:
    store.deals.upsert([snapshot("d1"), snapshot("d2", amount=None, close_date=None)])
    got = store.deals.by_id(["d1", "d2", "missing"])
    assert got["d1"] == snapshot("d1")
    assert str(got["d1"].amount) == "1234.50"
    assert got["d1"].modified_at.tzinfo is not None
    assert got["d2"].amount is None
    store.deals.upsert([snapshot("d1", status=DealStatus.CANCELLED, cancel_date=date(2026, 5, 2))])
    assert store.deals.by_id(["d1"])["d1"].cancel_date == date(2026, 5, 2)
    assert sorted(store.deals.by_id(["d1", "d2", "d3"])) == ["d1", "d2"]


def test_deals_for_reps_by_owner_and_by_split(store: Store) -> None:
    store.deals.upsert([snapshot("d1", "u1"), snapshot("d2", "u2"), snapshot("d3", "u3")])
    store.deals.replace_splits({"d2": [("u2", Decimal(60)), ("u1", Decimal(40))]})
    assert [d.id for d in store.deals.for_reps(["u1"])] == ["d1", "d2"]
    store.deals.replace_splits({"d2": []})
    assert [d.id for d in store.deals.for_reps(["u1"])] == ["d1"]
    assert store.deals.splits(["d2"]) == {}


def test_users(store: Store) -> None:
    store.users.upsert([CrmUser("u1", "Dana", "dana@acme.example", True)])
    store.users.upsert([CrmUser("u1", "Dana R", "dana@acme.example", False, "u9")])
    (user,) = store.users.all()
    assert (user.name, user.active, user.manager_id) == ("Dana R", False, "u9")


def test_statements_round_trip_exactly(store: Store) -> None:
    p = plan(draw={"type": "recoverable", "amount": "1500"}, clawback={"window_days": 90})
    deals = [
        deal("d1", "12000.10", date(2026, 1, 5)),
        deal("d2", "5000", date(2026, 1, 9), "cancelled", cancel=date(2026, 2, 2)),
    ]
    statements = run(p, deals, as_of=date(2026, 3, 31)).statements
    store.statements.replace(["r1"], statements)
    assert repr(store.statements.of_rep("r1")) == repr(list(statements))
    assert [s.period for s in store.statements.of_rep("r1", "2026-02")] == ["2026-02"]
    # Figures the database reads out of the bodies (json_extract, ->>), exactly.
    assert store.statements.payouts_by_period("2026") == {s.period: s.payout for s in statements}
    jan = statements[0]
    assert store.statements.bookings_and_payouts("2026-01") == {"r1": (jan.bookings, jan.payout)}
    assert store.statements.payouts_by_period("2025") == {}
    store.statements.replace(["r1"], statements[:1])  # replaces, never appends
    assert len(store.statements.of_rep("r1")) == 1


def test_field_states_and_pending(store: Store) -> None:
    deal_kind = RecordKind.DEAL
    store.crm_values.set_crm(deal_kind, [("d1", "commission", "10.00"), ("d2", "commission", None)])
    assert store.crm_values.pending(deal_kind) == {}  # nothing desired yet
    store.crm_values.set_desired(
        deal_kind,
        [("d1", "commission", "12.00"), ("d2", "commission", None), ("d3", "commission", "5.00")],
    )
    assert store.crm_values.pending(deal_kind) == {
        "d1": {"commission": "12.00"},
        "d3": {"commission": "5.00"},
    }
    store.crm_values.set_crm(deal_kind, [("d1", "commission", "12.00")])  # the write landed
    assert store.crm_values.pending(deal_kind) == {"d3": {"commission": "5.00"}}
    store.crm_values.set_desired(deal_kind, [("d1", "commission", None)])  # clear it
    assert store.crm_values.pending(deal_kind)["d1"] == {"commission": None}
    states = store.crm_values.states(deal_kind, ["d1"])
    assert (states["d1", "commission"].crm, states["d1", "commission"].desired) == ("12.00", None)
    assert store.crm_values.pending(RecordKind.REP) == {}


def test_run_log(store: Store) -> None:
    run_id = store.runs.start("sync", NOW, {"full": True})
    store.runs.finish(run_id, NOW + timedelta(seconds=5), "ok", {"fields_written": 3})
    (record,) = store.runs.recent()
    assert (record.status, record.options, record.summary) == (
        "ok",
        {"full": True},
        {"fields_written": 3},
    )
    assert record.finished_at == NOW + timedelta(seconds=5)


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def test_lock_refuses_a_second_sync_and_is_released(store: Store) -> None:
    refused = pytest.raises(
        SyncLockedError, match=r"another sync \(host:1\) has held store .* since 2026-11-22"
    )
    with sync_lock(store, "host:1", at(NOW)), refused, sync_lock(store, "host:2", at(NOW)):
        pass
    with sync_lock(store, "host:2", at(NOW)):  # released: free again
        pass
    with pytest.raises(RuntimeError), sync_lock(store, "host:3", at(NOW)):
        raise RuntimeError("sync failed")
    with sync_lock(store, "host:4", at(NOW)):  # released after an exception too
        pass


def test_a_lapsed_lease_is_taken_over(store: Store) -> None:
    # The holder's last renewal was three minutes ago: its two-minute lease has lapsed.
    with (
        sync_lock(store, "dead:1", at(NOW - timedelta(minutes=3))),
        sync_lock(store, "host:2", at(NOW)),
    ):
        pass


def test_a_dead_process_on_this_host_stops_blocking_at_once_on_sqlite_only(store: Store) -> None:
    probe = "from connector.store.db import this_process; print(this_process())"
    finished = subprocess.run([sys.executable, "-c", probe],
                              capture_output=True, text=True, check=True)  # fmt: skip
    dead = finished.stdout.strip()  # host:pid:pid-namespace of a process that has ended
    with sync_lock(store, dead, at(NOW)):
        if store.dialect == "sqlite":  # one host's file: its dead holder is seen to be dead
            with sync_lock(store, "host:2", at(NOW)):
                pass
            return
        # A server store: another host may share this one's name and PID namespace, so
        # only the lease says the holder died.
        with pytest.raises(SyncLockedError), sync_lock(store, "host:2", at(NOW)):
            pass
        with sync_lock(store, "host:2", at(NOW + LEASE + timedelta(seconds=1))):
            pass


def test_only_a_process_of_this_host_and_pid_namespace_can_be_seen_to_be_dead() -> None:
    from connector.store.db import may_be_alive, this_process

    host, _pid, namespace, token = this_process().split(":")
    gone = 2**22 + 12345  # above any pid_max: no such process here
    assert not may_be_alive(f"{host}:{gone}:{namespace}:{token}")
    assert not may_be_alive(f"{host}:{gone}:{namespace}")  # named before tokens
    # Another container with the same hostname: its pids mean nothing here.
    assert may_be_alive(f"{host}:{gone}:{namespace}9")
    assert may_be_alive(f"other-host:{gone}:{namespace}")
    assert may_be_alive(f"{host}:{gone}")  # named the way older versions did: its lease decides
    assert may_be_alive(this_process())


def test_two_processes_with_one_host_pid_and_namespace_have_two_names(tmp_path: Path) -> None:
    """Where /proc hides the PID namespace and two containers share a hostname and a pid,
    the random token still tells their holders apart: the second is refused."""
    same = (
        "import os, socket\nimport connector.store.db as db\n"
        "os.getpid = lambda: 4242\nsocket.gethostname = lambda: 'worker'\n"
        "db._pid_namespace = lambda: ''\nprint(db.this_process())\n"
    )
    names = [
        subprocess.run([sys.executable, "-c", same], capture_output=True, text=True,
                       check=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
        for _ in range(2)
    ]  # fmt: skip
    assert names[0].startswith("worker:4242::") and names[1].startswith("worker:4242::")
    assert names[0] != names[1]
    with (
        Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as store,
        sync_lock(store, names[0], at(NOW)),
        pytest.raises(SyncLockedError),
        sync_lock(store, names[1], at(NOW)),
    ):
        pass


def test_a_holder_in_another_pid_namespace_with_our_hostname_keeps_the_lock(
    tmp_path: Path,
) -> None:
    # Two containers with one hostname: the holder's pid (30000 in its own namespace)
    # does not exist in ours. Before pid namespaces were part of a holder's name, this
    # process took that for a dead holder and took the lock too.
    url = f"sqlite:///{tmp_path / 'spm.db'}"
    Store.open(url).close()
    holder = (
        "import sys, time\nfrom datetime import UTC, datetime\n"
        "from connector.store.state import Store\nfrom connector.sync.lease import sync_lock\n"
        "from connector.store.db import this_process\n"
        f"with Store.open({url!r}) as s, sync_lock(s, this_process(), lambda: datetime.now(UTC)):\n"
        "    print('held', flush=True)\n    sys.stdin.readline()\n"
    )
    script = tmp_path / "hold.py"
    script.write_text(holder)
    try:
        process = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
             f"echo 29999 > /proc/sys/kernel/ns_last_pid && {sys.executable} {script}; true"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
    except FileNotFoundError:
        pytest.skip("unshare is not installed: cannot make a second PID namespace here")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if line.strip() != "held":
            pytest.skip(f"cannot make a PID namespace here ({process.stderr.read()[:200]})")
        with (
            Store.open(url) as store,
            pytest.raises(SyncLockedError),
            sync_lock(store, "here:1", lambda: datetime.now(UTC)),
        ):
            pass
    finally:
        if process.stdin is not None:
            process.stdin.write("\n")
            process.stdin.close()
        process.wait(timeout=30)


def test_a_live_holder_keeps_its_lease_renewed(store: Store) -> None:
    now = [NOW]
    lease = timedelta(seconds=0.4)
    with sync_lock(store, "host:1", lambda: now[0], lease=lease):
        now[0] = NOW + timedelta(seconds=0.3)
        time.sleep(0.35)  # a renewal every quarter lease has moved the expiry on
        now[0] = NOW + timedelta(seconds=0.5)  # past the first lease, not the renewed one
        with pytest.raises(SyncLockedError), sync_lock(store, "host:2", lambda: now[0]):
            pass


def test_a_waiting_holder_gets_the_lock_when_it_is_released(store: Store) -> None:
    release = threading.Event()

    def hold() -> None:
        with sync_lock(store, "host:1", at(NOW)):
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.1)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    with sync_lock(store, "host:2", at(NOW), wait_s=5):
        waited = time.monotonic() - started
    holder.join()
    assert 0.1 < waited < 3


def test_lock_holds_across_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spm.db'}"
    code = (
        "import sys\nfrom datetime import UTC, datetime\n"
        "from connector.store.state import Store\nfrom connector.errors import SyncLockedError\n"
        "from connector.sync.lease import sync_lock\n"
        f"s = Store.open({url!r})\n"
        "try:\n    with sync_lock(s, 'other:2', lambda: datetime.now(UTC)): sys.exit(0)\n"
        "except SyncLockedError: sys.exit(7)\n"
    )
    with Store.open(url) as store, sync_lock(store, "here:1", lambda: datetime.now(UTC)):
        held = subprocess.run([sys.executable, "-c", code], check=False)
    free = subprocess.run([sys.executable, "-c", code], check=False)
    assert (held.returncode, free.returncode) == (7, 0)


def test_bad_url_is_a_clear_error_without_the_password() -> None:
    from connector.errors import ConnectorError

    with pytest.raises(ConnectorError) as caught:
        Store.open("postgresql+psycopg://spm:hunter2@127.0.0.1:1/none")
    assert "hunter2" not in str(caught.value)
    assert "cannot open" in str(caught.value)


def test_team_history_quotas_and_leads_round_trip(store: Store) -> None:
    from connector.core.models import CrmQuota, CrmUser, Lead

    def user(manager: str | None, team: str | None = None) -> CrmUser:
        return CrmUser("u1", "Dana", "d@x.example", True, manager_id=manager, team_id=team)

    store.users.upsert([user("m1")], seen_on=date(2026, 3, 1))
    store.users.upsert([user("m1")], seen_on=date(2026, 3, 2))  # no move: no new row
    store.users.upsert([user("m2", "t9")], seen_on=date(2026, 4, 10))
    assert store.users.team_history() == {
        "u1": [(None, "m1", None), (date(2026, 4, 10), "m2", "t9")]
    }
    assert store.users.all()[0].team_id == "t9"
    quotas = [
        CrmQuota("u1", date(2026, 1, 1), Decimal("50000.00")),
        CrmQuota("u1", date(2026, 1, 1), None, Decimal(4)),
    ]
    store.quotas.replace(quotas)
    store.quotas.replace(quotas)  # replaced, not added to
    assert store.quotas.of() == quotas
    leads = [Lead("l1", "u1", date(2026, 1, 3), True), Lead("l2", "u1", date(2026, 2, 3), False)]
    store.leads.replace(leads)
    assert store.leads.of() == leads
    store.leads.replace(leads[:1])
    assert store.leads.of() == leads[:1]


def test_writes_of_several_repositories_in_one_transaction_commit_or_fail_together(
    store: Store,
) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.transaction():
        store.owed.add("rep", ["r1"])
        store.cursors.set("deals_modified", "2026-03-01T00:00:00+00:00")
        assert store.owed.of("rep") == {"r1"}  # read inside: what this transaction wrote
        raise Boom
    assert store.owed.of("rep") == set()
    assert store.cursors.get("deals_modified") is None
    with store.transaction():
        store.owed.add("rep", ["r1"])
        store.cursors.set("deals_modified", "2026-03-01T00:00:00+00:00")
    assert store.owed.of("rep") == {"r1"}
    assert store.cursors.get("deals_modified") == "2026-03-01T00:00:00+00:00"


def test_a_reader_never_creates_a_store_where_there_is_none(url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"there is no store at .*run `spm-connector sync` first"):
        Store.open(url, existing=True)
    assert not (tmp_path / "spm.db").exists()
    Store.open(url).close()  # a sync makes it
    with Store.open(url, existing=True) as store:
        assert store.runs.recent() == []
