"""HubSpot behind the adapter protocol, on hubspot-api-client.

- Every call goes through :class:`~connector.adapters.hubspot.api.HubSpotApi`
  (one way out, pacing, retries, the portal's metadata).
- Writes are batch updates of 100 with the shared
  :class:`~connector.adapters.base.BatchWriter`; records HubSpot calls busy are
  sent again.
- Reps: plan members are owner ids (a deal's ``hubspot_owner_id``) or emails.
  Rep values are written to the ``users`` object (or ``fields.hubspot_rep_object``),
  matched to each owner by ``hs_internal_user_id`` = the owner's ``userId``, else email.
- ``install`` is :mod:`connector.adapters.hubspot.install`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from hubspot import HubSpot
from pydantic import SecretStr

from connector.adapters.base import BatchWriter, CallBudget, MetadataCache, TaskBoard
from connector.adapters.hubspot.api import (
    BATCH_SIZE,
    LIST_PAGE,
    HubSpotApi,
    HubSpotSettings,
)
from connector.adapters.hubspot.deals import DealReader, portal_date
from connector.adapters.hubspot.install import HubSpotInstaller
from connector.adapters.hubspot.rates import read_rates
from connector.adapters.hubspot.tasks import HubSpotTasks
from connector.adapters.hubspot.values import decimal, outgoing, value_text
from connector.adapters.retry import RetryPolicy
from connector.core.currency import Rates
from connector.core.fields import FieldSpec, RecordKind
from connector.core.models import (
    ApiUsage,
    CrmDeal,
    CrmQuota,
    CrmSplit,
    CrmUser,
    FieldStatus,
    Lead,
    RecordUpdate,
    WriteResult,
)
from connector.errors import ConfigError

# 207 error categories worth sending again (the record was busy, not wrong).
_RETRYABLE_CATEGORIES = frozenset({"CONFLICT", "RATE_LIMITS", "LOCKED"})


class HubSpotAdapter:
    name = "hubspot"
    # The deal columns a goal or SPIFF filter can name, besides the Deal's own.
    deal_columns = frozenset({"Name", "StageName", "Pipeline", "Type"})

    def __init__(
        self,
        settings: HubSpotSettings,
        access_token: SecretStr,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        *,
        client: HubSpot | None = None,
        cache: MetadataCache | None = None,
        budget: CallBudget | None = None,
    ) -> None:
        self.settings = settings
        self.deal_columns = HubSpotAdapter.deal_columns | set(settings.deal_properties)
        self.api = HubSpotApi(
            settings, access_token, retry, sleep, clock, client=client, cache=cache, budget=budget
        )
        self._writer = BatchWriter(BATCH_SIZE, self.api.retry, busy=_RETRYABLE_CATEGORIES)
        self._specs = {spec.key: spec for spec in settings.fields}
        self._rep_records: dict[str, str] = {}  # owner id → rep object record id
        self._deals = DealReader(self.api)
        self.tasks: TaskBoard = HubSpotTasks(self.api)

    def writer_id(self) -> str | None:
        return None  # HubSpot's events name the app that made a change (changeSource, sourceId)

    def account_id(self) -> str:
        """The portal id (``portalId``), read once."""
        return self.api.portal_id()

    def _ours(self, record: RecordKind) -> list[FieldSpec]:
        return [spec for spec in self.settings.fields if spec.record is record]

    # -- reading ------------------------------------------------------------------------------

    def _owners(self, *, refresh: bool) -> list[dict[str, Any]]:
        """Every owner, archived ones included (their deals still count), cached."""

        def fetch() -> list[dict[str, Any]]:
            return [
                {key: owner.get(key) for key in ("id", "email", "firstName", "lastName", "userId")}
                | {"archived": archived == "true", "team": _primary_team(owner)}
                for archived in ("false", "true")
                for owner in self.api.listing(
                    "owners", "/crm/v3/owners", [("limit", LIST_PAGE), ("archived", archived)]
                )
            ]

        found: list[dict[str, Any]] = self.api.metadata.get("owners", fetch, refresh=refresh)
        if found and "team" not in found[0]:
            # Cached by a version that did not keep teams: read them now, not in a day.
            found = self.api.metadata.get("owners", fetch, refresh=True)
        return found

    def read_users(
        self, include_fields: bool = True, *, refresh: bool = False
    ) -> Iterator[CrmUser]:
        owners = self._owners(refresh=refresh)
        specs = self._ours(RecordKind.REP) if include_fields else []
        records = self._rep_object_records(specs)
        by_user_id = {r["properties"].get("hs_internal_user_id"): r for r in records}
        by_email = {
            (r["properties"].get("hs_email") or "").lower(): r
            for r in records
            if r["properties"].get("hs_email")
        }
        for owner in owners:
            owner_id = str(owner["id"])
            email = str(owner.get("email") or "")
            record = by_user_id.get(str(owner.get("userId"))) or by_email.get(email.lower())
            values: dict[str, str | None] = {}
            record_id: str | None = None
            employee: str | None = None
            if record is not None:
                record_id = str(record["id"])
                self._rep_records[owner_id] = record_id
                props = record["properties"]
                values = {s.key: value_text(s, props.get(s.hubspot)) for s in specs}
                if self.settings.payroll_id_property is not None:
                    employee = (props.get(self.settings.payroll_id_property) or "").strip() or None
            elif specs:
                values = dict.fromkeys((s.key for s in specs), None)
            name = " ".join(p for p in (owner.get("firstName"), owner.get("lastName")) if p)
            yield CrmUser(
                id=owner_id,
                name=name or email,
                email=email,
                active=not owner.get("archived", False),
                team_id=owner.get("team"),
                fields=values,
                record_id=record_id,
                payroll_id=employee,
            )

    def _every(self, object_type: str, names: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Every live record of an object type, a page (one call) at a time."""
        query = [("limit", LIST_PAGE), ("properties", ",".join(names))]
        return self.api.listing("objects", f"/crm/v3/objects/{object_type}", query)

    def read_quotas(self) -> list[CrmQuota]:
        """Goal targets (``goal_targets``) assigned to users, as quota amounts by owner.

        A target names its user (``hs_assignee_user_id``); the owner with that
        ``userId`` is the rep. With ``quota_goal`` set, only targets of the goal
        of that name count (a portal may also track calls made, meetings booked).
        """
        by_user = {str(o.get("userId")): str(o["id"]) for o in self._owners(refresh=False)}
        names = (
            "hs_assignee_user_id",
            "hs_start_datetime",
            "hs_end_datetime",
            "hs_target_amount",
            "hs_goal_name",
        )
        quotas: list[CrmQuota] = []
        for row in self._every("goal_targets", names):
            props = row.get("properties") or {}
            goal = self.settings.quota_goal
            if goal is not None and props.get("hs_goal_name") != goal:
                continue
            owner = by_user.get(str(props.get("hs_assignee_user_id") or ""))
            start, amount = props.get("hs_start_datetime"), props.get("hs_target_amount")
            if owner is None or not start or amount in (None, ""):
                continue
            quotas.append(CrmQuota(owner, self._date(str(start)), decimal(str(amount))))
        return quotas

    def read_rates(self, *, refresh: bool = False) -> Rates | None:
        """The portal's exchange rates (rates.py); None in a single-currency portal."""
        return read_rates(self.api, refresh=refresh)

    def read_leads(self, since: date) -> list[Lead]:
        """Contacts created on or after ``since`` with an owner; converted = became a customer."""
        names = ("hubspot_owner_id", "createdate", "lifecyclestage")
        leads: list[Lead] = []
        for row in self._every("contacts", names):
            props = row.get("properties") or {}
            owner, created = props.get("hubspot_owner_id"), props.get("createdate")
            if not owner or not created:
                continue
            day = self._date(str(created))
            if day >= since:
                converted = str(props.get("lifecyclestage") or "") == "customer"
                leads.append(Lead(str(row["id"]), str(owner), day, converted))
        return leads

    def _rep_object_records(self, specs: Sequence[FieldSpec]) -> list[dict[str, Any]]:
        object_type = self.settings.rep_object
        if specs:
            self.api.require(object_type, specs)
        names = ["hs_email", "hs_internal_user_id", *(s.hubspot for s in specs)]
        payroll = self.settings.payroll_id_property
        if payroll is not None:
            # A property HubSpot does not know would be left out of every answer, silently.
            if payroll not in self.api.properties(object_type) and payroll not in (
                self.api.properties(object_type, refresh=True)
            ):
                raise ConfigError(
                    f"pay_cycle.payroll_id_field: HubSpot {object_type} have no property "
                    f"{payroll}: create it (the employee id payroll knows), or remove the setting"
                )
            names.append(payroll)
        return list(self._every(object_type, names))

    def read_deals(self, since: datetime | None) -> Iterator[CrmDeal]:
        return self._deals.changed_since(self._ours(RecordKind.DEAL), since)

    def read_deals_by_id(self, deal_ids: Collection[str]) -> Iterator[CrmDeal]:
        return self._deals.by_id(self._ours(RecordKind.DEAL), deal_ids)

    def read_splits(self, deal_ids: Collection[str]) -> Iterator[CrmSplit] | None:
        return self._deals.splits(deal_ids)

    def _date(self, text: str) -> date:
        return portal_date(text, self.settings.timezone)

    # -- writing ------------------------------------------------------------------------------

    def write(self, record: RecordKind, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        if record is RecordKind.DEAL:
            object_type, targets = "deals", {u.record_id: u.record_id for u in updates}
        else:
            object_type = self.settings.rep_object
            if any(u.target_id is None for u in updates) and not self._rep_records:
                list(self.read_users(include_fields=False))
            targets = {}
            for update in updates:
                target = update.target_id or self._rep_records.get(update.record_id)
                if target is not None:
                    targets[update.record_id] = target
        results: dict[str, WriteResult] = {}
        for update in updates:
            if update.record_id not in targets:
                results[update.record_id] = WriteResult(
                    update.record_id,
                    False,
                    "NO_USER_RECORD",
                    f"owner {update.record_id} has no HubSpot {object_type} record to hold "
                    "rep values",
                )
        for round_ in _rounds([u for u in updates if u.record_id in targets], targets):
            results.update(
                self._writer.write(round_, lambda batch: self._send(object_type, batch, targets))
            )
        return [results[u.record_id] for u in updates]

    def as_written(self, key: str, value: str | None) -> str | None:
        return outgoing(self._specs[key], value) or None  # "" clears the property

    def _send(
        self, object_type: str, batch: Sequence[RecordUpdate], targets: Mapping[str, str]
    ) -> dict[str, WriteResult]:
        """One batch update call: a result per record.

        Every input carries its record id as ``objectWriteTraceId``, and a write counts
        as done only when the answer lists it among the results: a 207 may name a
        failed input by its trace id alone, and an input the answer does not mention
        is not confirmed (reported, and sent again by the next sync).
        """
        owner_of = {targets[u.record_id]: u.record_id for u in batch}
        body = {
            "inputs": [
                {
                    "id": targets[u.record_id],
                    "objectWriteTraceId": u.record_id,
                    "properties": {
                        self._specs[key].hubspot: outgoing(self._specs[key], value)
                        for key, value in u.values.items()
                    },
                }
                for u in batch
            ]
        }
        _, answer = self.api.request(
            "objects" if object_type != "deals" else "deals",
            f"/crm/v3/objects/{object_type}/batch/update",
            "POST",
            body=body,
        )
        written, failed = _batch_outcome(answer, owner_of)
        results: dict[str, WriteResult] = {}
        for update in batch:
            if update.record_id in failed:
                category, message = failed[update.record_id]
                results[update.record_id] = WriteResult(update.record_id, False, category, message)
            elif update.record_id in written:
                results[update.record_id] = WriteResult(update.record_id, True)
            else:
                results[update.record_id] = WriteResult(
                    update.record_id,
                    False,
                    "NOT_CONFIRMED",
                    "HubSpot's answer did not list this record as written",
                )
        return results

    # -- install ------------------------------------------------------------------------------

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
        # HubSpot has no API for record layouts (install prints the steps) and no
        # field-level security to grant: ``assign_to`` and the layout choices do not apply.
        del assign_to, readers, layouts, skip_layouts
        return HubSpotInstaller(self.api).ensure_fields(specs, dry_run=dry_run)

    def usage(self) -> ApiUsage:
        return self.api.usage()


# -- batches -----------------------------------------------------------------------------------


def _rounds(
    updates: Sequence[RecordUpdate], targets: Mapping[str, str]
) -> list[list[RecordUpdate]]:
    """The updates as rounds in which no CRM record appears twice.

    HubSpot refuses a whole batch that names one record twice. Updates of one
    record id are merged (later values win); updates of different record ids that
    land on one CRM record (two owners matched to one user record) go in separate
    rounds, one after the other, so none is lost.
    """
    merged: dict[str, RecordUpdate] = {}
    for update in updates:
        earlier = merged.get(update.record_id)
        if earlier is not None:
            update = RecordUpdate(
                update.record_id,
                {**earlier.values, **update.values},
                update.target_id or earlier.target_id,
            )
        merged[update.record_id] = update
    rounds: list[list[RecordUpdate]] = []
    seen: dict[str, int] = {}
    for update in merged.values():
        target = targets[update.record_id]
        index = seen.get(target, 0)
        seen[target] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(update)
    return rounds


def _listed(value: Any) -> list[str]:
    """A context entry as a list of ids: HubSpot sends a list, or now and then one string."""
    if value is None:
        return []
    if isinstance(value, list | tuple | set):
        return [str(v) for v in value]
    return [str(value)]


def _batch_outcome(
    answer: Any, owner_of: Mapping[str, str]
) -> tuple[set[str], dict[str, tuple[str, str]]]:
    """A batch answer as (record ids written, record id → (category, message) failed).

    Results and errors are matched by ``objectWriteTraceId`` (our record id) where
    they carry one, else by the CRM record id they name.
    """
    written: set[str] = set()
    failed: dict[str, tuple[str, str]] = {}
    if not isinstance(answer, dict):
        return written, failed
    for result in answer.get("results") or []:
        trace = result.get("objectWriteTraceId")
        if trace is not None:
            written.add(str(trace))
        elif str(result.get("id")) in owner_of:
            written.add(owner_of[str(result.get("id"))])
    for error in answer.get("errors") or []:
        outcome = (str(error.get("category") or "ERROR"), str(error.get("message") or ""))
        context = error.get("context") or {}
        names = _listed(context.get("objectWriteTraceId"))
        names += _listed(error.get("objectWriteTraceId"))
        names += [owner_of[i] for i in _listed(context.get("ids")) if i in owner_of]
        for name in names:
            failed[name] = outcome
            written.discard(name)
    return written, failed


def _primary_team(owner: Mapping[str, Any]) -> str | None:
    """The owner's primary team id (the first team when none is marked primary)."""
    teams = owner.get("teams") or []
    chosen = next((t for t in teams if t.get("primary")), teams[0] if teams else None)
    return str(chosen["id"]) if chosen and chosen.get("id") is not None else None
