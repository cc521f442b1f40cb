"""Page layouts and their assignment to profiles, as the Tooling API shows them.

A field is shown on a record only when it is on the page layout assigned to the
viewer's profile, whatever its field-level security. ``Layout`` holds the
Metadata API's layout (sections, columns, items) in its ``Metadata`` field, read
one layout at a time and replaced whole by a PATCH; ``ProfileLayout`` says which
layout each profile sees for an object.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from crm_sandbox.salesforce.schema import FieldDef, ObjectDef, ValueError_, _system, _text

# (profile name, whether the seeded reps have it)
PROFILES = ("System Administrator", "Standard User")
# layout name → (object, profiles it is assigned to)
LAYOUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Opportunity Layout": ("Opportunity", ("System Administrator",)),
    "Opportunity (Sales) Layout": ("Opportunity", ("Standard User",)),
    "User Layout": ("User", PROFILES),
}
_BEHAVIOURS = frozenset({"Edit", "Required", "Readonly"})


def profile_object() -> ObjectDef:
    fields = _system([_text("Name", "Name", 255, nillable=False)])
    return ObjectDef("Profile", "Profile", "Profiles", "00e", {f.name: f for f in fields})


def tooling_layout_objects() -> dict[str, ObjectDef]:
    layout = ObjectDef(
        "Layout",
        "Page Layout",
        "Page Layouts",
        "00h",
        {
            f.name: f
            for f in (
                FieldDef("Id", "id", "Layout ID", updateable=False, createable=False,
                         nillable=False, length=18),
                _text("Name", "Name", 255, updateable=False),
                _text("TableEnumOrId", "Entity Type ID", 40, updateable=False),
                _text("FullName", "Full Name", 255, filterable=False, sortable=False),
                FieldDef("Metadata", "complexvalue", "Metadata", filterable=False,
                         sortable=False),
            )
        },
        tooling=True,
        single_row_fields=frozenset({"FullName", "Metadata"}),
    )  # fmt: skip
    assignment = ObjectDef(
        "ProfileLayout",
        "Profile Layout",
        "Profile Layouts",
        "01G",
        {
            f.name: f
            for f in (
                FieldDef("Id", "id", "Profile Layout ID", updateable=False, createable=False,
                         nillable=False, length=18),
                _text("LayoutId", "Layout ID", 18, updateable=False),
                _text("ProfileId", "Profile ID", 18, updateable=False),
                _text("TableEnumOrId", "Entity Type ID", 40, updateable=False),
                _text("RecordTypeId", "Record Type ID", 18, updateable=False),
            )
        },
        tooling=True,
    )  # fmt: skip
    return {"Layout": layout, "ProfileLayout": assignment}


def seeded_layout(sobject: str, name: str) -> dict[str, Any]:
    """A layout as a fresh org has it: its standard fields in sections, and related lists."""
    if sobject == "Opportunity":
        left = ["Name", "OwnerId", "Type"]
        right = ["CloseDate", "StageName", "Amount", "Probability"]
        related = ["RelatedContactRoleList", "RelatedActivityList", "RelatedHistoryList"]
    else:
        left = ["Username", "FirstName", "LastName", "Email"]
        right = ["IsActive", "ManagerId"]
        related = ["RelatedUserPermissionSetAssignmentList"]

    def column(names: list[str]) -> dict[str, Any]:
        return {"layoutItems": [{"field": n, "behavior": "Edit"} for n in names]}

    return {
        "layoutSections": [
            {
                "label": f"{sobject} Information",
                "style": "TwoColumnsTopToBottom",
                "customLabel": False,
                "detailHeading": True,
                "editHeading": True,
                "layoutColumns": [column(left), column(right)],
            },
            {
                "label": "System Information",
                "style": "TwoColumnsTopToBottom",
                "customLabel": False,
                "detailHeading": True,
                "editHeading": False,
                "layoutColumns": [
                    {"layoutItems": [{"field": "CreatedDate", "behavior": "Readonly"}]},
                    {"layoutItems": [{"field": "LastModifiedDate", "behavior": "Readonly"}]},
                ],
            },
        ],
        "relatedLists": [{"relatedList": r} for r in related],
        "showEmailCheckbox": False,
        "showHighlightsPanel": True,
        "summaryLayout": None,
        "fullName": f"{sobject}-{name.removeprefix(sobject).strip() or name}",
    }


def checked_layout(definition: ObjectDef, metadata: Any) -> dict[str, Any]:
    """A layout's new Metadata, refused as the Metadata API refuses a bad one."""
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("layoutSections"), list):
        raise ValueError_("FIELD_INTEGRITY_EXCEPTION", "Metadata: layoutSections is required")
    seen: set[str] = set()
    for section in metadata["layoutSections"]:
        columns = section.get("layoutColumns") if isinstance(section, Mapping) else None
        if not isinstance(columns, list) or not 1 <= len(columns) <= 3:
            raise ValueError_(
                "FIELD_INTEGRITY_EXCEPTION",
                "Metadata: each layout section needs one to three layoutColumns",
            )
        for column in columns:
            for item in column.get("layoutItems") or []:
                name = str(item.get("field") or "")
                if definition.field(name) is None:
                    raise ValueError_(
                        "FIELD_INTEGRITY_EXCEPTION",
                        f"Layout must contain an item for a field that exists: {name}",
                    )
                if name.lower() in seen:
                    raise ValueError_(
                        "FIELD_INTEGRITY_EXCEPTION", f"Duplicate layout item: field {name}"
                    )
                seen.add(name.lower())
                if item.get("behavior") not in _BEHAVIOURS:
                    raise ValueError_(
                        "FIELD_INTEGRITY_EXCEPTION",
                        f"Invalid behavior for field {name}: {item.get('behavior')!r}",
                    )
    return copy.deepcopy(dict(metadata))
