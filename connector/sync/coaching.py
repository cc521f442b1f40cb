"""Coaching plays and training modules in an engine pass: decide, then open in the CRM.

Two steps of every pass (sync and worker) that has ``coaching:`` plays:

- :func:`decide`, before the statements commit: read back the tasks the CRM
  holds for the computed reps (completed, deleted, and what a manager wrote on
  them, kept as a feedback note), then judge each play on each computed rep's
  figures. A play that holds and has no task this period gets one (for the
  rep's manager; its module, if it assigns one and the rep has none open, gets a
  task for the rep); a play that stopped holding is cleared, and one that holds
  again after clearing comes back, each with a note owed to its CRM task.
- :func:`carry_out`, after the field writes: open the tasks the store decided
  and add the notes owed.

Both are idempotent: the store keeps one task per (rep, play, period), and marks
a create as sent before the call, so a pass killed after the CRM took the
create but before its id was kept finds the task (by owner and subject) rather
than opening a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

from connector.adapters.base import CrmAdapter, TaskBoard
from connector.core.coaching import (
    Call,
    Figure,
    TrainingModule,
    back_note,
    calls,
    cleared_note,
    figures_of,
    module_body,
    module_figure,
    module_subject,
    play_body,
    play_subject,
)
from connector.core.fields import RecordKind
from connector.core.goals import team_spells
from connector.core.models import CrmUser, Deal, Statement, TaskDraft
from connector.core.overrides import reporting_lines
from connector.core.periods import label, period_of
from connector.core.snapshots import credited, rep_of
from connector.errors import CrmAuthError, CrmError, CrmLimitError, CrmUnavailableError
from connector.store.coaching import (
    CLEARED,
    DONE,
    GONE,
    MODULE,
    OPEN,
    PLAY,
    CoachingTask,
)
from connector.store.notes import MAX_NOTE
from connector.store.state import Store
from connector.sync.run import Failure, Run, SyncSettings


def decide(
    run: Run,
    adapter: CrmAdapter,
    settings: SyncSettings,
    statements: Sequence[Statement],
    deals: Sequence[Deal],
    users: Mapping[str, CrmUser],
    scheduled: bool,
) -> None:
    """Read back the tasks the CRM holds (a scheduled sync: all; a worker pass: the
    computed reps'), then open, clear or bring back the computed reps' plays."""
    store, as_of, kind = run.store, run.options.as_of, settings.period_kind
    reps = {s.rep_id for s in statements}
    if scheduled or reps:
        read_back(run, adapter.tasks, store.coaching.in_crm(None if scheduled else reps), users)
    if not reps:
        return
    period = label(period_of(as_of, kind), kind)
    by_rep: dict[str, list[Statement]] = {}
    for statement in statements:
        by_rep.setdefault(statement.rep_id, []).append(statement)
    credited_to: dict[str, list[Deal]] = {}
    for deal in deals:
        for rep_id in credited(deal):
            credited_to.setdefault(rep_id, []).append(deal)
    peers = _peers(store, statements, period)
    windows = {play.days for play in settings.coaching if play.figure is Figure.WIN_RATE} | {90}
    managers = _managers(settings, users, as_of)
    modules = {module.id: module for module in settings.training}
    held = {task.key: task for task in store.coaching.of(reps)}
    assigned: dict[str, list[CoachingTask]] = {}
    for held_task in held.values():
        if held_task.kind == MODULE and held_task.state in (OPEN, DONE):
            assigned.setdefault(held_task.rep_id, []).append(held_task)
    new: list[CoachingTask] = []
    measured: list[tuple[tuple[str, str, str], str | None]] = []
    unmanaged: set[str] = set()
    for rep_id in sorted(reps):
        history = by_rep[rep_id]
        current = [s for s in history if s.period == period]
        plans = {s.plan_id for s in current}
        figures = figures_of(
            rep_id, current, history, credited_to.get(rep_id, ()),
            [s for s in peers if s.plan_id in plans], (as_of, kind), windows,
        )  # fmt: skip
        if figures is None:
            continue
        name = users[rep_id].name if rep_id in users else rep_id
        holding = {call.play.play: call for call in calls(settings.coaching, figures)}
        for play in settings.coaching:
            key = (rep_id, play.play, period)
            task, call = held.get(key), holding.get(play.play)
            if call is not None and task is None:
                manager = managers.get(rep_id)
                if manager is None:
                    # The head of the line has no one to coach them: said only of others.
                    if rep_id not in managers.values():
                        unmanaged.add(f"{name} ({rep_id})")
                    continue
                module = modules.get(play.assign) if play.assign else None
                new.append(_play_task(call, name, manager, module, as_of))
                if module is not None and not _assigned(held, new, rep_id, module.id):
                    new.append(_module_task(call, module, as_of))
            elif call is not None and task is not None and task.state == CLEARED:
                store.coaching.set_state(key, OPEN, note=back_note(play, call.value, as_of),
                                         on=as_of)  # fmt: skip
            elif call is None and task is not None and task.state == OPEN:
                value = figures.value(play)
                store.coaching.set_state(key, CLEARED, note=cleared_note(play, value, as_of),
                                         on=as_of)  # fmt: skip
        for held_task in assigned.get(rep_id, ()):
            module = modules.get(held_task.module or "")
            if module is not None:
                measured.append((held_task.key, _text(module_figure(module, figures))))
    if unmanaged:
        run.summary.warnings.append(
            f"coaching: plays hold for {', '.join(sorted(unmanaged))}, but no manager is known "
            "to give their tasks to (the CRM's manager, a listed team's, or team_managers:); "
            "they open once one is"
        )
    store.coaching.open(new)
    store.coaching.measured(measured)


def carry_out(run: Run, adapter: CrmAdapter) -> None:
    """Open in the CRM the tasks decided, and add the notes owed to tasks it holds.

    A task the CRM refuses (an inactive owner) is reported and tried again next pass;
    a refused permission (HubSpot's contacts scope) stops the step with one failure.
    """
    store, board = run.store, adapter.tasks
    try:
        for task in store.coaching.to_open():
            _open(run, board, task)
        owed = store.coaching.with_notes_owed()
        current = {t.id: t for t in board.read([t.crm_id for t in owed if t.crm_id])}
        for task in owed:
            crm = current.get(task.crm_id or "")
            if crm is None:
                store.coaching.read_back(task.key, state=GONE, body=task.body, on=run.options.as_of)
                continue
            body = crm.body
            if task.note_owed and task.note_owed not in body:
                body = f"{body.rstrip()}\n\n{task.note_owed}"
                board.update_body(crm.id, body)
            store.coaching.noted(task.key, body)
    except CrmAuthError as error:
        run.summary.failures.append(
            Failure(RecordKind.REP, "(tasks)", error.code or "REFUSED", _refused(error))
        )


def _open(run: Run, board: TaskBoard, task: CoachingTask) -> None:
    store = run.store
    draft = TaskDraft(task.assignee_id, task.subject, task.body, date.fromisoformat(task.due))
    try:
        crm_id = None
        if task.attempted_at is not None:
            # A create was sent by a pass that did not live to keep the answer.
            sent = datetime.fromisoformat(task.attempted_at)
            if run.started - sent < timedelta(seconds=board.settle_s):
                return  # the CRM's search may not show it yet: the next pass looks
            crm_id = board.find(draft)
        if crm_id is None:
            store.coaching.sending(task.key, run.started)
            crm_id = board.create(draft)
        store.coaching.opened(task.key, crm_id)
    except (CrmUnavailableError, CrmLimitError, CrmAuthError):
        raise
    except CrmError as error:
        run.summary.failures.append(
            Failure(RecordKind.REP, task.rep_id, error.code or "REFUSED",
                    f"the {'coaching' if task.kind == PLAY else 'training'} task {task.subject!r} "
                    f"was not opened: {error}")
        )  # fmt: skip


def read_back(
    run: Run, board: TaskBoard, tasks: Sequence[CoachingTask], users: Mapping[str, CrmUser]
) -> None:
    """Completed and deleted tasks, and what managers wrote on play tasks (a note)."""
    if not tasks:
        return
    store, on = run.store, run.options.as_of
    found = {t.id: t for t in board.read([t.crm_id for t in tasks if t.crm_id])}
    for task in tasks:
        crm = found.get(task.crm_id or "")
        if crm is None:
            store.coaching.read_back(task.key, state=GONE, body=task.body, on=on)
            continue
        state = DONE if crm.done else None
        if state is None and crm.body == task.body:
            continue
        added = _added(task.body, crm.body) if task.kind == PLAY else ""
        with store.transaction():
            if added:
                manager = users.get(task.assignee_id)
                author = f"{manager.name if manager else task.assignee_id} (CRM task)"
                at = crm.modified_at or run.started
                store.notes.add(task.rep_id, task.period, author, added[:MAX_NOTE], at)
            store.coaching.read_back(task.key, state=state, body=crm.body, on=on)


def _added(ours: str, theirs: str) -> str:
    """The lines of the CRM's text that we did not write."""
    known = {line.strip() for line in ours.splitlines()}
    return "\n".join(
        line.strip() for line in theirs.splitlines() if line.strip() and line.strip() not in known
    )


def _play_task(
    call: Call, name: str, manager: str, module: TrainingModule | None, on: date
) -> CoachingTask:
    play, figures = call.play, call.figures
    return CoachingTask(
        rep_id=call.rep_id, play=play.play, period=call.period, kind=PLAY, assignee_id=manager,
        subject=play_subject(play, name, call.period), body=play_body(call, name, module),
        due=(on + timedelta(days=7)).isoformat(), state=OPEN, crm_id=None, attempted_at=None,
        note_owed=None, figure=play.figure.value, before=_text(figures.value(play)),
        latest=_text(figures.value(play)), opened_on=on.isoformat(), closed_on=None,
    )  # fmt: skip


def _module_task(call: Call, module: TrainingModule, on: date) -> CoachingTask:
    due = on + timedelta(days=module.due_days)
    before = _text(module_figure(module, call.figures))
    return CoachingTask(
        rep_id=call.rep_id, play=f"module:{module.id}", period=call.period, kind=MODULE,
        assignee_id=call.rep_id, subject=module_subject(module, call.period),
        body=module_body(module, call, due), due=due.isoformat(), state=OPEN, crm_id=None,
        attempted_at=None, note_owed=None, figure=module.addresses.value, before=before,
        latest=before, opened_on=on.isoformat(), closed_on=None,
    )  # fmt: skip


def _assigned(
    held: Mapping[tuple[str, str, str], CoachingTask],
    new: Sequence[CoachingTask],
    rep_id: str,
    module_id: str,
) -> bool:
    """Whether the rep has this module assigned and not completed yet."""
    play = f"module:{module_id}"
    return any(
        t.rep_id == rep_id and t.play == play and t.state == OPEN for t in (*held.values(), *new)
    )


def _peers(store: Store, statements: Sequence[Statement], period: str) -> list[Statement]:
    """Every member's statement of the period: this pass's, and the store's for the rest."""
    fresh = [s for s in statements if s.period == period]
    seen = {(s.rep_id, s.plan_id) for s in fresh}
    return fresh + [s for s in store.statements.in_period(period)
                    if (s.rep_id, s.plan_id) not in seen]  # fmt: skip


def _managers(settings: SyncSettings, users: Mapping[str, CrmUser], on: date) -> dict[str, str]:
    """Each user's manager on ``on``: a listed team's, a CRM team's (team_managers:), else
    the CRM's own; only active users are given tasks."""
    reps = [rep_of(user) for user in users.values()]
    teams = team_spells(settings.teams, reps, None) if isinstance(settings.teams, tuple) else []
    emails = {u.email.lower(): u.id for u in users.values() if u.email}
    lines = reporting_lines(reps, None, teams, settings.team_managers, emails)
    active = {u.id for u in users.values() if u.active}
    found = {}
    for user_id in users:
        manager = lines.manager_of(user_id, on)
        if manager is not None and manager in active:
            found[user_id] = manager
    return found


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _refused(error: CrmError) -> str:
    return (
        f"coaching tasks were not opened: the CRM refused the permission ({error}). "
        "Salesforce: the integration user needs Edit Tasks; HubSpot: the private app needs "
        "the crm.objects.contacts.write scope"
    )
