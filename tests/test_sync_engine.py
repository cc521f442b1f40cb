"""The sync engine's logic against an in-memory CRM that speaks the adapter protocol.

The adapters themselves are tested over HTTP against the sandbox; here the
CRM is a plain object, so each rule of the engine (incremental pulls, diffs,
reversals, retries of failed writes, dry runs) can be checked directly.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connector.core.fields import FieldSpec, RecordKind
from connector.core.models import (
    ApiUsage,
    CrmDeal,
    CrmQuota,
    CrmSplit,
    CrmUser,
    FieldStatus,
    Lead,
    Outcome,
    RecordUpdate,
    WriteResult,
)
from connector.core.periods import PeriodKind
from connector.core.statements import calculate
from connector.errors import ConfigError
from connector.store.state import Store
from connector.sync.engine import SyncEngine
from connector.sync.run import ChangeSet, SyncOptions, SyncSettings

from .engine_helpers import deal, plan

AS_OF = date(2026, 3, 31)


class MemoryCrm:
    """Users, deals and our fields in dicts; every change moves a modstamp."""

    name = "memory"
    deal_columns = frozenset({"Name"})

    def __init__(self) -> None:
        self.clock = datetime(2026, 3, 1, tzinfo=UTC)
        self.users = {
            "u1": CrmUser("u1", "Dana", "dana@acme.example", True),
            "u2": CrmUser("u2", "Lee", "lee@acme.example", True),
        }
        self.deals: dict[str, CrmDeal] = {}
        self.splits: dict[str, list[CrmSplit]] = {}
        self.values: dict[tuple[str, str], dict[str, str | None]] = {}
        self.writes: list[tuple[RecordKind, list[str]]] = []
        self.reads: list[str] = []
        self.refuse: set[str] = set()

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def put(self, deal_id: str, owner: str, amount: str, close: date, outcome: Outcome) -> None:
        self.deals[deal_id] = CrmDeal(
            id=deal_id,
            owner_id=owner,
            amount=Decimal(amount),
            close_date=close,
            outcome=outcome,
            modified_at=self.tick(),
            type="New Business",
        )

    def change(self, deal_id: str, **changes: object) -> None:
        self.deals[deal_id] = replace(self.deals[deal_id], modified_at=self.tick(), **changes)

    # -- the protocol ---------------------------------------------------------------------

    account = "memory-1"

    def account_id(self) -> str:
        return self.account

    def read_users(
        self, include_fields: bool = True, *, refresh: bool = False
    ) -> Iterator[CrmUser]:
        self.reads.append("users")
        for user in self.users.values():
            yield replace(user, fields=dict(self.values.get(("rep", user.id), {})))

    def read_deals_by_id(self, deal_ids: Collection[str]) -> Iterator[CrmDeal]:
        self.reads.append("deals by id")
        for deal_id in sorted(deal_ids):
            if deal_id in self.deals:
                crm_deal = self.deals[deal_id]
                yield replace(crm_deal, fields=dict(self.values.get(("deal", deal_id), {})))

    def read_deals(self, since: datetime | None) -> Iterator[CrmDeal]:
        for crm_deal in sorted(self.deals.values(), key=lambda d: d.modified_at):
            if since is None or crm_deal.modified_at >= since:
                yield replace(crm_deal, fields=dict(self.values.get(("deal", crm_deal.id), {})))

    def read_splits(self, deal_ids: Collection[str]) -> Iterator[CrmSplit] | None:
        return iter([s for deal_id in deal_ids for s in self.splits.get(deal_id, [])])

    def read_quotas(self) -> list[CrmQuota]:
        return []

    def read_leads(self, since: date) -> list[Lead]:
        return []

    def ensure_fields(
        self,
        specs: Sequence[FieldSpec],
        *,
        dry_run: bool,
        assign_to: Collection[str] = (),
        readers: Collection[str] | None = None,
        layouts: Sequence[str] | None = None,
        skip_layouts: bool = False,
    ) -> list[FieldStatus]:
        return []

    def write(self, record: RecordKind, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        self.writes.append((record, [u.record_id for u in updates]))
        results = []
        for update in updates:
            if update.record_id in self.refuse:
                results.append(
                    WriteResult(
                        update.record_id, False, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "blocked"
                    )
                )
                continue
            stored = self.values.setdefault((record.value, update.record_id), {})
            stored.update({k: None if v is None else str(v) for k, v in update.values.items()})
            if record is RecordKind.DEAL:  # our own write moves the CRM's stamp
                self.change(update.record_id)
            results.append(WriteResult(update.record_id, True))
        return results

    def usage(self) -> ApiUsage:
        return ApiUsage(calls=len(self.writes))


@pytest.fixture
def crm() -> MemoryCrm:
    memory = MemoryCrm()
    memory.put("d1", "u1", "6000", date(2026, 1, 10), Outcome.WON)
    memory.put("d2", "u1", "8000", date(2026, 1, 20), Outcome.WON)
    memory.put("d3", "u2", "3000", date(2026, 2, 5), Outcome.WON)
    memory.put("d4", "u2", "9000", date(2026, 3, 9), Outcome.OPEN)
    return memory


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as opened:
        yield opened


def engine_for(
    crm: MemoryCrm, store: Store, members: Sequence[str] = ("u1", "lee@acme.example")
) -> SyncEngine:
    settings = SyncSettings(
        plans=(plan(members=list(members), clawback={"window_days": 90}),),
        currency="USD",
        period_kind=PeriodKind.MONTH,
        timezone=ZoneInfo("UTC"),
    )
    return SyncEngine(settings, crm, store, clock=lambda: datetime(2026, 3, 31, 12, tzinfo=UTC))


def sync(crm: MemoryCrm, store: Store, **options: object) -> object:
    return engine_for(crm, store).run(SyncOptions(as_of=AS_OF, **options))  # type: ignore[arg-type]


def test_full_sync_writes_what_calc_computes(crm: MemoryCrm, store: Store) -> None:
    summary = sync(crm, store)
    assert summary.failures == []  # type: ignore[attr-defined]
    # The same deals through the engine directly.
    deals = [
        deal("d1", "6000", date(2026, 1, 10), owner="u1"),
        deal("d2", "8000", date(2026, 1, 20), owner="u1"),
        deal("d3", "3000", date(2026, 2, 5), owner="u2"),
    ]
    expected = calculate(
        [plan(members=["u1", "u2"], clawback={"window_days": 90})],
        [],
        deals,
        period_kind=PeriodKind.MONTH,
        as_of=AS_OF,
    )
    d2_line = next(line for s in expected.statements for line in s.lines if line.deal_id == "d2")
    assert crm.values["deal", "d2"]["commission"] == f"{d2_line.amount:.2f}" == "1000.00"
    assert crm.values["deal", "d2"]["commission_period"] == "2026-01"
    # Open: only what it would pay if it closed today (9,000 of a 10,000 quota at 10 %).
    assert crm.values["deal", "d4"] == {"estimated_commission": "900.00"}
    march_u1 = next(s for s in expected.statements if s.rep_id == "u1" and s.period == "2026-03")
    assert crm.values["rep", "u1"]["payout"] == f"{march_u1.payout:.2f}"
    # January: 14,000 booked on a 10,000 quota = 1,000 + 4,000 × 15 % = 1,600; nothing since.
    assert crm.values["rep", "u1"]["payout_ytd"] == "1600.00"
    assert crm.values["rep", "u1"]["updated_at"] == "2026-03-31T12:00:00Z"


def test_second_sync_with_nothing_new_writes_nothing(crm: MemoryCrm, store: Store) -> None:
    sync(crm, store)
    crm.writes.clear()
    summary = sync(crm, store)
    assert crm.writes == []
    assert summary.fields_written == 0  # type: ignore[attr-defined]


def test_incremental_sync_writes_only_what_changed(crm: MemoryCrm, store: Store) -> None:
    sync(crm, store)
    crm.writes.clear()
    crm.change("d3", amount=Decimal("4000"))  # u2's only won deal
    summary = sync(crm, store)
    written = {record: ids for record, ids in crm.writes}
    assert written == {RecordKind.DEAL: ["d3"], RecordKind.REP: ["u2"]}
    assert crm.values["deal", "d3"]["commission"] == "400.00"
    assert summary.deals_changed == 1  # type: ignore[attr-defined]


def test_a_won_deal_lost_later_is_clawed_back(crm: MemoryCrm, store: Store) -> None:
    sync(crm, store)
    crm.clock = datetime(2026, 3, 12, 9, tzinfo=UTC)
    crm.change("d1", outcome=Outcome.LOST)
    sync(crm, store)
    # d1 earned 600.00 in January; it is reversed on 12 March, inside the window.
    assert crm.values["deal", "d1"]["clawback"] == "-600.00"
    snapshot = store.deals.by_id(["d1"])["d1"]
    assert (snapshot.status.value, snapshot.cancel_date) == ("cancelled", date(2026, 3, 12))


def test_failed_writes_stay_pending_and_are_retried(crm: MemoryCrm, store: Store) -> None:
    crm.refuse = {"d2"}
    summary = sync(crm, store)
    assert [(f.record_id, f.code) for f in summary.failures] == [  # type: ignore[attr-defined]
        ("d2", "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    ]
    assert summary.exit_code == 1  # type: ignore[attr-defined]
    crm.refuse = set()
    crm.writes.clear()
    sync(crm, store)  # nothing about d2 changed, yet its values are written now
    assert crm.writes == [(RecordKind.DEAL, ["d2"])]
    assert crm.values["deal", "d2"]["commission"] == "1000.00"


def test_dry_run_writes_nothing_anywhere(crm: MemoryCrm, store: Store) -> None:
    summary = sync(crm, store, dry_run=True)
    assert crm.writes == []
    assert store.cursors.get("deals_modified") is None
    planned = {(c.record_id, c.key): c.after for c in summary.planned}  # type: ignore[attr-defined]
    assert planned["d2", "commission"] == "1000.00"
    sync(crm, store)  # the real run after a dry run still finds every change
    assert crm.values["deal", "d2"]["commission"] == "1000.00"


def test_unknown_member_email_is_a_config_error(crm: MemoryCrm, store: Store) -> None:
    engine = engine_for(crm, store, members=("u1", "nobody@acme.example"))
    with pytest.raises(ConfigError, match=r"nobody@acme\.example matches no CRM user"):
        engine.run(SyncOptions(as_of=AS_OF))


def test_estimates_follow_the_deal_and_the_reps_month_through_the_worker_door(
    crm: MemoryCrm, store: Store
) -> None:
    """A changed open deal rewrites its own estimate; a won deal that moves the rep's tier
    position rewrites the rep's other open estimates, and nothing else."""
    crm.put("d5", "u2", "4000", date(2026, 3, 20), Outcome.OPEN)
    crm.put("d6", "u1", "1000", date(2026, 3, 25), Outcome.OPEN)
    sync(crm, store)
    assert crm.values["deal", "d5"] == {"estimated_commission": "400.00"}
    engine = engine_for(crm, store)
    options = SyncOptions(as_of=AS_OF)

    crm.writes.clear()
    crm.change("d4", amount=Decimal("9500"))
    engine.process(ChangeSet.of(deals=["d4"]), options)
    assert crm.values["deal", "d4"]["estimated_commission"] == "950.00"
    assert [ids for record, ids in crm.writes if record is RecordKind.DEAL] == [["d4"]]

    # u2 wins 8,000 in March: 2,000 left at 10 %, then 15 % to 15,000, then 20 %.
    # d4 and d5 move; u1's d6 does not.
    crm.writes.clear()
    crm.put("d7", "u2", "8000", date(2026, 3, 28), Outcome.WON)
    engine.process(ChangeSet.of(deals=["d7"]), options)
    deal_writes = sorted(i for record, ids in crm.writes if record is RecordKind.DEAL for i in ids)
    assert deal_writes == ["d4", "d5", "d7"]
    # d4: 2,000 × 10 % + 5,000 × 15 % + 2,500 × 20 % = 1,450;
    # d5: 2,000 × 10 % + 2,000 × 15 % = 500.
    assert crm.values["deal", "d4"]["estimated_commission"] == "1450.00"
    assert crm.values["deal", "d5"]["estimated_commission"] == "500.00"
    assert crm.values["deal", "d7"].get("estimated_commission") is None
    assert crm.values["deal", "d6"]["estimated_commission"] == "100.00"

    # d5 closes today as estimated: it earns exactly its last estimate.
    crm.change("d5", outcome=Outcome.WON, close_date=AS_OF)
    engine.process(ChangeSet.of(deals=["d5"]), options)
    assert crm.values["deal", "d5"]["commission"] == "500.00"
    assert crm.values["deal", "d5"]["estimated_commission"] is None  # cleared
