"""HubSpot's building blocks: timestamps, API errors, property definitions and CRM records."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

DEALS = "deals"
USERS = "users"
GOAL_TARGETS = "goal_targets"
CONTACTS = "contacts"
TASKS = "tasks"

# Every spelling a caller may use in a path, mapped to our object type.
OBJECT_TYPES = {
    "deals": DEALS,
    "deal": DEALS,
    "0-3": DEALS,
    "users": USERS,
    "user": USERS,
    "goal_targets": GOAL_TARGETS,
    "0-68": GOAL_TARGETS,
    "contacts": CONTACTS,
    "contact": CONTACTS,
    "0-1": CONTACTS,
    "tasks": TASKS,
    "task": TASKS,
    "0-27": TASKS,
}
# HubSpot-defined association types from a task (associationTypeId → the target's type).
TASK_ASSOCIATIONS = {216: DEALS, 204: CONTACTS}
TASKS_SCOPE = "crm.objects.contacts.write"
TASK_STATUSES = ("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED")

PROPERTY_TYPES = ("bool", "date", "datetime", "enumeration", "number", "phone_number", "string")
FIELD_TYPES = (
    "booleancheckbox",
    "calculation_equation",
    "checkbox",
    "date",
    "file",
    "html",
    "number",
    "phonenumber",
    "radio",
    "select",
    "text",
    "textarea",
)
NUMBER_DISPLAY_HINTS = (
    "currency",
    "duration",
    "formatted",
    "percentage",
    "probability",
    "unformatted",
)


def iso_ms(ms: int) -> str:
    """HubSpot's timestamp text: UTC, milliseconds, ``Z``."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def parse_time_ms(text: str) -> int | None:
    """A date/datetime property value or filter value (epoch ms or ISO 8601) as epoch ms."""
    text = text.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_ms(moment)


def parse_decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def correlation_id() -> str:
    return str(uuid.uuid4())


class ApiError(Exception):
    """A HubSpot error reply: its status, its JSON body and any extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        category: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        body: dict[str, Any] = {
            "status": "error",
            "message": message,
            "correlationId": correlation_id(),
            "category": category,
        }
        body.update(extra)
        self.body = body
        self.headers = headers or {}


def batch_error(
    category: str, message: str, ids: list[str], *, by_trace: bool = False
) -> dict[str, Any]:
    """One entry of a 207's ``errors`` (HubSpot's ``StandardError``), grouped by category.

    ``by_trace``: ``ids`` are the inputs' ``objectWriteTraceId`` values, and the entry
    names them alone, as HubSpot does for inputs that carry one.
    """
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": {"objectWriteTraceId" if by_trace else "ids": ids},
        "errors": [],
        "links": {},
    }


@dataclass
class PropertyDef:
    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    description: str = ""
    options: tuple[tuple[str, str], ...] = ()
    read_only: bool = False
    calculated: bool = False
    hubspot_defined: bool = True
    number_display_hint: str | None = None
    referenced_object_type: str | None = None
    display_order: int = -1
    has_unique_value: bool = False
    created_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": [
                {"label": label, "value": value, "displayOrder": i, "hidden": False}
                for i, (value, label) in enumerate(self.options)
            ],
            "createdAt": iso_ms(self.created_ms),
            "updatedAt": iso_ms(self.created_ms),
            "displayOrder": self.display_order,
            "calculated": self.calculated,
            "externalOptions": False,
            "hasUniqueValue": self.has_unique_value,
            "hidden": False,
            "formField": not self.read_only,
            "archived": False,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "dataSensitivity": "non_sensitive",
        }
        if self.hubspot_defined:
            body["hubspotDefined"] = True
        if self.number_display_hint:
            body["numberDisplayHint"] = self.number_display_hint
        if self.referenced_object_type:
            body["referencedObjectType"] = self.referenced_object_type
        return body


@dataclass
class PropertyGroup:
    name: str
    label: str
    display_order: int = -1

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "displayOrder": self.display_order,
            "archived": False,
        }


@dataclass
class CrmRecord:
    """One object; its rendered JSON is cached per property selection until it changes."""

    id: str
    num: int
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    archived: bool = False
    archived_ms: int = 0
    _json: dict[tuple[str, ...], bytes] = field(default_factory=dict, repr=False)
    _typed: dict[str, Any] = field(default_factory=dict, repr=False)

    def changed(self) -> None:
        self._json.clear()
        self._typed.clear()

    def render(self, names: tuple[str, ...]) -> bytes:
        cached = self._json.get(names)
        if cached is None:
            props = self.properties
            body: dict[str, Any] = {
                "id": self.id,
                # Unset properties are left out: the spec types values as strings, not null.
                "properties": {n: props[n] for n in names if n in props},
                "createdAt": iso_ms(self.created_ms),
                "updatedAt": iso_ms(self.updated_ms),
                "archived": self.archived,
            }
            if self.archived:
                body["archivedAt"] = iso_ms(self.archived_ms)
            cached = json.dumps(body, separators=(",", ":")).encode()
            if len(self._json) < 8:
                self._json[names] = cached
        return cached

    def typed(self, name: str, kind: str) -> Any:
        """The value as search compares it (Decimal, epoch ms or lower-case text), or None."""
        try:
            return self._typed[name]
        except KeyError:
            pass
        raw = self.properties.get(name)
        value = None if raw is None or raw == "" else coerce(kind, raw)
        self._typed[name] = value
        return value


def coerce(kind: str, raw: str) -> Any:
    if kind == "number":
        return parse_decimal(raw)
    if kind in ("date", "datetime"):
        return parse_time_ms(raw)
    return raw.lower()
