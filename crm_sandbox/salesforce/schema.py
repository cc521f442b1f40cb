"""The emulated objects and fields: describe metadata, ids, and values on the wire.

Values are held as Python values (``str``, ``Decimal``, ``date``, aware UTC
``datetime``, ``bool``, ``int``, ``None``) and turned into Salesforce's JSON
text once per write (see :func:`wire`), so query pages are assembled from
ready-made fragments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_TEXT = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")

TEXT_TYPES = frozenset(
    {"string", "combobox", "picklist", "email", "textarea", "id", "reference", "phone", "url"}
)
NUMBER_TYPES = frozenset({"currency", "percent", "double", "int"})
ID_TYPES = frozenset({"id", "reference"})


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits))


def id18(id15: str) -> str:
    """Salesforce's case-safe suffix: one letter per 5 characters, a bit per capital."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _SUFFIX[bits]
    return id15 + suffix


def make_id(prefix: str, org_seed: int, number: int) -> str:
    """An 18-character id: key prefix, a two-character pod from the seed, a counter."""
    return id18(prefix + _base62(org_seed % 3844, 2) + "0" + _base62(number, 9))


def normalise_id(text: str) -> str | None:
    """A 15- or 18-character id as its 18-character form; None when it is not an id."""
    if not _ID_TEXT.match(text):
        return None
    return id18(text[:15]) if len(text) == 18 or len(text) == 15 else None


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str  # Salesforce describe type: id, string, currency, date, datetime, ...
    label: str
    custom: bool = False
    updateable: bool = True
    createable: bool = True
    nillable: bool = True
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    reference_to: tuple[str, ...] = ()
    picklist: tuple[str, ...] = ()
    filterable: bool = True
    sortable: bool = True
    unique: bool = False
    default: Any = None

    @property
    def soap_type(self) -> str:
        return {
            "id": "tns:ID",
            "reference": "tns:ID",
            "boolean": "xsd:boolean",
            "currency": "xsd:double",
            "percent": "xsd:double",
            "double": "xsd:double",
            "int": "xsd:int",
            "date": "xsd:date",
            "datetime": "xsd:dateTime",
        }.get(self.type, "xsd:string")

    def describe(self) -> dict[str, Any]:
        text = self.type in TEXT_TYPES
        return {
            "aggregatable": self.type not in ("textarea",),
            "autoNumber": False,
            "byteLength": self.length * 3 if text else 0,
            "calculated": False,
            "caseSensitive": False,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": None,
            "defaultedOnCreate": self.type == "boolean" or self.name in _SYSTEM_FIELDS,
            "digits": self.digits,
            "externalId": False,
            "filterable": self.filterable,
            "groupable": self.type not in NUMBER_TYPES,
            "idLookup": self.type == "id",
            "label": self.label,
            "length": self.length if text else 0,
            "name": self.name,
            "nameField": self.name == "Name",
            "nillable": self.nillable,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
                for v in self.picklist
            ],
            "precision": self.precision,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.name[:-2] if self.type == "reference" else None,
            "restrictedPicklist": bool(self.picklist),
            "scale": self.scale,
            "soapType": self.soap_type,
            "sortable": self.sortable,
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
        }


_SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")


def _system(prefix_fields: list[FieldDef]) -> list[FieldDef]:
    return [
        FieldDef("Id", "id", "Record ID", updateable=False, createable=False, nillable=False,
                 length=18),
        *prefix_fields,
        FieldDef("IsDeleted", "boolean", "Deleted", updateable=False, createable=False,
                 nillable=False),
        FieldDef("CreatedDate", "datetime", "Created Date", updateable=False, createable=False,
                 nillable=False),
        FieldDef("LastModifiedDate", "datetime", "Last Modified Date", updateable=False,
                 createable=False, nillable=False),
        FieldDef("SystemModstamp", "datetime", "System Modstamp", updateable=False,
                 createable=False, nillable=False),
    ]  # fmt: skip


def _text(name: str, label: str, length: int = 255, **extra: Any) -> FieldDef:
    return FieldDef(name, "string", label, length=length, **extra)


def _ref(name: str, label: str, to: str, **extra: Any) -> FieldDef:
    return FieldDef(name, "reference", label, length=18, reference_to=(to,), **extra)


@dataclass
class ObjectDef:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, FieldDef]  # by name, in describe order
    tooling: bool = False
    # Fields selectable only when the result holds at most one record (Tooling API).
    single_row_fields: frozenset[str] = frozenset()
    by_lower: dict[str, FieldDef] = field(init=False)

    def __post_init__(self) -> None:
        self.by_lower = {name.lower(): f for name, f in self.fields.items()}

    def add(self, definition: FieldDef) -> None:
        self.fields[definition.name] = definition
        self.by_lower[definition.name.lower()] = definition

    def field(self, name: str) -> FieldDef | None:
        return self.by_lower.get(name.lower())

    def describe(
        self, api_version: str, access: Callable[[str], tuple[bool, bool]] | None = None
    ) -> dict[str, Any]:
        """The describe answer; ``access`` (read, edit) by field hides and locks fields."""
        base = f"/services/data/v{api_version}/{'tooling/' if self.tooling else ''}sobjects"
        fields = []
        for f in self.fields.values():
            read, edit = access(f.name) if access is not None else (True, True)
            if not read:
                continue
            described = f.describe()
            if not edit:
                described["createable"] = described["updateable"] = False
            fields.append(described)
        return {
            **self.summary(api_version),
            "childRelationships": [],
            "fields": fields,
            "recordTypeInfos": [],
            "urls": {
                "describe": f"{base}/{self.name}/describe",
                "rowTemplate": f"{base}/{self.name}/{{ID}}",
                "sobject": f"{base}/{self.name}",
            },
        }

    def summary(self, api_version: str) -> dict[str, Any]:
        base = f"/services/data/v{api_version}/{'tooling/' if self.tooling else ''}sobjects"
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": False,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "searchable": not self.tooling,
            "urls": {
                "describe": f"{base}/{self.name}/describe",
                "rowTemplate": f"{base}/{self.name}/{{ID}}",
                "sobject": f"{base}/{self.name}",
            },
        }


STAGE_LABELS = {
    "prospecting": "Prospecting",
    "qualification": "Qualification",
    "proposal": "Proposal/Price Quote",
    "negotiation": "Negotiation/Review",
    "won": "Closed Won",
    "lost": "Closed Lost",
}
CURRENCIES = ("USD", "EUR", "GBP")


def currency_objects() -> dict[str, ObjectDef]:
    """A multi-currency org's rates: ``CurrencyType`` (the corporate currency at 1, each
    other currency's units per corporate unit) and, with advanced currency management,
    ``DatedConversionRate`` (each rate from its start date to the next one's)."""
    rate = FieldDef("ConversionRate", "double", "Conversion Rate", precision=18, scale=9,
                    nillable=False)  # fmt: skip
    iso = FieldDef("IsoCode", "picklist", "ISO Code", length=3, nillable=False,
                   picklist=CURRENCIES)  # fmt: skip
    currency_type = [
        iso, rate,
        FieldDef("DecimalPlaces", "int", "Decimal Places", digits=9, nillable=False),
        FieldDef("IsActive", "boolean", "Active", nillable=False),
        FieldDef("IsCorporate", "boolean", "Corporate Currency", nillable=False),
    ]  # fmt: skip
    dated = [
        iso, rate,
        FieldDef("StartDate", "date", "Start Date", nillable=False),
        FieldDef("NextStartDate", "date", "Next Start Date", updateable=False,
                 createable=False),
    ]  # fmt: skip
    return {
        "CurrencyType": ObjectDef("CurrencyType", "Currency Type", "Currency Types", "02B",
                                  {f.name: f for f in _system(currency_type)}),
        "DatedConversionRate": ObjectDef(
            "DatedConversionRate", "Dated Conversion Rate", "Dated Conversion Rates", "04w",
            {f.name: f for f in _system(dated)}),
    }  # fmt: skip


def build_objects(
    stage_labels: tuple[str, ...], *, multicurrency: bool, splits: bool, forecasting: bool = True
) -> dict[str, ObjectDef]:
    """Standard objects as a fresh org has them (custom fields are added at run time)."""
    user = ObjectDef(
        "User",
        "User",
        "Users",
        "005",
        {
            f.name: f
            for f in _system(
                [
                    _text("Username", "Username", 80, nillable=False, unique=True),
                    _text("Name", "Full Name", 121, updateable=False, createable=False),
                    _text("FirstName", "First Name", 40),
                    _text("LastName", "Last Name", 80, nillable=False),
                    FieldDef("Email", "email", "Email", length=128, nillable=False),
                    FieldDef("IsActive", "boolean", "Active", nillable=False),
                    _ref("ManagerId", "Manager ID", "User"),
                    _text("EmployeeNumber", "Employee Number", 20),
                ]
            )
        },
    )
    opportunity_fields = [
        _text("Name", "Name", 120, nillable=False),
        _ref("OwnerId", "Owner ID", "User", nillable=False),
        FieldDef("Amount", "currency", "Amount", precision=18, scale=2),
        FieldDef("CloseDate", "date", "Close Date", nillable=False),
        FieldDef("StageName", "picklist", "Stage", length=255, nillable=False,
                 picklist=stage_labels),
        FieldDef("Probability", "percent", "Probability (%)", precision=3, scale=0),
        FieldDef("IsWon", "boolean", "Won", updateable=False, createable=False, nillable=False),
        FieldDef("IsClosed", "boolean", "Closed", updateable=False, createable=False,
                 nillable=False),
        FieldDef("Type", "picklist", "Opportunity Type", length=255,
                 picklist=("New Business", "Existing Business", "Renewal")),
        _ref("LastModifiedById", "Last Modified By ID", "User", updateable=False,
             createable=False),
    ]  # fmt: skip
    if multicurrency:
        opportunity_fields.append(
            FieldDef("CurrencyIsoCode", "picklist", "Opportunity Currency", length=3,
                     nillable=False, picklist=CURRENCIES)
        )  # fmt: skip
    organization = ObjectDef(
        "Organization",
        "Organization",
        "Organizations",
        "00D",
        {
            f.name: f
            for f in _system(
                [
                    _text("Name", "Name", 80, nillable=False, updateable=False),
                    FieldDef("IsSandbox", "boolean", "Is Sandbox", nillable=False),
                    _text("OrganizationType", "Edition", 40, updateable=False),
                ]
            )
        },
    )
    objects = {
        "Organization": organization,
        "User": user,
        "Opportunity": ObjectDef(
            "Opportunity",
            "Opportunity",
            "Opportunities",
            "006",
            {f.name: f for f in _system(opportunity_fields)},
        ),
        "OpportunityStage": ObjectDef(
            "OpportunityStage",
            "Opportunity Stage",
            "Opportunity Stages",
            "01J",
            {
                f.name: f
                for f in _system(
                    [
                        _text("MasterLabel", "Master Label", 255, nillable=False),
                        _text("ApiName", "API Name", 255, nillable=False),
                        FieldDef("IsActive", "boolean", "Active", nillable=False),
                        FieldDef("IsWon", "boolean", "Won", nillable=False),
                        FieldDef("IsClosed", "boolean", "Closed", nillable=False),
                        FieldDef("DefaultProbability", "percent", "Probability", precision=3),
                        FieldDef("SortOrder", "int", "Sort Order", digits=9),
                    ]
                )
            },
        ),
        "PermissionSet": ObjectDef(
            "PermissionSet",
            "Permission Set",
            "Permission Sets",
            "0PS",
            {
                f.name: f
                for f in _system(
                    [
                        _text("Name", "Name", 80, nillable=False, unique=True),
                        _text("Label", "Label", 80, nillable=False),
                        FieldDef("Description", "textarea", "Description", length=255),
                        FieldDef(
                            "IsOwnedByProfile",
                            "boolean",
                            "Is Owned By Profile",
                            updateable=False,
                            createable=False,
                            nillable=False,
                        ),
                    ]
                )
            },
        ),
        "FieldPermissions": ObjectDef(
            "FieldPermissions",
            "Field Permissions",
            "Field Permissions",
            "01k",
            {
                f.name: f
                for f in _system(
                    [
                        _ref(
                            "ParentId",
                            "Parent ID",
                            "PermissionSet",
                            nillable=False,
                            updateable=False,
                        ),
                        FieldDef(
                            "SobjectType",
                            "picklist",
                            "Sobject Type Name",
                            length=40,
                            nillable=False,
                            updateable=False,
                        ),
                        FieldDef(
                            "Field",
                            "picklist",
                            "Field Name",
                            length=255,
                            nillable=False,
                            updateable=False,
                        ),
                        FieldDef("PermissionsRead", "boolean", "Read Permission", nillable=False),
                        FieldDef("PermissionsEdit", "boolean", "Edit Permission", nillable=False),
                    ]
                )
            },
        ),
        "PermissionSetAssignment": ObjectDef(
            "PermissionSetAssignment",
            "Permission Set Assignment",
            "Permission Set Assignments",
            "0Pa",
            {
                f.name: f
                for f in _system(
                    [
                        _ref("AssigneeId", "Assignee ID", "User", nillable=False),
                        _ref(
                            "PermissionSetId", "Permission Set ID", "PermissionSet", nillable=False
                        ),
                    ]
                )
            },
        ),
    }
    if multicurrency:
        objects.update(currency_objects())
    objects["Lead"] = ObjectDef(
        "Lead",
        "Lead",
        "Leads",
        "00Q",
        {
            f.name: f
            for f in _system(
                [
                    _ref("OwnerId", "Owner ID", "User", nillable=False),
                    _text("LastName", "Last Name", 80, nillable=False),
                    _text("Company", "Company", 255, nillable=False),
                    FieldDef("Status", "picklist", "Lead Status", length=255, nillable=False,
                             picklist=("Open - Not Contacted", "Working - Contacted",
                                       "Closed - Converted", "Closed - Not Converted")),
                    FieldDef("IsConverted", "boolean", "Converted", nillable=False),
                    FieldDef("ConvertedDate", "date", "Converted Date"),
                ]
            )
        },
    )  # fmt: skip
    objects["Task"] = task_object()
    if forecasting:
        # Collaborative Forecasts' quotas: one per user, period start and forecast type.
        objects["ForecastingQuota"] = ObjectDef(
            "ForecastingQuota",
            "Forecasting Quota",
            "Forecasting Quotas",
            "0J9",
            {
                f.name: f
                for f in _system(
                    [
                        _ref("QuotaOwnerId", "Quota Owner ID", "User", nillable=False),
                        FieldDef("StartDate", "date", "Start Date", nillable=False),
                        FieldDef("QuotaAmount", "currency", "Amount", precision=18, scale=2),
                        FieldDef("QuotaQuantity", "double", "Quantity", precision=18, scale=2),
                        FieldDef("IsQuantity", "boolean", "Is Quantity", nillable=False),
                        _text("ForecastingTypeId", "Forecasting Type ID", 18),
                    ]
                )
            },
        )  # fmt: skip
    if splits:
        objects["OpportunitySplit"] = ObjectDef(
            "OpportunitySplit",
            "Opportunity Split",
            "Opportunity Splits",
            "149",
            {
                f.name: f
                for f in _system(
                    [
                        _ref("OpportunityId", "Opportunity ID", "Opportunity", nillable=False,
                             updateable=False),
                        _ref("SplitOwnerId", "Team Member ID", "User", nillable=False),
                        FieldDef("SplitPercentage", "percent", "Percent", precision=5, scale=2),
                        _ref("SplitTypeId", "Opportunity Split Type ID",
                             "OpportunitySplitType"),
                    ]
                )
            },
        )  # fmt: skip
    return objects


TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
TASK_CLOSED = frozenset({"Completed"})


def task_object() -> ObjectDef:
    """Tasks as a fresh org has them: Status and Priority are required but defaulted,
    IsClosed follows the status, and the Description (a long text area) cannot be
    filtered in a query."""
    return ObjectDef(
        "Task",
        "Task",
        "Tasks",
        "00T",
        {
            f.name: f
            for f in _system(
                [
                    FieldDef("Subject", "combobox", "Subject", length=255),
                    FieldDef("Description", "textarea", "Comments", length=32000,
                             filterable=False, sortable=False),
                    FieldDef("Status", "picklist", "Status", length=255, nillable=False,
                             picklist=TASK_STATUSES, default="Not Started"),
                    FieldDef("Priority", "picklist", "Priority", length=40, nillable=False,
                             picklist=("High", "Normal", "Low"), default="Normal"),
                    _ref("OwnerId", "Assigned To ID", "User", nillable=False),
                    FieldDef("ActivityDate", "date", "Due Date Only"),
                    FieldDef("IsClosed", "boolean", "Closed", updateable=False,
                             createable=False, nillable=False),
                    _ref("WhatId", "Related To ID", "Opportunity"),
                    _ref("LastModifiedById", "Last Modified By ID", "User", updateable=False,
                         createable=False),
                ]
            )
        },
    )  # fmt: skip


def tooling_objects() -> dict[str, ObjectDef]:
    custom_field = ObjectDef(
        "CustomField",
        "Custom Field Definition",
        "Custom Field Definitions",
        "00N",
        {
            f.name: f
            for f in [
                FieldDef("Id", "id", "Custom Field Definition ID", updateable=False,
                         createable=False, nillable=False, length=18),
                _text("TableEnumOrId", "Table Enum or ID", 40, updateable=False),
                _text("DeveloperName", "Field Name", 40),
                _text("NamespacePrefix", "Namespace Prefix", 15, updateable=False),
                _text("ManageableState", "Manageable State", 40, updateable=False),
                _text("FullName", "Full Name", 255, filterable=False, sortable=False),
                FieldDef("Metadata", "complexvalue", "Metadata", filterable=False,
                         sortable=False),
                FieldDef("CreatedDate", "datetime", "Created Date", updateable=False,
                         createable=False),
                FieldDef("LastModifiedDate", "datetime", "Last Modified Date",
                         updateable=False, createable=False),
            ]
        },
        tooling=True,
        single_row_fields=frozenset({"FullName", "Metadata"}),
    )  # fmt: skip
    return {"CustomField": custom_field}


# -- values ----------------------------------------------------------------------------------


def format_datetime(moment: datetime) -> str:
    """Salesforce's REST form: ``2026-03-19T08:58:32.000+0000``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def format_number(value: Decimal | int) -> str:
    """A JSON number as Salesforce writes it: 1500.0, 1234.56 (exact, never via float)."""
    if isinstance(value, int):
        return str(value)
    if value == value.to_integral_value():
        return f"{value.quantize(Decimal(1)):f}.0"
    return f"{value.normalize():f}"


def wire(definition: FieldDef, value: Any) -> str:
    """One field value as JSON text."""
    if value is None:
        return "null"
    kind = definition.type
    if kind == "boolean":
        return "true" if value else "false"
    if kind in NUMBER_TYPES:
        return format_number(value)
    if kind == "date":
        return f'"{value.isoformat()}"'
    if kind == "datetime":
        return f'"{format_datetime(value)}"'
    if kind == "complexvalue":
        return json.dumps(value, separators=(",", ":"))
    return json.dumps(value, ensure_ascii=False)


class ValueError_(Exception):
    """A value a field cannot hold: Salesforce's status code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def coerce(definition: FieldDef, raw: Any) -> Any:
    """A JSON value sent by a client → the field's Python value, as Salesforce accepts it."""
    if raw is None:
        return None
    kind, name = definition.type, definition.name
    try:
        if kind in NUMBER_TYPES:
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str, Decimal)):
                raise ValueError
            number = Decimal(str(raw))
            if not number.is_finite():
                raise ValueError
            if kind == "int":
                return int(number)
            scaled = number.quantize(Decimal(1).scaleb(-definition.scale), ROUND_HALF_UP)
            integer_digits = (definition.precision or 18) - definition.scale
            if abs(scaled) >= Decimal(10) ** integer_digits:
                raise ValueError_(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"{definition.label}: value outside of valid range on numeric field: {raw}",
                )
            return scaled
        if kind == "boolean":
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in ("true", "false"):
                return raw.lower() == "true"
            raise ValueError
        if kind == "date":
            return date.fromisoformat(str(raw)[:10])
        if kind == "datetime":
            text = str(raw).replace("Z", "+00:00")
            text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            moment = moment.astimezone(UTC)
            return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    except (ValueError, InvalidOperation, TypeError):
        raise ValueError_(
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {kind} from {type(raw).__name__} value {raw}",
        ) from None
    if not isinstance(raw, str):
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            raw = str(raw)  # Salesforce's deserializer turns numbers into text here
        else:
            raise ValueError_(
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of string from {type(raw).__name__} value",
            )
    if kind in ID_TYPES:
        normal = normalise_id(raw)
        if normal is None:
            raise ValueError_(
                "MALFORMED_ID", f"{definition.label}: id value of incorrect type: {raw}"
            )
        return normal
    if definition.length and len(raw) > definition.length:
        raise ValueError_(
            "STRING_TOO_LONG",
            f"{definition.label}: data value too large: {raw} (max length={definition.length})",
        )
    if definition.picklist and raw not in definition.picklist and name != "Field":
        raise ValueError_(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{definition.label}: bad value for restricted picklist field: {raw}",
        )
    return raw
