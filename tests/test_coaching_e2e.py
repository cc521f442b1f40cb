"""Coaching plays end to end on both sandboxes: one task per rep, play and period for the
manager, the training module's task for the rep, a note when the play clears, completion
and a manager's words read back from the CRM."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import yaml

from connector.core.coaching import Figure
from connector.store.coaching import CLEARED, DONE, MODULE, OPEN, PLAY
from tests.fixtures.crm_pair import Crm

AS_OF = "2026-11-20"
PLAY_CONFIG: dict[str, Any] = {
    "play": "below_plan",
    "title": "Below plan",
    "figure": "attainment",
    "below": "0.9",
    "after": "0.4",
    "talking_points": ["Which two deals can close this month?", "Where is the pipeline thin?"],
    "assign": "pipeline",
}
MODULE_CONFIG = {
    "id": "pipeline",
    "title": "Building pipeline",
    "link": "https://learn.example.com/pipeline",
    "addresses": "attainment",
    "due_days": 14,
}


def with_coaching(crm: Crm, manager: str, members: list[str]) -> None:
    config = yaml.safe_load(crm.config.read_text())
    config["teams"] = [{"id": "field", "manager": manager, "members": members}]
    config["coaching"] = [PLAY_CONFIG]
    config["training"] = [MODULE_CONFIG]
    crm.config.write_text(yaml.safe_dump(config, sort_keys=False))


def user_ids(crm: Crm) -> list[str]:
    sandbox: Any = crm.sandbox
    if crm.name == "salesforce":
        return [u["Id"] for u in sandbox.users()]
    return [o["id"] for o in sandbox.owners()]


def test_plays_open_one_task_clear_with_a_note_and_read_back(crm: Crm) -> None:
    sandbox: Any = crm.sandbox
    manager, *reps = user_ids(crm)
    with_coaching(crm, manager, reps)
    crm.ok("install")
    crm.ok("sync", "--as-of", AS_OF)

    with crm.store() as store:
        tasks = store.coaching.of()
        november = {s.rep_id: s for s in store.statements.in_period("2026-11")}
    below = {
        rep for rep in reps if (a := november[rep].attainment) is not None and a < Decimal("0.9")
    }
    assert below, "the seeded org should have reps below 90 % in November"
    plays = {t.rep_id: t for t in tasks if t.kind == PLAY}
    assert set(plays) == below
    assert {t.rep_id for t in tasks if t.kind == MODULE} == below
    in_crm = sandbox.tasks()
    assert len(in_crm) == 2 * len(below)
    for task in plays.values():
        assert task.assignee_id == manager and task.state == OPEN and task.crm_id
        crm_task = next(t for t in in_crm if t["id"] == task.crm_id)
        assert crm_task["owner"] == manager
        assert crm_task["subject"].startswith("Coaching: Below plan - ")
        assert "Which two deals can close this month?" in crm_task["body"]
        assert "Building pipeline (https://learn.example.com/pipeline)" in crm_task["body"]
    modules = [t for t in in_crm if t["subject"].startswith("Training: Building pipeline")]
    assert sorted(t["owner"] for t in modules) == sorted(below)

    # A second sync opens nothing more.
    crm.ok("sync", "--as-of", AS_OF)
    assert len(sandbox.tasks()) == 2 * len(below)

    # One rep books enough to clear the play: the task gets a note, and is not deleted.
    rep = sorted(below)[0]
    sandbox.create_deal(rep, Decimal("500000"), date(2026, 11, 18))
    crm.ok("sync", "--as-of", AS_OF)
    with crm.store() as store:
        task = next(t for t in store.coaching.of([rep]) if t.kind == PLAY)
    assert task.state == CLEARED
    crm_task = next(t for t in sandbox.tasks() if t["id"] == task.crm_id)
    assert "2026-11-20: cleared - attainment is now" in crm_task["body"]
    assert len(sandbox.tasks()) == 2 * len(below)

    # The manager writes on another rep's task; that rep completes the module.
    other = sorted(below)[1] if len(below) > 1 else rep
    with crm.store() as store:
        others = {t.kind: t for t in store.coaching.of([other])}
    sandbox.write_on_task(others[PLAY].crm_id, "Let's review the Acme deal on Monday.")
    sandbox.complete_task(others[MODULE].crm_id)
    crm.ok("sync", "--as-of", AS_OF)
    with crm.store() as store:
        after = {t.kind: t for t in store.coaching.of([other])}
        notes = store.notes.of(other)
    assert after[MODULE].state == DONE and after[MODULE].closed_on == AS_OF
    assert after[MODULE].figure == Figure.ATTAINMENT.value and after[MODULE].before is not None
    assert [n.body for n in notes] == ["Let's review the Acme deal on Monday."]
    assert notes[0].author.endswith("(CRM task)")
    # Read once: a further sync adds no second note.
    crm.ok("sync", "--as-of", AS_OF)
    with crm.store() as store:
        assert len(store.notes.of(other)) == 1
