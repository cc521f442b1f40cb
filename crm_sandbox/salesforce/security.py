"""Field-level security, as Salesforce applies it to fields created through the API.

A custom field created with the Tooling or Metadata API is visible to nobody —
administrators and the API user included — until a ``FieldPermissions`` row on
a permission set assigned to the user grants it. Without Read the field does
not exist for that user (absent from describe, "No such column" in SOQL and in
writes); with Read but not Edit it is read-only (``INVALID_FIELD_FOR_INSERT_UPDATE``
per record). Standard fields and fields the org was seeded with are open.

Every request of the sandbox acts as its integration user, so that is whose
access counts here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from crm_sandbox.salesforce.schema import ObjectDef, ValueError_

Access = tuple[bool, bool]  # (read, edit)
OPEN: Access = (True, True)
HIDDEN: Access = (False, False)


class FieldSecurity:
    """Which fields are guarded, and what the session user's permission sets grant on them."""

    def __init__(self, records: Mapping[str, Mapping[str, Any]], user: Callable[[], str]) -> None:
        self._records = records
        self._user = user
        self._guarded: set[str] = set()  # "object.field", lower case

    def guard(self, sobject: str, field_name: str) -> None:
        """A field created while the org runs: closed until a permission set grants it."""
        self._guarded.add(f"{sobject}.{field_name}".lower())

    def guarded(self, sobject: str, field_name: str) -> bool:
        return f"{sobject}.{field_name}".lower() in self._guarded

    def grants(self) -> dict[str, Access]:
        """What the session user may do on each guarded field, from its permission sets."""
        user = self._user()
        sets = {
            record.values["PermissionSetId"]
            for record in self._records["PermissionSetAssignment"].values()
            if not record.values.get("IsDeleted") and record.values.get("AssigneeId") == user
        }
        found: dict[str, Access] = {}
        for record in self._records["FieldPermissions"].values():
            values = record.values
            if values.get("IsDeleted") or values.get("ParentId") not in sets:
                continue
            key = str(values.get("Field") or "").lower()
            read, edit = found.get(key, HIDDEN)
            found[key] = (
                read or bool(values.get("PermissionsRead")),
                edit or bool(values.get("PermissionsEdit")),
            )
        return found

    def access(self, sobject: str) -> Callable[[str], Access]:
        """A lookup of the session user's access to each field of ``sobject``, for one request."""
        if not any(key.startswith(f"{sobject.lower()}.") for key in self._guarded):
            return lambda _name: OPEN
        grants = self.grants()

        def lookup(name: str) -> Access:
            key = f"{sobject}.{name}".lower()
            if key not in self._guarded:
                return OPEN
            return grants.get(key, HIDDEN)

        return lookup

    def check_grant(self, objects: Mapping[str, ObjectDef], values: Mapping[str, Any]) -> None:
        """A FieldPermissions row as Salesforce checks it before saving it."""
        sobject = str(values.get("SobjectType") or "")
        field_path = str(values.get("Field") or "")
        object_name, _, field_name = field_path.partition(".")
        target = objects.get(object_name)
        if target is None or target.field(field_name) is None or object_name != sobject:
            raise ValueError_(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"Field Name: bad value for restricted picklist field: {field_path}",
            )
        if values.get("PermissionsEdit") and not values.get("PermissionsRead"):
            raise ValueError_(
                "FIELD_INTEGRITY_EXCEPTION", "Permission Edit depends on permission(s): Read"
            )
        parent = values.get("ParentId")
        for other in self._records["FieldPermissions"].values():
            row = other.values
            if (
                not row.get("IsDeleted")
                and row.get("ParentId") == parent
                and str(row.get("Field") or "").lower() == field_path.lower()
                and row.get("Id") != values.get("Id")
            ):
                raise ValueError_(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: Field duplicates value on record with id: "
                    f"{row.get('Id')}",
                )

    def check_assignment(self, values: Mapping[str, Any]) -> None:
        for other in self._records["PermissionSetAssignment"].values():
            row = other.values
            if (
                not row.get("IsDeleted")
                and row.get("AssigneeId") == values.get("AssigneeId")
                and row.get("PermissionSetId") == values.get("PermissionSetId")
            ):
                raise ValueError_(
                    "DUPLICATE_VALUE",
                    "Duplicate PermissionSetAssignment. Assignee: "
                    f"{values.get('AssigneeId')}; Permission Set: {values.get('PermissionSetId')}",
                )
