"""``install`` on HubSpot: our property group and properties on deals and the rep object.

HubSpot has no API for record layouts (install prints the steps) and no
field-level security to grant. Every step is idempotent; ``--dry-run`` reports
each without changing the portal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connector.adapters.hubspot.api import GROUP, PROPERTY_TYPE, HubSpotApi
from connector.core.fields import FieldSpec, RecordKind
from connector.core.models import FieldStatus
from connector.errors import ConfigError, CrmError


class HubSpotInstaller:
    def __init__(self, api: HubSpotApi) -> None:
        self.api = api

    def ensure_fields(self, specs: Sequence[FieldSpec], *, dry_run: bool) -> list[FieldStatus]:
        report: list[FieldStatus] = []
        targets = (("deals", RecordKind.DEAL), (self.api.settings.rep_object, RecordKind.REP))
        for object_type, record in targets:
            wanted = [s for s in specs if s.record is record]
            try:
                report += self._ensure_object(object_type, wanted, dry_run=dry_run)
            except CrmError as error:
                if record is RecordKind.REP and error.status in (400, 403, 404):
                    raise ConfigError(
                        f"this HubSpot portal does not accept our property group or properties "
                        f"on the '{object_type}' object (HubSpot said: {error.detail}). The "
                        "deal properties are in place. For the rep values, create a custom "
                        "object (for example 'spm_rep', one record per owner, with an "
                        "hs_internal_user_id or hs_email property) and name it in spm.yaml "
                        "under fields: hubspot_rep_object"
                    ) from None
                raise
        self.api.outcomes()  # kept for the first sync, as the properties are
        return report

    def _ensure_object(
        self, object_type: str, specs: Sequence[FieldSpec], *, dry_run: bool
    ) -> list[FieldStatus]:
        report: list[FieldStatus] = []
        existing = self.api.properties(object_type, refresh=True)
        _, groups = self.api.request("properties", f"/crm/v3/properties/{object_type}/groups")
        if GROUP not in {g.get("name") for g in groups.get("results", [])}:
            if dry_run:
                report.append(FieldStatus(f"{object_type} group {GROUP}", "would create"))
            else:
                self._create(
                    f"/crm/v3/properties/{object_type}/groups",
                    {"name": GROUP, "label": "Compensation", "displayOrder": -1},
                )
                report.append(FieldStatus(f"{object_type} group {GROUP}", "created"))
        else:
            report.append(FieldStatus(f"{object_type} group {GROUP}", "exists"))
        for spec in specs:
            name = f"{object_type}.{spec.hubspot}"
            kind, field_type, hint = PROPERTY_TYPE[spec.value]
            found = existing.get(spec.hubspot)
            if found is None and not dry_run:
                body: dict[str, Any] = {
                    "name": spec.hubspot,
                    "label": spec.label,
                    "description": f"Maintained by spm-connector: {spec.description.lower()}.",
                    "type": kind,
                    "fieldType": field_type,
                    "groupName": GROUP,
                }
                if hint:
                    body["numberDisplayHint"] = hint
                found = self._create(f"/crm/v3/properties/{object_type}", body)
                if found is None:  # 409: made meanwhile; check what it is
                    self.api.metadata.forget(f"properties:{object_type}")
                    found = self.api.properties(object_type, refresh=True).get(spec.hubspot)
                else:
                    report.append(FieldStatus(name, "created", kind))
                    continue
            if found is None:
                report.append(FieldStatus(name, "would create", kind))
                continue
            if found.get("type") != kind:
                raise ConfigError(
                    f"HubSpot {name} exists as a {found.get('type')} property, not {kind}: "
                    "rename ours under `fields:` in spm.yaml or remove theirs"
                )
            report.append(FieldStatus(name, "exists"))
        # Read back what is there now: the first sync then finds it in the store.
        self.api.metadata.forget(f"properties:{object_type}")
        self.api.properties(object_type)
        return report

    def _create(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """POST a definition; None when it already exists (409)."""
        try:
            _, created = self.api.request("properties", path, "POST", body=body)
        except CrmError as error:
            if error.status == 409:
                return None
            raise
        return created if isinstance(created, dict) else None
