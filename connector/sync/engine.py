"""The sync engine: the only orchestrator. Pull → store → recompute → diff → write.

Two doors onto one path:

- :meth:`SyncEngine.run` — the scheduled / CLI sync: every deal changed since
  the stored cursor (all with ``full``), after reading every user afresh.
- :meth:`SyncEngine.process` — the worker door: exactly the records a
  :class:`ChangeSet` names (deals read by id, deletions, changed users), with
  users taken from the store unless they are stale or an event says so.

Both then do the same steps, each committed with the work it leaves owed, so a
run killed anywhere leaves the next run (of either door) exactly what to finish:

1. pull: snapshot each deal against what we saw before (a won deal now lost,
   reopened or deleted becomes ``cancelled``); commit the snapshots, the values
   our fields hold in the CRM, the reps a business change touches and the
   deals whose splits must be read;
2. splits: read the owed deals' splits, commit them and the reps they touch;
3. recompute the owed reps' whole histories (draws carry forward, so a period
   is never computed alone) and commit their statements and the values our
   fields should hold, paying off their debt in the same commit;
4. write every value that differs from what the CRM holds through the sink,
   and record what the CRM accepted; values that fail stay pending;
5. (``run`` only) read what changed during the run, mostly our own writes, so
   the next incremental sync starts after them, and move the cursor.

A dry run is the same path on a store transaction that is rolled back at the
end, with a sink that records instead of writing: it reports exactly what the
real run would write, and leaves no trace anywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from connector.adapters.base import CrmAdapter
from connector.core.diff import DEAL_KEYS, deal_values, rep_values
from connector.core.fields import RecordKind
from connector.core.goals import team_spells
from connector.core.members import resolve, resolve_members
from connector.core.models import (
    CrmDeal,
    CrmQuota,
    CrmSplit,
    CrmUser,
    DealSnapshot,
    Rep,
    Statement,
    TeamResult,
    TeamSpell,
)
from connector.core.overrides import NO_LINES, ReportingLines, reporting_lines
from connector.core.periods import first_day, label, parse_label, period_of
from connector.core.plan_checks import filter_problems
from connector.core.recognition import AwardKind, recognize
from connector.core.snapshots import (
    as_deleted,
    carries_credit,
    credited,
    currency_warning,
    engine_deals,
    rep_of,
    snapshot_of,
    touched_reps,
)
from connector.core.statements import calculate, reps_to_compute
from connector.errors import ConfigError, ConnectorError
from connector.store.cursors import (
    AS_OF_DATE_CURSOR,
    AS_OF_PERIOD_CURSOR,
    DEALS_CURSOR,
    RULES_CURSOR,
    USERS_FETCHED_CURSOR,
)
from connector.store.db import new_holder
from connector.store.owed import OWED_DEAL, OWED_REP, OWED_SPLITS
from connector.store.state import Store
from connector.sync import coaching
from connector.sync.lease import sync_lock
from connector.sync.run import (
    ChangeSet,
    CrmSink,
    Progress,
    RecordingSink,
    Run,
    SyncOptions,
    SyncSettings,
    SyncSummary,
    quiet,
)
from connector.sync.splits_ahead import SplitsAhead
from connector.sync.writing import scope_of, write_pending

READ_BATCH = 2000
# The worker door reuses the users it knows for this long (an event naming a
# user, or a deal owned by someone unknown, refreshes them at once).
USERS_MAX_AGE = timedelta(hours=1)
# How long the worker door waits for a scheduled sync holding the lock.
WORKER_LOCK_WAIT_S = 10.0


class SyncEngine:
    def __init__(
        self,
        settings: SyncSettings,
        adapter: CrmAdapter,
        store: Store,
        clock: Callable[[], datetime],
        progress: Progress = quiet,
        holder: str | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.say = say  # a line for the person waiting (the CLI's sync), when there is one
        self.adapter = adapter
        self.store = store
        self.clock = clock
        self.progress = progress
        self.holder = holder or new_holder()
        self._account: str | None = None

    # -- the doors ----------------------------------------------------------------------

    def run(self, options: SyncOptions) -> SyncSummary:
        """The scheduled sync: what changed since the cursor (everything with ``full``)."""
        return self._door(options, None)

    def process(self, change: ChangeSet, options: SyncOptions) -> SyncSummary:
        """The worker door: exactly the records ``change`` names, and the reps they touch."""
        return self._door(options, change)

    def _door(self, options: SyncOptions, change: ChangeSet | None) -> SyncSummary:
        if options.dry_run:
            with self.store.scratch() as scratch:
                run = Run(options, scratch, RecordingSink(), self.clock())
                self._steps(run, change)
                return run.summary
        wait = options.lock_wait_s if change is None else WORKER_LOCK_WAIT_S

        def waiting(holder: str) -> None:
            if self.say is not None:
                self.say(f"waiting up to {wait:.0f} s: {holder}")

        with sync_lock(self.store, self.holder, self.clock, wait_s=wait, on_wait=waiting):
            if options.only_if is not None and not options.only_if():
                return SyncSummary(skipped=True)
            run = Run(options, self.store, CrmSink(self.adapter), self.clock())
            run.summary.interrupted_runs = self.store.close_interrupted_runs(run.started)
            kind = "sync" if change is None else "worker"
            run_id = self.store.runs.start(kind, run.started, _run_options(options), self.holder)
            try:
                self._steps(run, change)
            except ConnectorError as error:
                self.store.runs.finish(run_id, self.clock(), "failed", {"error": str(error)})
                raise
            status = "partial" if run.summary.failures else "ok"
            self.store.runs.finish(run_id, self.clock(), status, run.summary.as_json())
        return run.summary

    # -- the one path ---------------------------------------------------------------------

    def _steps(self, run: Run, change: ChangeSet | None) -> None:
        store, options, kind = run.store, run.options, self.settings.period_kind
        problems = filter_problems(
            self.settings.plans, self.adapter.deal_columns, self.adapter.name
        )
        if problems:
            raise ConfigError("; ".join(problems))
        rebuilt = self._bind_account(run)
        full = options.full or rebuilt
        self.settings = with_crm_rates(self.settings, self.adapter, refresh=full)
        ahead: SplitsAhead | None = None  # the worker door reads deals and splits at once
        if change is None:
            # Cached owners are refreshed when an unknown one appears, not on every full sync.
            users = self._read_users(run)
            self._read_goal_inputs(run, users)
            since = None if full else store.cursors.time(DEALS_CURSOR)
            self._pull(run, self.adapter.read_deals(since))
            pulled = run.pulled_owners
        else:
            ahead = SplitsAhead(self.adapter, change.deals) if change.deals else None
            users = self._known_users(run, change)
            self._pull(run, self._by_id(run, change.deals))
            pulled = {d.owner_id for d in store.deals.by_id(change.deals).values()}
            if change.splits:
                store.owed.add(OWED_SPLITS, change.splits)
        self.progress("pulled", run.summary.deals_read)
        members, problems = resolve(self.settings.plans, users)
        if problems or pulled - users.keys() - {""}:
            # A member or a deal's owner we have not seen: someone joined since we looked.
            users = self._read_users(run, refresh=True)
            members = resolve_members(self.settings.plans, users)
        reps = [rep_of(user) for user in users.values() if user.id in members]

        read_owed_splits(run, self.adapter, ahead)
        self.progress("splits", len(store.owed.of(OWED_SPLITS)))

        as_of_label = label(period_of(options.as_of, kind), kind)
        rolled_over = store.cursors.get(AS_OF_PERIOD_CURSOR) != as_of_label and change is None
        # Pace moves with the calendar: a scheduled sync on a new day recomputes everyone,
        # or a rep with no new deals would keep yesterday's pace.
        new_day = (
            store.cursors.get(AS_OF_DATE_CURSOR) != options.as_of.isoformat() and change is None
        )
        owed_reps = store.owed.of(OWED_REP)
        owed_deals = store.owed.of(OWED_DEAL)
        rules = self.settings.fingerprint()
        everyone = full or rolled_over or new_day or store.cursors.get(RULES_CURSOR) != rules
        affected = (set(members) if everyone else set()) | (owed_reps & members)
        statements, teams, covered, computed = self._recompute(run, reps, affected)
        run.summary.reps_recomputed = len({s.rep_id for s in statements})
        run.summary.statements = len(statements)

        desired = desired_values(
            store, self.settings, statements, (covered, owed_deals), teams, options.as_of,
            run.estimates, change is None,
        )  # fmt: skip
        if self.settings.coaching and not options.dry_run:
            coaching.decide(
                run, self.adapter, self.settings, statements, run.deals, users, change is None
            )
        store.commit_statements(
            computed | owed_reps, statements, desired, paid={OWED_DEAL: owed_deals}
        )
        store.cursors.set(RULES_CURSOR, rules)  # only once everyone was recomputed with them
        self.progress("computed", len(statements))

        scope = None if change is None else scope_of(run, change, desired)
        write_pending(run, desired, users, scope, self.progress)
        if self.settings.coaching and not options.dry_run:
            coaching.carry_out(run, self.adapter)
        self.progress("written", run.summary.records_written)

        if change is None:
            run.summary.warnings.extend(edited_plans(store, self.settings))
            # Only our deal writes move deal stamps; with none, there is nothing to settle.
            if run.deals_written:
                self._settle(run)
            if run.newest is not None:
                store.cursors.set(DEALS_CURSOR, run.newest.isoformat())
            store.cursors.set(AS_OF_PERIOD_CURSOR, as_of_label)
            store.cursors.set(AS_OF_DATE_CURSOR, options.as_of.isoformat())
        run.summary.usage = self.adapter.usage()

    def _bind_account(self, run: Run) -> bool:
        """The store belongs to one CRM account: check it (once per engine), or rebuild it."""
        if self._account is None:
            self._account = self.adapter.account_id()
        rebuilt = run.store.cursors.bind_account(self._account, rebuild=run.options.rebuild)
        if rebuilt and run.options.rebuild:
            run.summary.warnings.append(
                f"the store was rebuilt for CRM account {self._account}: everything is read again"
            )
        return rebuilt

    # -- pulling --------------------------------------------------------------------------

    def _read_users(self, run: Run, *, refresh: bool = False) -> dict[str, CrmUser]:
        if run.users_refreshed:
            return {user.id: user for user in run.store.users.all()}
        users = {user.id: user for user in self.adapter.read_users(refresh=refresh)}
        run.users_refreshed = refresh
        run.summary.users_read = len(users)
        self.progress("users", len(users))
        known = {u.id: (u.manager_id, u.team_id) for u in run.store.users.all()}
        moved = [
            u.id
            for u in users.values()
            if u.id in known and known[u.id] != (u.manager_id, u.team_id)
        ]
        if moved and self.settings.teams is not None:
            # A rep changed teams: every team's figures may move. Owed before the move
            # is stored, so a run killed in between still recomputes.
            run.store.owed.add(OWED_REP, self._members(users))
        seen_on = run.started.astimezone(self.settings.timezone).date()
        run.store.users.upsert(users.values(), fetched_at=run.started, seen_on=seen_on)
        run.store.crm_values.set_crm(
            RecordKind.REP,
            ((u.id, key, value) for u in users.values() for key, value in u.fields.items()),
        )
        return users

    def _members(self, users: Mapping[str, CrmUser]) -> set[str]:
        """The plan members these users resolve (an unknown email is dealt with later)."""
        return resolve(self.settings.plans, users)[0]

    def _read_goal_inputs(self, run: Run, users: Mapping[str, CrmUser]) -> None:
        """The CRM's quotas and leads, when the plans use them; a change recomputes everyone.

        The recomputation is owed before the new figures are stored, so a run killed
        in between still recomputes on the next one.
        """
        store, adapter = run.store, self.adapter
        if self.settings.crm_quotas:
            quotas = adapter.read_quotas()
            run.summary.quotas_read = len(quotas)
            if sorted(map(_quota_key, quotas)) != sorted(map(_quota_key, store.quotas.of())):
                store.owed.add(OWED_REP, self._members(users))
                store.quotas.replace(quotas)
        if self.settings.lead_to_sale:
            before = adapter.usage().calls
            since = min(plan.start for plan in self.settings.plans)
            leads = adapter.read_leads(since)
            run.summary.leads_read = len(leads)
            run.summary.lead_calls = adapter.usage().calls - before
            if sorted(leads) != store.leads.of():
                store.owed.add(OWED_REP, self._members(users))
                store.leads.replace(leads)

    def _known_users(self, run: Run, change: ChangeSet) -> dict[str, CrmUser]:
        """The worker door's users: from the store, unless stale or named by the change."""
        fetched = run.store.cursors.time(USERS_FETCHED_CURSOR)
        stale = fetched is None or run.started - fetched > USERS_MAX_AGE
        if stale or change.users:
            return self._read_users(run)
        return {user.id: user for user in run.store.users.all()}

    def _by_id(self, run: Run, deal_ids: Collection[str]) -> Iterator[CrmDeal]:
        """The named deals as the CRM has them; one it no longer knows at all is deleted."""
        seen: set[str] = set()
        for deal in self.adapter.read_deals_by_id(sorted(deal_ids)):
            seen.add(deal.id)
            yield deal
        for snapshot in run.store.deals.by_id(set(deal_ids) - seen).values():
            if not snapshot.deleted:
                yield as_deleted(snapshot)

    def _pull(self, run: Run, deals: Iterable[CrmDeal]) -> None:
        for batch in _batches(deals, READ_BATCH):
            self._absorb(run, batch)
            self.progress("deals", run.summary.deals_read)

    def _absorb(self, run: Run, batch: Sequence[CrmDeal]) -> None:
        """Snapshot a batch of pulled deals and commit it with the work it makes owed."""
        run.summary.deals_read += len(batch)
        run.pulled_owners.update(deal.owner_id for deal in batch)
        run.newest = max([run.newest, *(d.modified_at for d in batch)], key=_stamp_key)
        before = run.store.deals.by_id([deal.id for deal in batch])
        changed: list[DealSnapshot] = []
        owed_reps: set[str] = set()
        for crm_deal in batch:
            previous = before.get(crm_deal.id)
            snapshot = snapshot_of(crm_deal, previous, self.settings.timezone)
            touched = touched_reps(previous, snapshot)
            if previous is None or touched:
                changed.append(snapshot)
                owed_reps |= touched
            warning = (
                currency_warning(snapshot, self.settings.currency)
                if self.settings.rates is None
                else None
            )
            if warning:
                run.summary.warnings.append(warning)
        run.summary.deals_changed += len(changed)
        credit_bearing = [s.id for s in changed if carries_credit(s)]
        run.store.absorb(
            changed,
            ((d.id, key, value) for d in batch for key, value in d.fields.items()),
            owed={
                OWED_REP: owed_reps,
                OWED_SPLITS: credit_bearing,
                OWED_DEAL: [s.id for s in changed],
            },
        )

    # -- computing --------------------------------------------------------------------------

    def _recompute(
        self, run: Run, reps: Sequence[Rep], affected: set[str]
    ) -> tuple[list[Statement], list[TeamResult], set[str], set[str]]:
        """Statements of the affected reps (with split partners and, for team goals,
        teammates), the team results, the deals they cover, and who was computed."""
        if not affected:
            return [], [], set(), set()
        store, plans = run.store, self.settings.plans
        teams, reporting = who_with_whom(store, self.settings, reps)
        member_ids = {rep.id for rep in reps}
        scope = member_ids | affected
        wanted = reps_to_compute(plans, teams, affected, None, reporting) & scope
        snapshots = {d.id: d for d in store.deals.for_reps(wanted)}
        splits = store.deals.splits(list(snapshots))
        partners = {rep for rows in splits.values() for rep, _ in rows} & member_ids
        computed = reps_to_compute(plans, teams, wanted | partners, None, reporting) & scope
        if computed - wanted:
            for snapshot in store.deals.for_reps(computed - wanted):
                snapshots.setdefault(snapshot.id, snapshot)
            splits.update(store.deals.splits([d for d in snapshots if d not in splits]))
        deals, problems = engine_deals(
            snapshots.values(), splits, self.settings.currency, self.settings.rates
        )
        calculation = calculate(
            plans,
            reps,
            deals,
            period_kind=self.settings.period_kind,
            as_of=run.options.as_of,
            rep_ids=computed,
            teams=teams,
            # Only the computed reps' rows: the worker door computes a team, not the org.
            crm_quotas=store.quotas.of(computed) if self.settings.crm_quotas else (),
            leads=store.leads.of(computed) if self.settings.lead_to_sale else None,
            books=store.pay.books(computed),
            estimate=True,
            reporting=reporting,
        )
        run.estimates = calculation.estimates
        run.deals = deals
        run.summary.warnings.extend(w.message for w in (*problems, *calculation.warnings))
        # A deal's values are complete only when every member credited on it was recomputed.
        covered = {
            deal.id
            for deal in deals
            if all(rep in computed for rep in credited(deal) if rep in member_ids)
        }
        return list(calculation.statements), list(calculation.teams), covered, computed

    def _settle(self, run: Run) -> None:
        """Read what changed during the run, so the next sync starts after our own writes.

        Our writes move the CRM's change stamps; without this the next incremental
        sync would re-read every record this one wrote. A real change found here
        (someone edited a deal while we ran) is owed to the next run.
        """
        if run.newest is not None:
            self._pull(run, self.adapter.read_deals(run.newest))


def read_owed_splits(run: Run, adapter: CrmAdapter, ahead: SplitsAhead | None = None) -> None:
    """Read the splits of every deal owed a split read (this run's and a dead run's); those
    ``ahead`` read already, when it read them all."""
    owed = sorted(run.store.owed.of(OWED_SPLITS))
    if ahead is not None and ahead.covers(owed):
        splits: Iterable[CrmSplit] | None = ahead.splits(owed)
    elif not owed:
        return
    else:
        splits = adapter.read_splits(owed)
    before = run.store.deals.splits(owed)
    if splits is None:  # this CRM has no splits: only the debt to clear
        run.store.settle_splits({d: before.get(d, []) for d in owed}, ())
        return
    by_deal: dict[str, list[tuple[str, Decimal]]] = {d: [] for d in owed}
    for split in splits:
        by_deal.setdefault(split.deal_id, []).append((split.rep_id, split.percent))
    touched = {rep for rows in (*by_deal.values(), *before.values()) for rep, _ in rows}
    run.store.settle_splits(by_deal, touched)


def with_crm_rates(settings: SyncSettings, adapter: CrmAdapter, *, refresh: bool) -> SyncSettings:
    """The settings with the CRM's exchange rates, when spm.yaml takes them from the CRM
    (cached like metadata: a full sync reads them afresh). A change of rate changes the
    settings' fingerprint, so every rep is recomputed with it."""
    if settings.crm_rates is None:
        return settings
    rates = adapter.read_rates(refresh=refresh)
    if rates is not None:
        rates = dataclasses.replace(rates, basis=settings.crm_rates)
    return dataclasses.replace(settings, rates=rates)


def who_with_whom(
    store: Store, settings: SyncSettings, reps: Sequence[Rep]
) -> tuple[list[TeamSpell], ReportingLines]:
    """The team memberships (for team goals) and who reports to whom (for manager
    overrides; none read when no plan pays one)."""
    # Only teams taken from the CRM, and reporting lines, have a history to read.
    crm_lines = settings.teams == "crm" or settings.overrides
    history = store.users.team_history() if crm_lines else None
    teams = team_spells(settings.teams, reps, history)
    if not settings.overrides:
        return teams, NO_LINES
    listed = teams if isinstance(settings.teams, tuple) else ()
    emails = None
    if any("@" in who for who in settings.team_managers.values()):
        emails = {u.email.lower(): u.id for u in store.users.all() if u.email}
    return teams, reporting_lines(reps, history, listed, settings.team_managers, emails)


def desired_values(
    store: Store,
    settings: SyncSettings,
    statements: Sequence[Statement],
    deals: tuple[Collection[str], Collection[str]],
    teams: Sequence[TeamResult],
    as_of: date,
    estimates: Mapping[str, Decimal],
    scheduled: bool = True,
) -> dict[RecordKind, dict[str, dict[str, str | None]]]:
    """The values our fields should hold: on the deals ``deals`` names (those whose
    credited reps were all computed, and those that changed) and on the reps."""
    covered, changed = deals
    kind = settings.period_kind
    on_deals = deal_values(statements, covered, estimates)
    # A changed deal credited to no one we computed loses our values.
    for deal_id in set(changed) - on_deals.keys():
        on_deals[deal_id] = dict.fromkeys(DEAL_KEYS)
    # A deal deleted in the CRM takes no writes (its clawback is on the rep's statement).
    gone = {i for i, d in store.deals.by_id(on_deals).items() if d.deleted}
    for deal_id in gone:
        del on_deals[deal_id]
    store.crm_values.forget(RecordKind.DEAL, gone)
    on_reps = rep_values(statements, label(period_of(as_of, kind), kind), teams,
                         store.pay.statuses())  # fmt: skip
    for rep_id, values in on_reps.items():
        if "period" in values:  # a plan member, not only a team's manager
            links = settings.links
            values["statement_link"] = links.link(rep_id, as_of) if links else None
    if settings.recognition:
        award_values(store, settings, statements, (as_of, scheduled), on_reps)
    return {RecordKind.DEAL: on_deals, RecordKind.REP: on_reps}


def award_values(
    store: Store,
    settings: SyncSettings,
    statements: Sequence[Statement],
    when: tuple[date, bool],
    on_reps: dict[str, dict[str, str | None]],
) -> None:
    """Give the awards the rules find (each once: the store keeps them) and put each
    affected rep's latest award and count among their values.

    The leaderboard's award judges a whole period, so only a scheduled sync gives it
    (a worker pass sees a few reps), from every member's statement of the latest period
    that is over. Given before the statements commit: a pass killed in between gives
    nothing twice, and the next pass writes the fields.
    """
    as_of, scheduled = when
    kind, rules = settings.period_kind, settings.recognition
    found = recognize(statements, rules, as_of, kind, leaderboard=False)
    winners: set[str] = set()
    if scheduled and any(rule.award is AwardKind.TOP_OF_PERIOD for rule in rules):
        judged = label(period_of(as_of, kind) - 1, kind)
        fresh = [s for s in statements if s.period == judged]
        seen = {s.rep_id for s in fresh}
        period = fresh + [s for s in store.statements.in_period(judged) if s.rep_id not in seen]
        tops = [rule for rule in rules if rule.award is AwardKind.TOP_OF_PERIOD]
        top = recognize(period, tops, as_of, kind, leaderboard=True)
        winners = {award.rep_id for award in top}
        found += top
    store.awards.give(found, as_of)
    reps = {rep for rep, values in on_reps.items() if "period" in values} | winners
    held = store.awards.summary(reps)
    for rep_id in reps:
        count, latest = held.get(rep_id, (0, None))
        values = on_reps.setdefault(rep_id, {})
        values["latest_award"] = latest.text() if latest is not None else None
        values["award_count"] = str(count)


def edited_plans(store: Store, settings: SyncSettings) -> list[str]:
    """Plans whose rules for a closed period are not those it was closed with: someone
    edited a plan in place instead of adding a version. Said on every sync, because
    late changes to those periods are then measured against rules that were not paid."""
    kind = settings.period_kind
    changed: dict[str, list[str]] = {}
    for period, detail in sorted(store.pay.close_details().items()):
        day = first_day(parse_label(period, kind), kind)
        for plan in settings.plans:
            was = detail.get("plans", {}).get(plan.id)
            if was is not None and was != plan.fingerprint(day):
                changed.setdefault(plan.id, []).append(period)
    return [
        f"plan {plan_id}: its rules for closed {', '.join(periods)} are not those the period "
        "was closed with; late changes there are measured against the new rules. To change "
        "a plan, add a version (versions: - effective_from: …) instead of editing it"
        for plan_id, periods in changed.items()
    ]


def _quota_key(quota: CrmQuota) -> tuple[str, date, str, str]:
    return quota.rep_id, quota.start_date, str(quota.amount), str(quota.quantity)


def _run_options(options: SyncOptions) -> dict[str, object]:
    return {"full": options.full, "as_of": options.as_of.isoformat(), "rebuild": options.rebuild}


def _stamp_key(moment: datetime | None) -> datetime:
    return moment if moment is not None else datetime.min.replace(tzinfo=ZoneInfo("UTC"))


def _batches(items: Iterable[CrmDeal], size: int) -> Iterator[list[CrmDeal]]:
    batch: list[CrmDeal] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
