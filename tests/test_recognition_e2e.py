"""Recognition end to end on both sandboxes: awards given once, across re-syncs and
worker passes, and every rep's latest-award and award-count fields as the store has them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from connector.config import load_config, load_secrets
from connector.connect import adapter_for, sync_settings
from connector.core.periods import PeriodKind
from connector.core.recognition import Recognition, recognize
from connector.sync.engine import SyncEngine
from connector.sync.run import ChangeSet, SyncOptions
from tests.fixtures.crm_pair import Crm
from webhooks.app import create_app

RULES: list[dict[str, Any]] = [
    {"award": "first_win"},
    {"award": "personal_best"},
    {"award": "streak", "periods": 2},
    {"award": "top_of_period", "title": "Rep of the month"},
]


def with_recognition(crm: Crm) -> None:
    config = yaml.safe_load(crm.config.read_text())
    config["recognition"] = RULES
    crm.config.write_text(yaml.safe_dump(config, sort_keys=False))


def field(crm: Crm, rep_id: str, key: str) -> Any:
    name = "_".join(part.capitalize() for part in key.split("_"))
    return crm.rep_field(rep_id, name)


def test_awards_are_given_once_and_shown_on_every_reps_record(crm: Crm) -> None:
    with_recognition(crm)
    crm.ok("install")
    crm.ok("sync")
    today = datetime.now(UTC).date()
    with crm.store() as store:
        held = store.awards.of()
        summary = store.awards.summary()
        statements = [s for rep in {s.rep_id for s in store.statements.in_period(
            f"{today:%Y-%m}")} for s in store.statements.of_rep(rep)]  # fmt: skip
    rules = [Recognition.model_validate(rule) for rule in RULES]
    expected = recognize(statements, rules, today, PeriodKind.MONTH)
    assert {(a.rep_id, a.award, a.key) for a in expected} == {
        (g.rep_id, g.award, g.key) for g in held
    }
    assert {g.award for g in held} >= {"first_win", "personal_best", "top_of_period"}
    assert any(g.title == "Rep of the month" for g in held)
    for rep_id, (count, latest) in summary.items():
        assert str(field(crm, rep_id, "latest_award")) == latest.text()
        assert int(float(str(field(crm, rep_id, "award_count")))) == count

    # Again: the same awards, nothing written.
    again = crm.ok("sync")
    assert "written: 0 fields" in again.output, again.output
    # The worker door, twice over (a webhook delivered twice): nothing new.
    with crm.store() as store:
        settings = load_config(crm.config)
        adapter = adapter_for(settings, load_secrets(crm.env, crm.config.parent),
                              cache=store.cache)  # fmt: skip
        engine = SyncEngine(sync_settings(settings), adapter, store,
                            clock=lambda: datetime.now(UTC))  # fmt: skip
        deal_id = statements[0].lines[0].deal_id if statements[0].lines else None
        change = ChangeSet.of(deals=[deal_id] if deal_id else [])
        for _ in range(2):
            assert engine.process(change, SyncOptions(as_of=today)).exit_code == 0
        assert [(g.rep_id, g.award, g.key, g.given_at) for g in store.awards.of()] == [
            (g.rep_id, g.award, g.key, g.given_at) for g in held
        ]

    # The leaderboard and the rep's statement show them.
    app = create_app(load_config(crm.config), environ={"SPM_ADMIN_TOKEN": "admin-token-123456"})
    client = app.test_client()
    headers = {"Authorization": "Bearer admin-token-123456"}
    page = client.get("/reports", headers=headers).get_data(as_text=True)
    rep_id, (count, latest) = next(iter(sorted(summary.items())))
    assert f'data-awards="{rep_id}"' in page and f"{count} · {latest.title}" in page
    mine = client.get(f"/reports/statements/{rep_id}", headers=headers).get_data(as_text=True)
    assert "<h2>Awards</h2>" in mine and latest.said in mine
    shown = crm.ok("statement", rep_id).output
    assert "Awards" in shown and latest.title in shown


def test_a_sync_killed_right_after_giving_awards_is_finished_by_the_next(crm: Crm) -> None:
    with_recognition(crm)
    crm.ok("install")
    killed = subprocess.run(
        [sys.executable, "-m", "tests.crash_awards", "--config", str(crm.config), "sync"],
        cwd=Path(__file__).resolve().parents[1], env={**os.environ, **crm.env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert killed.returncode == 137, killed.stderr
    with crm.store() as store:
        given = [(g.rep_id, g.award, g.key, g.given_at) for g in store.awards.of()]
    assert given  # stored before the kill; no field written yet
    crm.ok("sync")
    with crm.store() as store:
        # Nothing given twice, and every rep's fields written by the next run.
        assert [(g.rep_id, g.award, g.key, g.given_at) for g in store.awards.of()] == given
        summary = store.awards.summary()
    for rep_id, (count, latest) in summary.items():
        assert str(field(crm, rep_id, "latest_award")) == latest.text()
        assert int(float(str(field(crm, rep_id, "award_count")))) == count
