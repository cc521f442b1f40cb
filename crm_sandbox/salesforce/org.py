"""One emulated Salesforce org: its records, its custom fields, SOQL and the rules for changes.

All state sits behind one re-entrant lock. Every change stamps ``SystemModstamp``
with the org's clock in whole seconds, as Salesforce does (so changes in the
same second share a stamp and incremental readers must read inclusively), never
earlier than any stamp before it, re-derives ``IsWon``/``IsClosed`` from the stage, and tells
the listeners (the outbound-message dispatcher) which opportunities changed.
"""

from __future__ import annotations

import itertools
import json
import operator
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from crm_sandbox.salesforce import soql
from crm_sandbox.salesforce.layouts import (
    LAYOUTS,
    PROFILES,
    checked_layout,
    profile_object,
    seeded_layout,
    tooling_layout_objects,
)
from crm_sandbox.salesforce.schema import (
    ID_TYPES,
    NUMBER_TYPES,
    STAGE_LABELS,
    TASK_CLOSED,
    TEXT_TYPES,
    FieldDef,
    ObjectDef,
    ValueError_,
    build_objects,
    coerce,
    format_datetime,
    make_id,
    normalise_id,
    tooling_objects,
    wire,
)
from crm_sandbox.salesforce.security import FieldSecurity
from crm_sandbox.seed import OPEN_STAGE_PROBABILITY, SeedOrg

DEFAULT_BATCH = 2000
MIN_BATCH, MAX_BATCH = 200, 2000
COLLECTION_LIMIT = 200
_CURSORS_KEPT = 64

# The stage picklist in pipeline order: (label, won, closed, default probability).
STAGES: tuple[tuple[str, bool, bool, Decimal], ...] = (
    *((STAGE_LABELS[name], False, False, p * 100) for name, p in OPEN_STAGE_PROBABILITY.items()),
    (STAGE_LABELS["won"], True, True, Decimal(100)),
    (STAGE_LABELS["lost"], False, True, Decimal(0)),
)

# Salesforce's custom field types as the Tooling API's Metadata names them → describe types.
_METADATA_TYPES = {
    "Currency": "currency",
    "Percent": "percent",
    "Number": "double",
    "Text": "string",
    "DateTime": "datetime",
    "Date": "date",
    "Checkbox": "boolean",
}
_DEFAULT_PRECISION = {"currency": (18, 2), "percent": (18, 2), "double": (18, 0)}


class SalesforceApiError(Exception):
    """A whole request refused: HTTP status and Salesforce's ``[{message, errorCode}]`` body."""

    def __init__(
        self, status: int, code: str, message: str, fields: Iterable[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields) if fields is not None else None

    def body(self) -> list[dict[str, Any]]:
        error: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            error["fields"] = self.fields
        return [error]


@dataclass
class Record:
    """One row: values by canonical field name, and their JSON text rendered once."""

    sobject: str
    values: dict[str, Any]
    _wire: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def id(self) -> str:
        return str(self.values["Id"])

    def text(self, definition: FieldDef) -> str:
        cached = self._wire.get(definition.name)
        if cached is None:
            cached = wire(definition, self.values.get(definition.name))
            self._wire[definition.name] = cached
        return cached

    def changed(self) -> None:
        self._wire.clear()


@dataclass
class QueryCursor:
    """The rows of a query still to be paged through ``nextRecordsUrl``."""

    sobject: ObjectDef
    fields: tuple[FieldDef, ...]
    rows: list[Record]
    batch: int
    include_deleted: bool


@dataclass(frozen=True)
class Change:
    """A record that changed, for outbound messages."""

    sobject: str
    record_id: str
    source: str  # "api" (a client's write) or "sandbox" (a mutation or the seed)


@dataclass(frozen=True)
class Page:
    """One query answer: JSON text ready to send, and how many records it holds."""

    body: str
    records: int


class Org:
    """A Salesforce org's data and rules, without HTTP."""

    def __init__(
        self,
        seed_org: SeedOrg,
        *,
        multicurrency: bool = False,
        splits: bool = True,
        forecasting: bool = True,
        organization_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.seed = seed_org.seed
        self.lock = threading.RLock()
        self._clock = clock
        self._last_ms = 0
        # A real org holds no stamps from the future: seeded changes after this moment
        # (deals closing later this year) are stamped now.
        self.started = datetime.fromtimestamp(int(clock()), tz=UTC)
        self.organization_id = organization_id or make_id("00D", self.seed, 1)
        self.objects = build_objects(
            tuple(label for label, *_ in STAGES),
            multicurrency=multicurrency,
            splits=splits,
            forecasting=forecasting,
        )
        self.objects["Profile"] = profile_object()
        self.objects["User"].add(
            FieldDef("ProfileId", "reference", "Profile ID", length=18, reference_to=("Profile",))
        )
        self.tooling = tooling_objects() | tooling_layout_objects()
        self.records: dict[str, dict[str, Record]] = {name: {} for name in self.objects}
        self.tooling_records: dict[str, dict[str, Record]] = {name: {} for name in self.tooling}
        self._counters: dict[str, itertools.count[int]] = {}
        self._cursors: OrderedDict[str, QueryCursor] = OrderedDict()
        self._cursor_ids = itertools.count(1)
        self.listeners: list[Callable[[list[Change]], None]] = []
        self.stage_outcome = {label: (won, closed) for label, won, closed, _ in STAGES}
        self.security = FieldSecurity(self.records, lambda: self.integration_user_id)
        self._seed(seed_org)

    # -- ids, clock, seeding -------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        counter = self._counters.setdefault(prefix, itertools.count(1))
        return make_id(prefix, self.seed, next(counter))

    def now(self) -> datetime:
        """The org's clock: whole seconds (Salesforce keeps no milliseconds), never going back."""
        with self.lock:
            ms = max(int(self._clock()) * 1000, self._last_ms)
            self._last_ms = ms
        return datetime.fromtimestamp(ms / 1000, tz=UTC)

    def _stamp(self, moment: datetime) -> datetime:
        moment = min(moment, self.started)
        self._last_ms = max(self._last_ms, int(moment.timestamp() * 1000))
        return moment

    def _seed(self, seed_org: SeedOrg) -> None:
        created = datetime(seed_org.year - 1, 1, 1, tzinfo=UTC)
        self._insert(
            "Organization",
            {
                "Id": self.organization_id,
                "Name": "Acme Sandbox",
                "IsSandbox": True,
                "OrganizationType": "Enterprise Edition",
            },
            created,
        )
        for order, (label, won, closed, probability) in enumerate(STAGES, start=1):
            self._insert(
                "OpportunityStage",
                {
                    "MasterLabel": label,
                    "ApiName": label,
                    "IsActive": True,
                    "IsWon": won,
                    "IsClosed": closed,
                    "DefaultProbability": probability,
                    "SortOrder": order,
                },
                created,
            )
        user_ids = [self.new_id("005") for _ in seed_org.reps]
        self.user_ids = user_ids
        for rep, user_id in zip(seed_org.reps, user_ids, strict=True):
            self._insert(
                "User",
                {
                    "Id": user_id,
                    "Username": rep.email.replace("@acme.example", "@acme.example.sandbox"),
                    "Name": rep.name,
                    "FirstName": rep.first_name,
                    "LastName": rep.last_name,
                    "Email": rep.email,
                    "IsActive": rep.active,
                    "ManagerId": None if rep.manager_index is None else user_ids[rep.manager_index],
                    "EmployeeNumber": f"E{10_000 + rep.index}",
                },
                rep.created_at,
            )
        # The user an integration's session acts as: what our writes are stamped with.
        self.integration_user_id = self.new_id("005")
        self._insert(
            "User",
            {
                "Id": self.integration_user_id,
                "Username": "spm-integration@acme.example.sandbox",
                "Name": "SPM Integration",
                "FirstName": "SPM",
                "LastName": "Integration",
                "Email": "spm-integration@acme.example",
                "IsActive": True,
                "ManagerId": None,
            },
            created,
        )
        self._seed_profiles(created)
        self.deal_ids: list[str] = []
        has_splits = "OpportunitySplit" in self.objects
        for deal in seed_org.deals:
            deal_id = self.new_id("006")
            self.deal_ids.append(deal_id)
            label = STAGE_LABELS[deal.stage]
            row = self._insert(
                "Opportunity",
                {
                    "Id": deal_id,
                    "Name": deal.name,
                    "OwnerId": user_ids[deal.owner_index],
                    "Amount": deal.amount,
                    "CloseDate": deal.close_date,
                    "StageName": label,
                    "Type": deal.type,
                },
                deal.created_at,
            )
            row.values["SystemModstamp"] = row.values["LastModifiedDate"] = self._stamp(
                deal.modified_at
            )
            if has_splits:
                for split in deal.splits:
                    self._insert(
                        "OpportunitySplit",
                        {
                            "OpportunityId": deal_id,
                            "SplitOwnerId": user_ids[split.rep_index],
                            "SplitPercentage": split.percent,
                        },
                        deal.modified_at,
                    )
        self._seed_goals(seed_org)
        if "CurrencyType" in self.objects:
            self._seed_rates(seed_org.year, created)

    def _seed_rates(self, year: int, created: datetime) -> None:
        """USD is the corporate currency; EUR and GBP have rates, EUR's moving mid-year.
        (Rates whose inverse is exact, so that a test's rates file can say the same.)"""
        for code, rate in (("USD", "1"), ("EUR", "0.625"), ("GBP", "0.5")):
            self._insert("CurrencyType", {
                "IsoCode": code, "ConversionRate": Decimal(rate), "DecimalPlaces": 2,
                "IsActive": True, "IsCorporate": code == "USD"}, created)  # fmt: skip
        for code, start, rate in (
            ("USD", date(1, 1, 1), "1"),
            ("EUR", date(1, 1, 1), "0.8"),  # 1.25 USD
            ("EUR", date(year, 7, 1), "0.625"),  # 1.60 USD
            ("GBP", date(1, 1, 1), "0.5"),  # 2.00 USD
        ):
            self.add_dated_rate(code, start, Decimal(rate), created)

    def add_dated_rate(self, code: str, start: date, rate: Decimal, at: datetime) -> None:
        """An admin adds a dated rate: the rate before it now ends where it starts."""
        with self.lock:
            self._insert("DatedConversionRate", {
                "IsoCode": code, "ConversionRate": rate, "StartDate": start}, at)  # fmt: skip
            rows = sorted(
                (r for r in self.records["DatedConversionRate"].values()
                 if r.values["IsoCode"] == code),
                key=lambda r: r.values["StartDate"],
            )  # fmt: skip
            for before, after in zip(rows, [*rows[1:], None], strict=True):
                before.values["NextStartDate"] = after.values["StartDate"] if after else None

    def _seed_profiles(self, created: datetime) -> None:
        """Profiles (reps are standard users, the integration user an administrator), and
        the page layouts each profile sees."""
        profiles = {name: self._insert("Profile", {"Name": name}, created).id for name in PROFILES}
        for user_id, record in self.records["User"].items():
            admin = user_id == self.integration_user_id
            record.values["ProfileId"] = profiles[PROFILES[0] if admin else PROFILES[1]]
        for name, (sobject, assigned) in LAYOUTS.items():
            layout_id = self.new_id("00h")
            metadata = seeded_layout(sobject, name)
            self.tooling_records["Layout"][layout_id] = Record(
                "Layout",
                {
                    "Id": layout_id,
                    "Name": name,
                    "TableEnumOrId": sobject,
                    "FullName": metadata["fullName"],
                    "Metadata": metadata,
                },
            )
            for profile in assigned:
                assignment_id = self.new_id("01G")
                self.tooling_records["ProfileLayout"][assignment_id] = Record(
                    "ProfileLayout",
                    {
                        "Id": assignment_id,
                        "LayoutId": layout_id,
                        "ProfileId": profiles[profile],
                        "TableEnumOrId": sobject,
                        "RecordTypeId": None,
                    },
                )

    def update_layout(self, layout_id: str, body: Mapping[str, Any]) -> None:
        """Replace a layout's Metadata (Tooling API PATCH): checked first, all or nothing."""
        with self.lock:
            record = self.tooling_records["Layout"].get(normalise_id(layout_id) or "")
            if record is None:
                raise SalesforceApiError(404, "NOT_FOUND", "The requested resource does not exist")
            unknown = set(body) - {"Metadata", "FullName"}
            if unknown or "Metadata" not in body:
                raise SalesforceApiError(
                    400,
                    "INVALID_FIELD",
                    f"Unable to update: {', '.join(sorted(unknown)) or 'Metadata is required'}",
                )
            definition = self.objects[str(record.values["TableEnumOrId"])]
            try:
                metadata = checked_layout(definition, body["Metadata"])
            except ValueError_ as error:
                raise SalesforceApiError(400, error.code, error.message) from None
            metadata["fullName"] = record.values["FullName"]
            record.values["Metadata"] = metadata
            record.changed()

    def _seed_goals(self, seed_org: SeedOrg) -> None:
        """Quotas (an amount and a quantity forecast per rep and month) and leads."""
        if "ForecastingQuota" in self.objects:
            for quota in seed_org.quotas:
                owner = self.user_ids[quota.rep_index]
                at = datetime.combine(quota.month, datetime.min.time(), tzinfo=UTC)
                for is_quantity in (False, True):
                    self._insert(
                        "ForecastingQuota",
                        {
                            "QuotaOwnerId": owner,
                            "StartDate": quota.month,
                            "QuotaAmount": None if is_quantity else quota.amount,
                            "QuotaQuantity": Decimal(quota.quantity) if is_quantity else None,
                            "IsQuantity": is_quantity,
                            "ForecastingTypeId": "0Db000000000002" if is_quantity
                            else "0Db000000000001",
                        },
                        at - timedelta(days=30),
                    )  # fmt: skip
        for lead in seed_org.leads:
            if lead.created_at > self.started:
                continue  # not created yet
            self._insert(
                "Lead",
                {
                    "OwnerId": self.user_ids[lead.owner_index],
                    "LastName": f"Prospect {lead.index + 1}",
                    "Company": f"Prospect Co {lead.index + 1}",
                    "Status": "Closed - Converted" if lead.converted else "Working - Contacted",
                    "IsConverted": lead.converted,
                    "ConvertedDate": lead.created_at.date() + timedelta(days=7)
                    if lead.converted
                    else None,
                },
                lead.created_at,
            )

    def _insert(
        self, sobject: str, values: dict[str, Any], at: datetime, *, seeded: bool = True
    ) -> Record:
        definition = self.objects[sobject]
        row = {name: f.default for name, f in definition.fields.items()}
        if "CurrencyIsoCode" in row:
            row["CurrencyIsoCode"] = "USD"  # the corporate currency of a multi-currency org
        row.update(values)
        row.setdefault("Id", None)
        if row["Id"] is None:
            row["Id"] = self.new_id(definition.key_prefix)
        row["IsDeleted"] = False
        # Seeded history may lie in the future (deals closing later this year) and is
        # stamped with the start; a record created while the org runs gets the real now.
        stamp = self._stamp(at) if seeded else at
        row["CreatedDate"] = row["LastModifiedDate"] = row["SystemModstamp"] = stamp
        if "LastModifiedById" in definition.fields:
            row["LastModifiedById"] = row.get("OwnerId")
        for name, f in definition.fields.items():
            if f.type == "boolean" and row.get(name) is None:
                row[name] = False
        record = Record(sobject, row)
        self._derive(record)
        self.records[sobject][record.id] = record
        return record

    def _derive(self, record: Record) -> None:
        values = record.values
        if record.sobject == "Opportunity":
            won, closed = self.stage_outcome.get(values.get("StageName") or "", (False, False))
            values["IsWon"], values["IsClosed"] = won, closed
            values["Probability"] = next(
                (p for label, _, _, p in STAGES if label == values.get("StageName")),
                values.get("Probability"),
            )
        elif record.sobject == "Task":
            values["IsClosed"] = values.get("Status") in TASK_CLOSED
        elif record.sobject == "User":
            first, last = values.get("FirstName") or "", values.get("LastName") or ""
            values["Name"] = f"{first} {last}".strip()

    # -- lookups -------------------------------------------------------------------------

    def describe_object(self, name: str, *, tooling: bool = False) -> ObjectDef:
        objects = self.tooling if tooling else self.objects
        for candidate in objects.values():
            if candidate.name.lower() == name.lower():
                return candidate
        raise SalesforceApiError(
            404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{name}'"
        )

    def get(self, sobject: str, record_id: str) -> Record:
        normal = normalise_id(record_id)
        record = self.records[sobject].get(normal or "")
        if record is None or record.values.get("IsDeleted"):
            raise SalesforceApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return record

    def opportunity(self, deal_id: str) -> Record:
        return self.get("Opportunity", deal_id)

    # -- custom fields (Tooling API) -----------------------------------------------------

    def create_custom_field(self, body: Mapping[str, Any]) -> str:
        full_name = str(body.get("FullName") or "")
        metadata = body.get("Metadata")
        if "." not in full_name or not isinstance(metadata, Mapping):
            raise SalesforceApiError(
                400, "FIELD_INTEGRITY_EXCEPTION", "FullName and Metadata are required"
            )
        object_name, field_name = full_name.split(".", 1)
        target = self.objects.get(object_name)
        if target is None:
            raise SalesforceApiError(
                400, "FIELD_INTEGRITY_EXCEPTION", f"Entity {object_name} not found"
            )
        if not field_name.endswith("__c") or not field_name[:-3].replace("_", "").isalnum():
            raise SalesforceApiError(
                400,
                "INVALID_FIELD",
                f"The field name provided, {field_name}, must end with __c and hold only "
                "letters, digits and underscores",
            )
        kind = _METADATA_TYPES.get(str(metadata.get("type")))
        if kind is None:
            raise SalesforceApiError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                f"Unsupported field type: {metadata.get('type')!r}",
                ["Metadata"],
            )
        label = str(metadata.get("label") or "")
        if not label:
            raise SalesforceApiError(
                400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Label]", ["Label"]
            )
        with self.lock:
            if target.field(field_name) is not None:
                raise SalesforceApiError(
                    400,
                    "DUPLICATE_DEVELOPER_NAME",
                    f"There's already a field named {field_name[:-3]} on {object_name}.",
                )
            precision, scale = _DEFAULT_PRECISION.get(kind, (0, 0))
            length = int(metadata.get("length") or 0) if kind == "string" else 0
            if kind == "string" and not 1 <= length <= 255:
                raise SalesforceApiError(
                    400, "FIELD_INTEGRITY_EXCEPTION", "Length: a Text field needs 1 to 255"
                )
            definition = FieldDef(
                field_name,
                kind,
                label,
                custom=True,
                length=length,
                precision=int(str(metadata.get("precision") or precision)),
                scale=int(
                    str(metadata.get("scale") if metadata.get("scale") is not None else scale)
                ),
            )
            target.add(definition)
            self.security.guard(object_name, field_name)
            for record in self.records[object_name].values():
                record.values.setdefault(field_name, False if kind == "boolean" else None)
                record.changed()
            field_id = self.new_id("00N")
            now = self.now()
            self.tooling_records["CustomField"][field_id] = Record(
                "CustomField",
                {
                    "Id": field_id,
                    "TableEnumOrId": object_name,
                    "DeveloperName": field_name[:-3],
                    "NamespacePrefix": None,
                    "ManageableState": "unmanaged",
                    "FullName": full_name,
                    "Metadata": dict(metadata),
                    "CreatedDate": now,
                    "LastModifiedDate": now,
                },
            )
        return field_id

    # -- writes ----------------------------------------------------------------------------

    def _values_for(
        self, definition: ObjectDef, body: Mapping[str, Any], *, creating: bool
    ) -> dict[str, Any]:
        """A client's field values, checked and coerced; raises per-record errors."""
        values: dict[str, Any] = {}
        refused: list[str] = []
        access = self.security.access(definition.name)
        for name, raw in body.items():
            if (name in ("attributes", "Id", "id") and not creating) or name == "attributes":
                continue
            f = definition.field(name)
            if f is None or not access(f.name)[0]:  # a field the user cannot read: no such field
                raise SalesforceApiError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{name}' on sobject of type {definition.name}",
                )
            if not (f.createable if creating else f.updateable) or not access(f.name)[1]:
                refused.append(f.name)
                continue
            values[f.name] = coerce(f, raw)
        if refused:
            raise ValueError_(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(refused)}. Please check the "
                "security settings of this field and verify that it is read/write for your "
                "profile or permission set.",
            )
        return values

    def update(
        self,
        sobject: str,
        record_id: str,
        body: Mapping[str, Any],
        *,
        source: str = "api",
        locked: Callable[[str], bool] = lambda _id: False,
    ) -> Record:
        """Change one record or raise :class:`ValueError_` / :class:`SalesforceApiError`."""
        definition = self.objects[sobject]
        normal = normalise_id(record_id)
        if normal is None:
            raise ValueError_("MALFORMED_ID", f"malformed id {record_id}")
        with self.lock:
            record = self.records[sobject].get(normal)
            if record is None:
                raise ValueError_(
                    "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {record_id}"
                )
            if record.values.get("IsDeleted"):
                raise ValueError_("ENTITY_IS_DELETED", "entity is deleted")
            values = self._values_for(definition, body, creating=False)
            if sobject == "FieldPermissions":
                self.security.check_grant(self.objects, {**record.values, **values})
            if locked(normal):
                raise ValueError_(
                    "UNABLE_TO_LOCK_ROW",
                    f"unable to obtain exclusive access to this record or 1 records: {normal}",
                )
            self._check_references(definition, values)
            self._check_owner(sobject, values)
            record.values.update(values)
            self._touch(record, source)
        self._announce([Change(sobject, normal, source)])
        return record

    def create(self, sobject: str, body: Mapping[str, Any], *, source: str = "api") -> Record:
        definition = self.objects[sobject]
        with self.lock:
            values = self._values_for(definition, body, creating=True)
            if "OwnerId" in definition.fields and sobject != "Opportunity":
                values.setdefault("OwnerId", self.integration_user_id)  # the caller owns it
            missing = [
                f.name
                for f in definition.fields.values()
                if not f.nillable
                and f.createable
                and f.type != "boolean"
                and f.default is None
                and f.name not in values
            ]
            if missing:
                raise ValueError_(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                )
            self._check_references(definition, values)
            self._check_unique(definition, values)
            self._check_owner(sobject, values)
            if sobject == "FieldPermissions":
                self.security.check_grant(self.objects, values)
            elif sobject == "PermissionSetAssignment":
                self.security.check_assignment(values)
            record = self._insert(sobject, values, self.now(), seeded=False)
            self._modified_by(record, source)
        self._announce([Change(sobject, record.id, source)])
        return record

    def delete(self, sobject: str, record_id: str, *, source: str = "api") -> None:
        with self.lock:
            record = self.get(sobject, record_id)
            record.values["IsDeleted"] = True
            self._touch(record, source)
        self._announce([Change(sobject, record.id, source)])

    def _modified_by(self, record: Record, source: str) -> None:
        """An API write is the integration user's; a sandbox mutation is the owner's own edit."""
        if "LastModifiedById" in record.values:
            by = self.integration_user_id if source == "api" else record.values.get("OwnerId")
            record.values["LastModifiedById"] = by

    def _touch(self, record: Record, source: str = "api") -> None:
        self._modified_by(record, source)
        self._derive(record)
        stamp = self.now()
        record.values["SystemModstamp"] = record.values["LastModifiedDate"] = stamp
        record.changed()

    def _check_references(self, definition: ObjectDef, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            f = definition.fields[name]
            if f.type != "reference" or value is None:
                continue
            target = f.reference_to[0] if f.reference_to else ""
            if target in self.records and value not in self.records[target]:
                raise ValueError_(
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"{f.label}: id value of incorrect type: {value}",
                )

    def _check_owner(self, sobject: str, values: Mapping[str, Any]) -> None:
        """A task cannot be assigned to a user who is no longer active."""
        owner = values.get("OwnerId")
        if sobject != "Task" or owner is None:
            return
        user = self.records["User"].get(owner)
        if user is not None and not user.values.get("IsActive"):
            raise ValueError_(
                "INACTIVE_OWNER_OR_USER", "operation performed with inactive user: " + owner
            )

    def _check_unique(self, definition: ObjectDef, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            if not definition.fields[name].unique:
                continue
            for other in self.records[definition.name].values():
                if other.values.get(name) == value and not other.values.get("IsDeleted"):
                    raise ValueError_(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {name} duplicates value on record with id: "
                        f"{other.id}",
                    )

    def _announce(self, changes: list[Change]) -> None:
        for listener in list(self.listeners):
            listener(changes)

    # -- queries ----------------------------------------------------------------------------

    def query(self, text: str, *, include_deleted: bool, batch: int, tooling: bool = False) -> Page:
        """Run SOQL and answer its first page (``nextRecordsUrl`` points at the rest)."""
        try:
            parsed = soql.parse(text)
        except soql.SoqlError as error:
            raise SalesforceApiError(400, error.code, error.render(text)) from None
        objects = self.tooling if tooling else self.objects
        definition = next(
            (o for o in objects.values() if o.name.lower() == parsed.sobject.lower()), None
        )
        if definition is None:
            message = (
                f"\n{text}\n{' ' * parsed.sobject_position}^\nERROR at Row:1:Column:"
                f"{parsed.sobject_position + 1}\nsObject type '{parsed.sobject}' is not "
                "supported. If you are attempting to use a custom object, be sure to append "
                "the '__c' after the entity name. Please reference your WSDL or the describe "
                "call for the appropriate names."
            )
            raise SalesforceApiError(400, "INVALID_TYPE", message)
        fields = tuple(self._field(definition, ref, text) for ref in parsed.fields)
        keep = self._predicate(definition, parsed.where, text)
        with self.lock:
            store = (self.tooling_records if tooling else self.records)[definition.name]
            rows = [
                r
                for r in store.values()
                if (include_deleted or not r.values.get("IsDeleted")) and keep(r.values)
            ]
            for key in reversed(parsed.order_by):
                rows = _sorted(rows, self._field(definition, key.field, text), key)
            if parsed.offset:
                rows = rows[parsed.offset :]
            if parsed.limit is not None:
                rows = rows[: parsed.limit]
            if parsed.count:
                return Page(json.dumps({"totalSize": len(rows), "done": True, "records": []}), 0)
            if len(rows) > 1 and definition.single_row_fields & {f.name for f in fields}:
                raise SalesforceApiError(
                    400,
                    "MALFORMED_QUERY",
                    "When retrieving results with Metadata or FullName fields, the query "
                    "qualificiations must specify no more than one row for retrieval. "
                    f"Result size: {len(rows)}",
                )
            cursor = QueryCursor(definition, fields, rows, batch, include_deleted)
            return self._page(cursor, 0, tooling)

    def more(self, locator: str, *, tooling: bool = False) -> Page:
        """The page of an earlier query that ``locator`` (``01g…-2000``) points at."""
        cursor_id, _, offset_text = locator.rpartition("-")
        with self.lock:
            cursor = self._cursors.get(cursor_id)
            if cursor is None or not offset_text.isdigit():
                raise SalesforceApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return self._page(cursor, int(offset_text), tooling, cursor_id)

    def _page(
        self, cursor: QueryCursor, offset: int, tooling: bool, cursor_id: str | None = None
    ) -> Page:
        rows = cursor.rows[offset : offset + cursor.batch]
        end = offset + len(rows)
        done = end >= len(cursor.rows)
        version = self.api_version
        base = f"/services/data/v{version}/{'tooling/' if tooling else ''}"
        parts: list[str] = []
        name = cursor.sobject.name
        for row in rows:
            url = f"{base}sobjects/{name}/{row.id}"
            cells = [f'"attributes":{{"type":"{name}","url":"{url}"}}']
            cells += [f'"{f.name}":{row.text(f)}' for f in cursor.fields]
            parts.append("{" + ",".join(cells) + "}")
        head = f'{{"totalSize":{len(cursor.rows)},"done":{"true" if done else "false"}'
        if done:
            if cursor_id is not None:
                self._cursors.pop(cursor_id, None)
        else:
            if cursor_id is None:
                cursor_id = f"01g{self.seed % 100:02d}00000{next(self._cursor_ids):07d}"
                self._cursors[cursor_id] = cursor
                while len(self._cursors) > _CURSORS_KEPT:
                    self._cursors.popitem(last=False)
            kind = "queryAll" if cursor.include_deleted else "query"
            head += f',"nextRecordsUrl":"{base}{kind}/{cursor_id}-{end}"'
        return Page(head + ',"records":[' + ",".join(parts) + "]}", len(rows))

    api_version = "62.0"  # set per request by the app, for URLs in answers

    def _field(self, definition: ObjectDef, ref: soql.FieldRef, text: str) -> FieldDef:
        found = definition.field(ref.name)
        readable = self.security.access(definition.name)
        if found is not None and not definition.tooling and not readable(found.name)[0]:
            found = None  # without Read, the field does not exist for this user
        if found is None:
            raise SalesforceApiError(
                400,
                "INVALID_FIELD",
                f"\n{text}\n{' ' * ref.position}^\nERROR at Row:1:Column:{ref.position + 1}\n"
                f"No such column '{ref.name}' on entity '{definition.name}'. If you are "
                "attempting to use a custom field, be sure to append the '__c' after the custom "
                "field name. Please reference your WSDL or the describe call for the appropriate "
                "names.",
            )
        return found

    def _predicate(
        self, definition: ObjectDef, condition: soql.Condition | None, text: str
    ) -> Callable[[Mapping[str, Any]], bool]:
        if condition is None:
            return lambda _values: True
        if isinstance(condition, soql.BoolOp):
            tests = [self._predicate(definition, item, text) for item in condition.items]
            if condition.op == "AND":
                return lambda values: all(test(values) for test in tests)
            return lambda values: any(test(values) for test in tests)
        if isinstance(condition, soql.Not):
            inner = self._predicate(definition, condition.item, text)
            return lambda values: not inner(values)
        f = self._field(definition, condition.field, text)
        if not f.filterable:
            raise SalesforceApiError(
                400,
                "INVALID_FIELD",
                f"field '{f.name}' can not be filtered in a query call",
            )
        literals = [_literal(f, value, text) for value in condition.values]
        return _comparison(f, condition.op, literals)

    # -- views for tests, the admin endpoint and the demo ---------------------------------

    def rows(self, sobject: str, *, include_deleted: bool = False) -> Iterator[Mapping[str, Any]]:
        with self.lock:
            snapshot = list(self.records[sobject].values())
        for record in snapshot:
            if include_deleted or not record.values.get("IsDeleted"):
                yield dict(record.values)


def _literal(f: FieldDef, value: soql.Value, text: str) -> Any:
    """A SOQL literal as the field's Python value, refusing type mismatches as Salesforce does."""
    if value.kind == "null":
        return None
    kind = f.type

    def refuse(expected: str) -> SalesforceApiError:
        return SalesforceApiError(
            400,
            "INVALID_FIELD",
            f"\n{text}\n{' ' * value.position}^\nERROR at Row:1:Column:{value.position + 1}\n"
            f"value of filter criterion for field '{f.name}' must be of type {expected} and "
            "should not be enclosed in quotes"
            if expected not in ("string", "id")
            else f"\n{text}\nERROR at Row:1:Column:{value.position + 1}\n"
            f"invalid value for field '{f.name}'",
        )

    if kind == "boolean":
        if value.kind != "boolean":
            raise refuse("boolean")
        return value.value
    if kind in NUMBER_TYPES:
        if value.kind != "number":
            raise refuse("double" if kind != "int" else "int")
        return value.value
    if kind == "date":
        if value.kind != "date":
            raise refuse("date")
        return value.value
    if kind == "datetime":
        if value.kind != "datetime":
            raise refuse("dateTime")
        return value.value
    if value.kind != "string":
        raise refuse("string")
    assert isinstance(value.value, str)
    if kind in ID_TYPES:
        normal = normalise_id(value.value)
        if normal is None:
            raise SalesforceApiError(
                400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {value.value}"
            )
        return normal
    return value.value.lower()


def _comparison(f: FieldDef, op: str, literals: list[Any]) -> Callable[[Mapping[str, Any]], bool]:
    name = f.name
    folded = f.type in TEXT_TYPES and f.type not in ID_TYPES  # SOQL text compares ignore case

    def current(values: Mapping[str, Any]) -> Any:
        found = values.get(name)
        return found.lower() if folded and isinstance(found, str) else found

    if op in ("IN", "NOT IN"):
        members = set(literals)
        if op == "IN":
            return lambda values: current(values) in members
        return lambda values: current(values) not in members
    (literal,) = literals
    if op == "LIKE":
        pattern = _like(str(literal or ""))
        return lambda values: (v := current(values)) is not None and bool(pattern(str(v)))
    if op == "=":
        return lambda values: current(values) == literal
    if op == "!=":
        return lambda values: current(values) != literal
    if literal is None:
        return lambda _values: False
    compare: Callable[[Any, Any], bool] = {
        "<": operator.lt,
        ">": operator.gt,
        "<=": operator.le,
        ">=": operator.ge,
    }[op]
    return lambda values: (v := current(values)) is not None and compare(v, literal)


def _like(pattern: str) -> Callable[[str], bool]:
    regex = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            regex += re.escape(pattern[index + 1])
            index += 2
            continue
        regex += ".*" if char == "%" else "." if char == "_" else re.escape(char)
        index += 1
    compiled = re.compile(regex, re.IGNORECASE | re.DOTALL)
    return lambda text: compiled.fullmatch(text) is not None


def _sorted(rows: list[Record], f: FieldDef, key: soql.OrderKey) -> list[Record]:
    name = f.name

    def value(record: Record) -> Any:
        found = record.values.get(name)
        return found.lower() if isinstance(found, str) and f.type not in ID_TYPES else found

    present = [r for r in rows if r.values.get(name) is not None]
    missing = [r for r in rows if r.values.get(name) is None]
    present.sort(key=value, reverse=key.descending)
    return missing + present if key.nulls_first else present + missing


def soap_value(f: FieldDef, value: Any) -> str:
    """A value as text inside an outbound message's sObject element."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_datetime(value).replace("+0000", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)
