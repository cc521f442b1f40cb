"""``install`` on Salesforce: our custom fields, the field-level security that lets
people see them, and a "Commission" section on the page layouts that shows them.

Fields are created through the Tooling API. Fields created through the API are
visible to nobody until field-level security grants them, so two permission sets
of ours carry the grants: the integration user's (Read and Edit) and the payout
readers' (Read: plan members and their managers). Every step is idempotent, and
``--dry-run`` reports each without changing the org.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.adapters.salesforce.api import (
    BATCH_SIZE,
    INTEGRATION_PERMISSION_SET,
    OBJECT,
    SF_TYPE,
    SalesforceApi,
)
from connector.core.fields import FieldSpec, RecordKind, ValueKind
from connector.core.models import FieldStatus
from connector.errors import ConfigError, CrmError

COMMISSION_SECTION = "Commission"  # the page-layout section that holds our fields
PERMISSION_SET = "SPM_Payout_Fields"  # Read, for plan members and their managers


@dataclass(frozen=True)
class _PermissionSet:
    name: str
    label: str
    description: str
    edit: bool


# Fields created through the API are visible to nobody until field-level security grants
# them: the API user needs Read and Edit to sync, the people paid by them Read only.
_INTEGRATION_SET = _PermissionSet(
    INTEGRATION_PERMISSION_SET,
    "SPM Connector Integration",
    "Read and edit spm-connector payout fields: for the integration user that writes them",
    edit=True,
)
_PAYOUT_SET = _PermissionSet(
    PERMISSION_SET,
    "SPM Payout Fields",
    "Read access to spm-connector payout fields: for plan members and their managers",
    edit=False,
)


# Fields created through the API are visible to nobody until field-level security grants
# them: the API user needs Read and Edit to sync, the people paid by them Read only.
_INTEGRATION_SET = _PermissionSet(
    INTEGRATION_PERMISSION_SET,
    "SPM Connector Integration",
    "Read and edit spm-connector payout fields: for the integration user that writes them",
    edit=True,
)
_PAYOUT_SET = _PermissionSet(
    PERMISSION_SET,
    "SPM Payout Fields",
    "Read access to spm-connector payout fields: for plan members and their managers",
    edit=False,
)


class SalesforceInstaller:
    def __init__(self, api: SalesforceApi) -> None:
        self.api = api

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
        report: list[FieldStatus] = []
        for sobject, record in (("Opportunity", RecordKind.DEAL), ("User", RecordKind.REP)):
            visible = self.api.fields_of(sobject, refresh=True)
            # A field the API user has no field-level security on is missing from describe
            # but exists: the Tooling API lists it, and creating it again would fail.
            created = self.api.custom_fields(sobject)
            for spec in (s for s in specs if s.record is record):
                full_name = f"{sobject}.{spec.salesforce}"
                found = visible.get(spec.salesforce)
                if found is not None:
                    expected = SF_TYPE[spec.value]
                    if found != expected:
                        raise ConfigError(
                            f"{full_name} exists as a {found} field, not {expected}: "
                            f"rename ours under `fields: {{{spec.key}: …}}` in spm.yaml or "
                            "remove theirs"
                        )
                    report.append(FieldStatus(full_name, "exists"))
                elif spec.salesforce in created:
                    report.append(FieldStatus(full_name, "exists", "hidden from the API user"))
                elif dry_run:
                    report.append(FieldStatus(full_name, "would create", SF_TYPE[spec.value]))
                else:
                    self._tooling_create(_field_metadata(full_name, spec))
                    report.append(FieldStatus(full_name, "created", SF_TYPE[spec.value]))
            self.api.metadata.forget(f"fields:{sobject}")
        writer = self.api.writer_id()
        report += self._permission_set(
            _INTEGRATION_SET, specs, dry_run=dry_run, assign_to={writer} if writer else set()
        )
        report += self._permission_set(_PAYOUT_SET, specs, dry_run=dry_run, assign_to=assign_to)
        if not skip_layouts:
            report += self._place_on_layouts(
                specs,
                dry_run=dry_run,
                readers=assign_to if readers is None else readers,
                names=layouts,
            )
        return report

    def _place_on_layouts(
        self,
        specs: Sequence[FieldSpec],
        *,
        dry_run: bool,
        readers: Collection[str],
        names: Sequence[str] | None,
    ) -> list[FieldStatus]:
        """Put our fields in a "Commission" section of the Opportunity and User page layouts:
        those assigned to the readers' profiles, or the ones ``names`` lists. A field on no
        layout is invisible on the record whatever its field-level security. Each layout is
        read, changed only by that section, and written back whole (Tooling API)."""
        ours = {
            OBJECT[record]: [s.salesforce for s in specs if s.record is record] for record in OBJECT
        }
        objects = "('Opportunity', 'User')"
        if names is None and not readers:
            return []  # nobody to show them to (no plan members given)
        if names is None:
            profiles = {
                row["ProfileId"]
                for row in self.api.query("SELECT Id, ProfileId FROM User")
                if row["Id"] in readers and row.get("ProfileId")
            }
            assigned = self.api.query_tooling(
                f"SELECT LayoutId, ProfileId FROM ProfileLayout WHERE TableEnumOrId IN {objects}"
            )
            layout_ids = sorted({r["LayoutId"] for r in assigned if r["ProfileId"] in profiles})
            if not layout_ids:
                return [
                    FieldStatus(
                        "page layouts", "unchanged", "no plan member's profile has a layout"
                    )
                ]
        else:
            rows = self.api.query_tooling(
                f"SELECT Id, Name FROM Layout WHERE TableEnumOrId IN {objects}"
            )
            by_name = {str(r["Name"]): str(r["Id"]) for r in rows}
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise ConfigError(
                    f"--layouts: no Opportunity or User page layout named "
                    f"{', '.join(repr(n) for n in unknown)}; this org has "
                    f"{', '.join(repr(n) for n in sorted(by_name)) or 'none'}"
                )
            layout_ids = list(dict.fromkeys(by_name[n] for n in names))
        report: list[FieldStatus] = []
        for layout_id in layout_ids:
            row = self.api.query_tooling(
                f"SELECT Id, Name, TableEnumOrId, Metadata FROM Layout WHERE Id = '{layout_id}'"
            )[0]
            metadata, added = _with_commission_section(
                row["Metadata"], ours.get(str(row["TableEnumOrId"]), [])
            )
            what = f"page layout {row['Name']}"
            if not added:
                report.append(FieldStatus(what, "exists", f"{COMMISSION_SECTION} section"))
                continue
            detail = f"{len(added)} field(s) in its {COMMISSION_SECTION} section"
            if dry_run:
                report.append(FieldStatus(what, "would update", detail))
                continue

            def patch(layout: str = layout_id, body: dict[str, Any] = metadata) -> Any:
                return self.api.sf.toolingexecute(
                    f"sobjects/Layout/{layout}", method="PATCH", data={"Metadata": body}
                )

            self.api.call(patch)
            report.append(FieldStatus(what, "updated", detail))
        return report

    def _tooling_create(self, body: dict[str, Any]) -> None:
        def request() -> Any:
            return self.api.sf.toolingexecute("sobjects/CustomField", method="POST", data=body)

        self.api.call(request)

    def _permission_set(
        self,
        kind: _PermissionSet,
        specs: Sequence[FieldSpec],
        *,
        dry_run: bool,
        assign_to: Collection[str],
    ) -> list[FieldStatus]:
        """One permission set of ours: created, every field granted as ``kind`` says
        (a grant someone removed or changed is put back), and assigned to ``assign_to``."""
        report: list[FieldStatus] = []
        name = kind.name
        found = list(self.api.query(f"SELECT Id FROM PermissionSet WHERE Name = '{name}'"))
        if found:
            permission_set_id = found[0]["Id"]
            report.append(FieldStatus(f"PermissionSet {name}", "exists"))
        elif dry_run:
            report.append(FieldStatus(f"PermissionSet {name}", "would create"))
            permission_set_id = None
        else:
            created = self.api.rest(
                "sobjects/PermissionSet",
                "POST",
                json.dumps({"Name": name, "Label": kind.label, "Description": kind.description}),
            )
            permission_set_id = created["id"]
            report.append(FieldStatus(f"PermissionSet {name}", "created"))

        granted: dict[str, dict[str, Any]] = {}
        assigned: set[str] = set()
        if permission_set_id is not None:
            granted = {
                str(row["Field"]).lower(): row
                for row in self.api.query(
                    "SELECT Id, Field, PermissionsRead, PermissionsEdit FROM FieldPermissions "
                    f"WHERE ParentId = '{permission_set_id}'"
                )
            }
            assigned = {
                row["AssigneeId"]
                for row in self.api.query(
                    "SELECT AssigneeId FROM PermissionSetAssignment "
                    f"WHERE PermissionSetId = '{permission_set_id}'"
                )
            }
        access = "read and edit" if kind.edit else "read"
        grants: list[dict[str, Any]] = []
        repairs: list[dict[str, Any]] = []
        for spec in specs:
            full_name = f"{OBJECT[spec.record]}.{spec.salesforce}"
            row = granted.get(full_name.lower())
            wanted = {"PermissionsRead": True, "PermissionsEdit": kind.edit}
            if row is None:
                grants.append(
                    {
                        "attributes": {"type": "FieldPermissions"},
                        "ParentId": permission_set_id,
                        "SobjectType": OBJECT[spec.record],
                        "Field": full_name,
                        **wanted,
                    }
                )
                action = "would grant" if dry_run else "granted"
            elif any(bool(row.get(flag)) != value for flag, value in wanted.items()):
                repair = {"attributes": {"type": "FieldPermissions"}, "id": row["Id"]}
                repairs.append(repair | wanted)
                action = "would repair" if dry_run else "repaired"
            else:
                continue
            report.append(FieldStatus(f"{access} on {full_name} ({name})", action))
        assignments = [
            {
                "attributes": {"type": "PermissionSetAssignment"},
                "PermissionSetId": permission_set_id,
                "AssigneeId": user_id,
            }
            for user_id in sorted(set(assign_to) - assigned)
        ]
        report += [
            FieldStatus(
                f"{name} for user {a['AssigneeId']}", "would assign" if dry_run else "assigned"
            )
            for a in assignments
        ]
        if not dry_run:
            self._create(grants)
            self._create(repairs, method="PATCH")
            self._create(assignments)
        return report

    def _create(self, rows: Sequence[dict[str, Any]], method: str = "POST") -> None:
        """Create (or, with PATCH, update) setup records; any refusal stops the install."""
        for start in range(0, len(rows), BATCH_SIZE):
            chunk = list(rows[start : start + BATCH_SIZE])
            answer = self.api.rest(
                "composite/sobjects", method, json.dumps({"allOrNone": False, "records": chunk})
            )
            failed = [
                f"{row.get('Field') or row.get('AssigneeId') or row.get('id')}: "
                f"{(outcome.get('errors') or [{}])[0].get('message', 'failed')}"
                for row, outcome in zip(chunk, answer or [], strict=True)
                if not outcome.get("success")
            ]
            if failed:
                raise CrmError(
                    "Salesforce refused part of the install: " + "; ".join(failed), status=200
                )


def _with_commission_section(
    metadata: Mapping[str, Any], fields: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """The layout with every one of ``fields`` placed, and the fields it had to add.

    Fields already anywhere on the layout stay where an admin put them; the rest go
    in the "Commission" section (created after the first section when missing),
    read-only, into its shorter column. Nothing else on the layout changes.
    """
    layout = copy.deepcopy(dict(metadata))
    sections: list[dict[str, Any]] = layout.setdefault("layoutSections", [])
    placed = {
        str(item.get("field") or "").lower()
        for section in sections
        for column in section.get("layoutColumns") or []
        for item in column.get("layoutItems") or []
    }
    missing = [name for name in fields if name.lower() not in placed]
    if not missing:
        return layout, []
    section = next((s for s in sections if s.get("label") == COMMISSION_SECTION), None)
    if section is None:
        section = {
            "label": COMMISSION_SECTION,
            "style": "TwoColumnsTopToBottom",
            "customLabel": True,
            "detailHeading": True,
            "editHeading": False,
            "layoutColumns": [{"layoutItems": []}, {"layoutItems": []}],
        }
        sections.insert(min(1, len(sections)), section)
    columns = section.setdefault("layoutColumns", [{"layoutItems": []}])
    for name in missing:
        shortest = min(columns, key=lambda column: len(column.get("layoutItems") or []))
        shortest.setdefault("layoutItems", []).append({"field": name, "behavior": "Readonly"})
    return layout, missing


def _field_metadata(full_name: str, spec: FieldSpec) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "label": spec.label,
        "description": spec.description,
        "inlineHelpText": f"Maintained by spm-connector: {spec.description.lower()}.",
    }
    if spec.value is ValueKind.MONEY:
        metadata.update(type="Currency", precision=16, scale=2)
    elif spec.value is ValueKind.FRACTION:
        metadata.update(type="Percent", precision=7, scale=spec.percent_scale)
    elif spec.value is ValueKind.NUMBER:
        metadata.update(type="Number", precision=14, scale=spec.scale)
    elif spec.value is ValueKind.TEXT:
        metadata.update(type="Text", length=spec.length)
    else:
        metadata.update(type="DateTime")
    return {"FullName": full_name, "Metadata": metadata}
