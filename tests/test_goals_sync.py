"""The engine with goals: CRM quotas, team moves and leads change what it computes, and a
run that dies right after storing them is repaired by the next run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connector.core.models import CrmQuota, Lead, Outcome
from connector.core.periods import PeriodKind
from connector.store.state import Store
from connector.sync.engine import SyncEngine
from connector.sync.run import SyncOptions, SyncSettings
from tests.engine_helpers import plan
from tests.test_sync_engine import MemoryCrm

AS_OF = date(2026, 3, 31)


class GoalCrm(MemoryCrm):
    """The memory CRM with quotas, leads, a manager, and API calls counted per read."""

    def __init__(self) -> None:
        super().__init__()
        self.users["m"] = replace(self.users["u1"], id="m", name="Morgan", email="m@x.example")
        for rep in ("u1", "u2"):
            self.users[rep] = replace(self.users[rep], manager_id="m")
        self.quotas = [CrmQuota("u1", date(2026, 3, 1), Decimal(20000))]
        self.lead_rows = [Lead("l1", "u1", date(2026, 3, 2), True)]
        self.lead_reads = 0

    def read_quotas(self) -> list[CrmQuota]:
        return list(self.quotas)

    def read_leads(self, since: date) -> list[Lead]:
        self.lead_reads += 1
        return [lead for lead in self.lead_rows if lead.created_date >= since]


@pytest.fixture
def crm() -> GoalCrm:
    memory = GoalCrm()
    memory.put("d1", "u1", "6000", date(2026, 3, 10), Outcome.WON)
    memory.put("d2", "u2", "8000", date(2026, 3, 20), Outcome.WON)
    return memory


@pytest.fixture
def store(tmp_path: Any) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as opened:
        yield opened


def engine(crm: GoalCrm, store: Store) -> SyncEngine:
    settings = SyncSettings(
        plans=(
            plan(
                members=["u1", "u2", "m"],
                quota_source="crm",
                goals=[{"metric": "revenue", "team": True, "target": "20000"}],
            ),
        ),
        currency="USD",
        period_kind=PeriodKind.MONTH,
        timezone=ZoneInfo("UTC"),
        teams="crm",
        lead_to_sale=True,
    )
    return SyncEngine(settings, crm, store, clock=lambda: datetime(2026, 3, 31, 12, tzinfo=UTC))


def values(crm: GoalCrm, rep: str) -> dict[str, str | None]:
    return crm.values.get(("rep", rep), {})


class Died(Exception):
    """The process dying right after a commit: nothing after it runs."""


def die_at_statements(monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise Died

    monkeypatch.setattr(store, "commit_statements", boom)


def test_a_changed_crm_quota_recomputes_even_after_a_death(
    crm: GoalCrm, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine(crm, store).run(SyncOptions(as_of=AS_OF))
    assert values(crm, "u1")["quota"] == "20000.00"
    assert values(crm, "u2")["quota"] == "10000.00"  # no CRM quota: the plan's, the fallback
    crm.quotas = [CrmQuota("u1", date(2026, 3, 1), Decimal(30000))]
    with monkeypatch.context() as patch:
        die_at_statements(patch, store)
        with pytest.raises(Died):
            engine(crm, store).run(SyncOptions(as_of=AS_OF))
    # The new quota was stored before the death; the recomputation it owes was too.
    assert store.quotas.of() == crm.quotas
    summary = engine(crm, store).run(SyncOptions(as_of=AS_OF))
    assert values(crm, "u1")["quota"] == "30000.00"
    assert values(crm, "u1")["attainment"] == "0.2000"  # 6,000 of 30,000
    assert summary.quotas_read == 1


def test_a_team_move_recomputes_both_teams_even_after_a_death(
    crm: GoalCrm, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine(crm, store).run(SyncOptions(as_of=AS_OF))
    # m leads u1 and u2: 6,000 + 8,000 of 20,000.
    assert values(crm, "m")["team_attainment"] == "0.7000"
    assert values(crm, "u2")["team_attainment"] == "0.7000"
    crm.users["u2"] = replace(crm.users["u2"], manager_id=None)  # u2 leaves m's team
    with monkeypatch.context() as patch:
        die_at_statements(patch, store)
        with pytest.raises(Died):
            engine(crm, store).run(SyncOptions(as_of=AS_OF))
    engine(crm, store).run(SyncOptions(as_of=AS_OF))
    # Seen on 31 March: u2's March deal (closed on the 20th) still counts for m's team,
    # but on the period's last day u2 is on no team, so shows no team goal.
    assert values(crm, "m")["team_attainment"] == "0.7000"
    assert values(crm, "u2")["team_attainment"] is None
    history = store.users.team_history()
    assert history["u2"] == [(None, "m", None), (date(2026, 3, 31), None, None)]


def test_leads_are_read_counted_and_drive_the_ratio(crm: GoalCrm, store: Store) -> None:
    summary = engine(crm, store).run(SyncOptions(as_of=AS_OF))
    assert values(crm, "u1")["lead_to_sale"] == "1.0000"
    assert values(crm, "u2").get("lead_to_sale") is None  # no leads this period
    assert summary.leads_read == 1 and crm.lead_reads == 1
    assert summary.as_json()["leads_read"] == 1
    crm.lead_rows.append(Lead("l2", "u1", date(2026, 3, 5), False))
    engine(crm, store).run(SyncOptions(as_of=AS_OF))
    assert values(crm, "u1")["lead_to_sale"] == "0.5000"


def test_a_new_day_moves_every_reps_pace(crm: GoalCrm, store: Store) -> None:
    engine(crm, store).run(SyncOptions(as_of=date(2026, 3, 15)))
    # u2: 8,000 of 10,000 closed on the 20th counts in March; on the 15th, 15/31 gone.
    assert values(crm, "u2")["pace"] == "1.6533"
    again = engine(crm, store).run(SyncOptions(as_of=date(2026, 3, 15)))
    assert again.fields_written == 0  # the same day: nothing moved
    later = engine(crm, store).run(SyncOptions(as_of=date(2026, 3, 16)))
    # Nothing changed in the CRM, yet the day did: 0.8 ÷ 16/31 = 1.5500.
    assert values(crm, "u2")["pace"] == "1.5500"
    assert later.reps_recomputed == 3
