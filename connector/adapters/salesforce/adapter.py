"""Salesforce behind the adapter protocol, on simple-salesforce.

- Users, opportunities, splits, quotas and leads are read with SOQL ``queryAll``
  through :class:`~connector.adapters.salesforce.api.SalesforceApi`.
- Writes go through sObject Collections (``composite/sobjects``), 200 records a
  call, ``allOrNone: false``, with the shared
  :class:`~connector.adapters.base.BatchWriter`: records failing with
  ``UNABLE_TO_LOCK_ROW`` are sent again, the rest are reported with Salesforce's
  message.
- ``install`` is :mod:`connector.adapters.salesforce.install`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import requests
from simple_salesforce.exceptions import SalesforceError

from connector.adapters.base import BatchWriter, MetadataCache, TaskBoard, missing_after_refresh
from connector.adapters.retry import ConnectFailure, RetryPolicy, connect_failure, unreachable
from connector.adapters.salesforce.api import (
    BATCH_SIZE,
    INTEGRATION_PERMISSION_SET,
    LOCKED,
    OBJECT,
    SalesforceApi,
    SalesforceCredentials,
    SalesforceSettings,
    json_body,
    mapped,
    plain,
)
from connector.adapters.salesforce.install import SalesforceInstaller
from connector.adapters.salesforce.rates import read_rates
from connector.adapters.salesforce.tasks import SalesforceTasks
from connector.core.currency import Rates
from connector.core.fields import FieldSpec, RecordKind, ValueKind
from connector.core.models import (
    ApiUsage,
    CrmDeal,
    CrmQuota,
    CrmSplit,
    CrmUser,
    FieldStatus,
    FieldValue,
    Lead,
    Outcome,
    RecordUpdate,
    WriteResult,
)
from connector.core.values import canonical
from connector.errors import ConfigError, CrmConfigError, CrmError, CrmUnavailableError

SPLIT_QUERY_CHUNK = 300  # ids per OpportunitySplit query, well under SOQL's length limit
ID_QUERY_CHUNK = 300  # ids per `Id IN (...)` query when reading deals by id
SPLIT_QUERIES_MAX = 3  # past this many IN queries, read every split in pages instead
_ID = re.compile(r"^[A-Za-z0-9]{15,18}$")


class SalesforceAdapter:
    name = "salesforce"
    # The deal columns a goal or SPIFF filter can name, besides the Deal's own.
    deal_columns = frozenset({"Name", "StageName", "Type"})

    def __init__(
        self,
        settings: SalesforceSettings,
        credentials: SalesforceCredentials,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        cache: MetadataCache | None = None,
    ) -> None:
        self.settings = settings
        self.deal_columns = SalesforceAdapter.deal_columns | set(settings.deal_fields)
        self.api = SalesforceApi(settings, credentials, retry, session, cache)
        self._writer = BatchWriter(BATCH_SIZE, self.api.retry, busy=(LOCKED,))
        self._specs = {spec.key: spec for spec in settings.fields}
        self.tasks: TaskBoard = SalesforceTasks(self.api)

    def account_id(self) -> str:
        """The org id (``00D…``), read once."""
        return self.api.org_id()

    def writer_id(self) -> str | None:
        return self.api.writer_id()

    def _ours(self, record: RecordKind) -> list[FieldSpec]:
        return [spec for spec in self.settings.fields if spec.record is record]

    # -- reading --------------------------------------------------------------------------

    def read_users(
        self, include_fields: bool = True, *, refresh: bool = False
    ) -> Iterator[CrmUser]:
        del refresh  # every read is fresh: one query for all users
        specs = self._ours(RecordKind.REP) if include_fields else []
        self.api.require_fields("User", specs)
        columns = ["Id", "Name", "Email", "IsActive", "ManagerId", *(s.salesforce for s in specs)]
        payroll = self.settings.payroll_id_field
        if payroll is not None:
            if payroll not in self.api.fields_of("User"):
                raise ConfigError(
                    f"pay_cycle.payroll_id_field: User has no field {payroll} that the "
                    "integration user can read (a standard one is EmployeeNumber)"
                )
            columns.append(payroll)
        for row in self.api.query(f"SELECT {', '.join(columns)} FROM User", ours=("User", specs)):
            employee = row.get(payroll) if payroll is not None else None
            yield CrmUser(
                id=row["Id"],
                name=row.get("Name") or "",
                email=row.get("Email") or "",
                active=bool(row.get("IsActive")),
                manager_id=row.get("ManagerId"),
                fields={s.key: _value_text(s, row.get(s.salesforce)) for s in specs},
                payroll_id=(str(employee).strip() or None) if employee is not None else None,
            )

    def _deal_columns(self, specs: Sequence[FieldSpec]) -> list[str]:
        columns = [
            "Id",
            "Name",
            "OwnerId",
            "Amount",
            "CloseDate",
            "StageName",
            "IsWon",
            "IsClosed",
            "Type",
            "SystemModstamp",
            "IsDeleted",
            "CreatedDate",
        ]
        if "CurrencyIsoCode" in self.api.fields_of("Opportunity"):
            columns.append("CurrencyIsoCode")  # multi-currency orgs only
        wanted = _named_fields(self.api, [f for f in self.settings.deal_fields if f not in columns])
        return columns + wanted + [s.salesforce for s in specs]

    def read_deals(self, since: datetime | None) -> Iterator[CrmDeal]:
        specs = self._ours(RecordKind.DEAL)
        self.api.require_fields("Opportunity", specs)
        soql = f"SELECT {', '.join(self._deal_columns(specs))} FROM Opportunity"
        if since is not None:
            # Inclusive: a record stamped in the same second as the cursor is read again
            # rather than missed; re-reading an unchanged deal changes nothing.
            soql += f" WHERE SystemModstamp >= {_soql_datetime(since)}"
        soql += " ORDER BY SystemModstamp, Id"
        for row in self.api.query(soql, include_deleted=True, ours=("Opportunity", specs)):
            yield self._deal(row, specs)

    def read_deals_by_id(self, deal_ids: Collection[str]) -> Iterator[CrmDeal]:
        specs = self._ours(RecordKind.DEAL)
        self.api.require_fields("Opportunity", specs)
        ids = sorted({deal_id for deal_id in deal_ids if _ID.match(deal_id)})
        columns = ", ".join(self._deal_columns(specs))
        for start in range(0, len(ids), ID_QUERY_CHUNK):
            quoted = ", ".join(f"'{deal_id}'" for deal_id in ids[start : start + ID_QUERY_CHUNK])
            soql = f"SELECT {columns} FROM Opportunity WHERE Id IN ({quoted})"
            for row in self.api.query(soql, include_deleted=True, ours=("Opportunity", specs)):
                yield self._deal(row, specs)

    def _deal(self, row: Mapping[str, Any], specs: Sequence[FieldSpec]) -> CrmDeal:
        stage = row.get("StageName") or ""
        won_stages = self.settings.won_stages
        if won_stages is not None:
            won = stage in won_stages
            outcome = Outcome.WON if won else Outcome.LOST if row.get("IsClosed") else Outcome.OPEN
        else:
            outcome = (
                Outcome.WON
                if row.get("IsWon")
                else Outcome.LOST
                if row.get("IsClosed")
                else Outcome.OPEN
            )
        amount = row.get("Amount")
        close = row.get("CloseDate")
        properties = {
            key: column_text(row[key])
            for key in ("Name", "StageName", "Type", *self.settings.deal_fields)
            if row.get(key) is not None
        }
        return CrmDeal(
            id=row["Id"],
            owner_id=row.get("OwnerId") or "",
            amount=Decimal(str(amount)) if amount is not None else None,
            close_date=date.fromisoformat(close) if close else None,
            outcome=outcome,
            modified_at=_datetime(row["SystemModstamp"]),
            currency=row.get("CurrencyIsoCode"),
            type=row.get("Type"),
            name=row.get("Name") or "",
            deleted=bool(row.get("IsDeleted")),
            properties=properties,
            fields={s.key: _value_text(s, row.get(s.salesforce)) for s in specs},
            created_date=self._day(row.get("CreatedDate")),
        )

    def _day(self, stamp: str | None) -> date | None:
        """A Salesforce datetime as a date in the configured time zone."""
        return _datetime(stamp).astimezone(self.settings.timezone).date() if stamp else None

    def read_quotas(self) -> list[CrmQuota]:
        """Collaborative Forecasts quotas (``ForecastingQuota``): amounts and quantities."""
        soql = (
            "SELECT QuotaOwnerId, StartDate, QuotaAmount, QuotaQuantity, IsQuantity "
            "FROM ForecastingQuota"
        )
        quotas: list[CrmQuota] = []
        try:
            for row in self.api.query(soql):
                start = row.get("StartDate")
                owner = row.get("QuotaOwnerId")
                if not start or not owner:
                    continue
                amount, quantity = row.get("QuotaAmount"), row.get("QuotaQuantity")
                quantity_type = bool(row.get("IsQuantity"))
                quotas.append(
                    CrmQuota(
                        owner,
                        date.fromisoformat(start),
                        None if quantity_type or amount is None else Decimal(str(amount)),
                        None if not quantity_type or quantity is None else Decimal(str(quantity)),
                    )
                )
        except CrmError as error:
            if error.code in ("INVALID_TYPE", "NOT_FOUND") or error.status == 404:
                raise CrmConfigError(
                    "Salesforce: this org has no ForecastingQuota (Collaborative Forecasts is "
                    "off, or the integration user cannot see quotas): turn it on, or set the "
                    "plans' quota_source and target_source back to plan",
                    status=error.status,
                    code=error.code,
                ) from None
            raise
        return quotas

    def read_rates(self, *, refresh: bool = False) -> Rates | None:
        """The org's exchange rates (rates.py); None in a single-currency org."""
        return read_rates(self.api, refresh=refresh)

    def read_leads(self, since: date) -> list[Lead]:
        """Leads created on or after ``since`` that a user owns (not a queue)."""
        soql = (
            "SELECT Id, OwnerId, CreatedDate, IsConverted FROM Lead "
            f"WHERE CreatedDate >= {since.isoformat()}T00:00:00Z"
        )
        leads: list[Lead] = []
        for row in self.api.query(soql):
            owner = str(row.get("OwnerId") or "")
            created = self._day(row.get("CreatedDate"))
            if owner.startswith("005") and created is not None:
                leads.append(Lead(row["Id"], owner, created, bool(row.get("IsConverted"))))
        return leads

    def read_splits(self, deal_ids: Collection[str]) -> Iterator[CrmSplit] | None:
        ids = sorted(deal_id for deal_id in deal_ids if _ID.match(deal_id))
        # Many ids (a full sync): one paged read of every split beats hundreds of IN queries.
        read_all = len(ids) > SPLIT_QUERY_CHUNK * SPLIT_QUERIES_MAX
        try:
            if read_all:
                wanted = set(ids)
                every_split = self._splits(None)
                first = [s for s in every_split if s.deal_id in wanted]
            else:
                first = list(self._splits(ids[:SPLIT_QUERY_CHUNK])) if ids else []
        except CrmError as error:
            if error.code == "INVALID_TYPE":
                return None  # splits are not enabled in this org
            raise

        def every() -> Iterator[CrmSplit]:
            yield from first
            if read_all:
                return
            for start in range(SPLIT_QUERY_CHUNK, len(ids), SPLIT_QUERY_CHUNK):
                yield from self._splits(ids[start : start + SPLIT_QUERY_CHUNK])

        return every()

    def _splits(self, ids: Sequence[str] | None) -> Iterator[CrmSplit]:
        """Splits of these opportunities (of every opportunity when ``ids`` is None)."""
        soql = "SELECT OpportunityId, SplitOwnerId, SplitPercentage FROM OpportunitySplit"
        if ids is not None:
            if not ids:
                return
            quoted = ", ".join(f"'{deal_id}'" for deal_id in ids)
            soql += f" WHERE OpportunityId IN ({quoted})"
        for row in self.api.query(soql):
            yield CrmSplit(
                deal_id=row["OpportunityId"],
                rep_id=row["SplitOwnerId"],
                percent=Decimal(str(row["SplitPercentage"])),
            )

    # -- writing ------------------------------------------------------------------------------

    def write(self, record: RecordKind, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        sobject = OBJECT[record]
        if updates:
            # Both objects, described afresh once a run, before the first write: a grant
            # someone removed is one clear error, not a failure on every record, and not
            # a run that wrote the deals and then could not write the reps.
            for kind, name in OBJECT.items():
                self.api.require_fields(name, self._ours(kind), edit=True, fresh=True)
        try:
            results = self._writer.write(updates, lambda batch: self._send(sobject, batch))
        except ConnectFailure as failure:
            raise unreachable(
                "Salesforce", self.settings.instance_url, failure, "instance_url"
            ) from None
        except (requests.RequestException, OSError) as error:
            raise CrmUnavailableError(
                f"could not reach Salesforce at {self.settings.instance_url}: the connection "
                f"failed ({plain(error)})"
            ) from None
        return [results[update.record_id] for update in updates]

    def _send(self, sobject: str, batch: Sequence[RecordUpdate]) -> dict[str, WriteResult]:
        """One sObject Collections call (allOrNone false): a result per record."""
        body = {"allOrNone": False, "records": [self._record(sobject, u) for u in batch]}
        self.api.calls += 1
        try:
            answer = self.api.sf.restful("composite/sobjects", method="PATCH", data=json_body(body))
        except SalesforceError as error:
            raise mapped(error, self.settings.instance_url) from None
        except requests.RequestException as error:
            failure = connect_failure(error)
            if failure is not None:
                raise failure from None
            raise
        results: dict[str, WriteResult] = {}
        for update, outcome in zip(batch, answer or [], strict=True):
            if outcome.get("success"):
                results[update.record_id] = WriteResult(update.record_id, True)
                continue
            errors = outcome.get("errors") or [{}]
            code = str(errors[0].get("statusCode", "UNKNOWN"))
            message = "; ".join(str(e.get("message", "")) for e in errors)
            if code == "INVALID_FIELD_FOR_INSERT_UPDATE":
                message += (
                    f" (the integration user lacks Edit on our fields: run "
                    f"`spm-connector install` to grant it through {INTEGRATION_PERMISSION_SET})"
                )
            results[update.record_id] = WriteResult(update.record_id, False, code, message)
        return results

    def as_written(self, key: str, value: str | None) -> str | None:
        sent = _outgoing(self._specs[key], value)
        return None if sent is None else f"{sent:f}" if isinstance(sent, Decimal) else str(sent)

    def _record(self, sobject: str, update: RecordUpdate) -> dict[str, Any]:
        target = update.target_id or update.record_id
        record: dict[str, Any] = {"attributes": {"type": sobject}, "id": target}
        for key, value in update.values.items():
            spec = self._specs[key]
            record[spec.salesforce] = _outgoing(spec, value)
        return record

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
        return SalesforceInstaller(self.api).ensure_fields(
            specs,
            dry_run=dry_run,
            assign_to=assign_to,
            readers=readers,
            layouts=layouts,
            skip_layouts=skip_layouts,
        )

    def usage(self) -> ApiUsage:
        return self.api.usage()


def _value_text(spec: FieldSpec, raw: Any) -> str | None:
    """A field value as read from Salesforce → canonical text (percent fields → fraction)."""
    if raw is None or raw == "":
        return None
    if spec.value is ValueKind.FRACTION:
        return canonical(spec.key, Decimal(str(raw)) / 100)
    if spec.value is ValueKind.DATETIME:
        return canonical(spec.key, _datetime(str(raw)))
    return canonical(spec.key, raw)


def _datetime(text: str) -> datetime:
    """Salesforce's ``2026-03-19T08:58:32.000+0000`` (and ISO variants) → aware datetime."""
    cleaned = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text.replace("Z", "+00:00"))
    return datetime.fromisoformat(cleaned)


def _soql_datetime(moment: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _outgoing(spec: FieldSpec, value: FieldValue) -> Any:
    """Canonical text → what Salesforce expects in the field."""
    if value is None:
        return None
    if spec.value in (ValueKind.MONEY, ValueKind.NUMBER):
        return Decimal(str(value))
    if spec.value is ValueKind.FRACTION:
        return Decimal(str(value)) * 100  # Salesforce Percent fields hold 12.5 for 12.5 %
    return str(value)


def _named_fields(api: SalesforceApi, wanted: list[str]) -> list[str]:
    """The Opportunity fields the plans name, each checked to exist and be readable (a
    field added since the cached describe is found by reading it again, once)."""
    missing = missing_after_refresh(
        wanted, lambda refresh: api.fields_of("Opportunity", refresh=refresh)
    )
    if missing:
        raise CrmConfigError(
            f"Salesforce: the plans name the Opportunity field {', '.join(missing)} (in a "
            "filter, or a payment holdback's paid_on), which this org does not have or the "
            "integration user cannot read: check the API names in spm.yaml"
        )
    return wanted


def column_text(value: Any) -> str:
    """A deal column as a filter compares it: checkboxes as true/false, numbers exactly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)
