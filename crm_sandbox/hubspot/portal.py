"""The portal's state: owners, the users object, deals, properties, the pipeline and splits.

Everything here is in memory behind one re-entrant lock. Writes are validated
as HubSpot validates them, move ``hs_lastmodifieddate`` strictly forward and
hand deal events to whoever listens (the webhook dispatcher).
"""

from __future__ import annotations

import json
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from crm_sandbox.hubspot.records import (
    CONTACTS,
    DEALS,
    FIELD_TYPES,
    GOAL_TARGETS,
    NUMBER_DISPLAY_HINTS,
    PROPERTY_TYPES,
    TASK_ASSOCIATIONS,
    TASK_STATUSES,
    TASKS,
    TASKS_SCOPE,
    USERS,
    ApiError,
    CrmRecord,
    PropertyDef,
    PropertyGroup,
    iso_ms,
    parse_decimal,
    parse_time_ms,
    to_ms,
)
from crm_sandbox.seed import DEAL_TYPES, OPEN_STAGE_PROBABILITY, SeedOrg

PIPELINE_ID = "default"
# HubSpot's default sales pipeline stage ids, for the seed's neutral stages.
STAGE_IDS = {
    "prospecting": "appointmentscheduled",
    "qualification": "qualifiedtobuy",
    "proposal": "presentationscheduled",
    "negotiation": "decisionmakerboughtin",
    "won": "closedwon",
    "lost": "closedlost",
}
STAGE_LABELS = {
    "appointmentscheduled": "Appointment Scheduled",
    "qualifiedtobuy": "Qualified To Buy",
    "presentationscheduled": "Presentation Scheduled",
    "decisionmakerboughtin": "Decision Maker Bought-In",
    "closedwon": "Closed Won",
    "closedlost": "Closed Lost",
}
STAGE_PROBABILITY = {
    **{STAGE_IDS[name]: p for name, p in OPEN_STAGE_PROBABILITY.items()},
    "closedwon": Decimal("1.0"),
    "closedlost": Decimal("0.0"),
}
DEAL_TYPE_VALUES = {label: label.lower().replace(" ", "") for label in DEAL_TYPES}

DEAL_DEFAULT_PROPERTIES = (
    "amount",
    "closedate",
    "createdate",
    "dealname",
    "dealstage",
    "hs_lastmodifieddate",
    "hs_object_id",
    "pipeline",
)
DEAL_SEARCH_DEFAULTS = ("createdate", "hs_lastmodifieddate", "hs_object_id")
USER_DEFAULT_PROPERTIES = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")
# Calculated by HubSpot from the stage; never written by callers, never announced by webhooks.
DERIVED_DEAL_PROPERTIES = ("hs_is_closed", "hs_is_closed_won", "hs_deal_stage_probability")

OWNER_ID_BASE = 51_000_001
USER_ID_BASE = 7_700_001
USER_OBJECT_ID_BASE = 1_430_000_001
TASK_ID_BASE = 71_000_000_001
DEAL_ID_BASE = 9_000_000_001
SPLIT_ID_BASE = 60_000_000_001
TEAM_ID_BASE = 3_100
GOAL_TARGET_ID_BASE = 44_000_000_001
CONTACT_ID_BASE = 120_000_000_001


def _probability(stage: str) -> str:
    value = STAGE_PROBABILITY[stage]
    exponent = value.as_tuple().exponent
    return str(value) if isinstance(exponent, int) and exponent < 0 else f"{value}.0"


def _close_date_text(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _money_text(amount: Decimal) -> str:
    return format(amount, "f")


@dataclass
class Split:
    id: str
    deal_id: str
    owner_id: str
    fraction: Decimal
    created_ms: int

    def to_json(self) -> dict[str, Any]:
        stamp = iso_ms(self.created_ms)
        return {
            "id": self.id,
            "properties": {
                "hs_deal_split_percentage": format(self.fraction.normalize(), "f"),
                "hubspot_owner_id": self.owner_id,
            },
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }


class ObjectStore:
    """Records of one object type, kept in id order for cursor paging."""

    def __init__(self) -> None:
        self.by_id: dict[str, CrmRecord] = {}
        self.order: list[int] = []
        self.by_num: dict[int, CrmRecord] = {}
        self.revision = 0

    def add(self, record: CrmRecord) -> None:
        self.by_id[record.id] = record
        self.by_num[record.num] = record
        if self.order and record.num < self.order[-1]:
            self.order.insert(bisect_left(self.order, record.num), record.num)
        else:
            self.order.append(record.num)

    def page(
        self, after: int | None, limit: int, archived: bool
    ) -> tuple[list[CrmRecord], int | None]:
        order, by_num = self.order, self.by_num
        i = 0 if after is None else bisect_left(order, after)
        found: list[CrmRecord] = []
        while i < len(order) and len(found) < limit:
            record = by_num[order[i]]
            if record.archived == archived:
                found.append(record)
            i += 1
        while i < len(order):
            if by_num[order[i]].archived == archived:
                return found, order[i]
            i += 1
        return found, None

    def live(self, archived: bool = False) -> Iterable[CrmRecord]:
        by_num = self.by_num
        return (by_num[n] for n in self.order if by_num[n].archived == archived)


EventSink = Callable[[list[dict[str, Any]]], None]


def exchange_rates(year: int) -> list[dict[str, Any]]:
    """EUR and GBP against the company currency (USD per unit), EUR's moving mid-year."""
    rates = []
    for number, (code, start, rate) in enumerate((
        ("EUR", datetime(year - 1, 1, 1, tzinfo=UTC), "1.25"),
        ("GBP", datetime(year - 1, 1, 1, tzinfo=UTC), "2"),
        ("EUR", datetime(year, 7, 1, tzinfo=UTC), "1.6"),
    ), start=1):  # fmt: skip
        stamp = start.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        rates.append({
            "id": str(90_000 + number), "fromCurrencyCode": code, "toCurrencyCode": "USD",
            "conversionRate": Decimal(rate), "effectiveAt": stamp, "createdAt": stamp,
            "updatedAt": stamp, "visibleInUI": True,
        })  # fmt: skip
    return rates


class Portal:
    """One HubSpot account's CRM data and the rules for changing it."""

    def __init__(
        self,
        org: SeedOrg,
        *,
        portal_id: int = 40_123_456,
        app_id: int = 1_234_567,
        users_custom_properties: bool = True,
        splits_enabled: bool = True,
        clock: Callable[[], float] = time.time,
        multicurrency: bool = False,
    ) -> None:
        self.org = org
        # The company currency first; a multi-currency portal's exchange rates to it.
        self.currencies = ("USD", "EUR", "GBP") if multicurrency else ("USD",)
        self.exchange_rates = exchange_rates(org.year) if multicurrency else []
        # The private app's granted scopes (a call outside them is refused: 403).
        self.scopes = {"settings.currencies.read", TASKS_SCOPE}
        # How long a new task stays out of search results (HubSpot indexes them a moment
        # after the create answers); 0 in most tests.
        self.search_lag_ms = 0
        self.portal_id = portal_id
        self.app_id = app_id
        self.users_custom_properties = users_custom_properties
        self.splits_enabled = splits_enabled
        self.lock = threading.RLock()
        self._clock = clock
        # A real portal holds no stamps from the future: seeded changes after this moment
        # (deals closing later in the year) are stamped now.
        self.started_ms = int(clock() * 1000)
        self._last_ms = 0
        self.listeners: list[EventSink] = []
        self.stores = {
            DEALS: ObjectStore(),
            USERS: ObjectStore(),
            GOAL_TARGETS: ObjectStore(),
            CONTACTS: ObjectStore(),
            TASKS: ObjectStore(),
        }
        self.owners: dict[str, dict[str, Any]] = {}
        self.owner_ids: list[str] = []
        self.user_ids: list[str] = []
        self.deal_ids: list[str] = []
        self.splits: dict[str, list[Split]] = {}
        self._indexes: dict[tuple[str, str], tuple[tuple[str, int], dict[str, CrmRecord]]] = {}
        self._next_split = SPLIT_ID_BASE
        epoch = to_ms(datetime(org.year - 1, 1, 1, tzinfo=UTC))
        self.created_ms = epoch
        self.properties: dict[str, dict[str, PropertyDef]] = {
            DEALS: {p.name: p for p in self._deal_properties(epoch)},
            USERS: {p.name: p for p in self._user_properties(epoch)},
            GOAL_TARGETS: {p.name: p for p in _goal_target_properties()},
            CONTACTS: {p.name: p for p in _contact_properties()},
            TASKS: {p.name: p for p in _task_properties()},
        }
        self.groups: dict[str, dict[str, PropertyGroup]] = {
            DEALS: {"dealinformation": PropertyGroup("dealinformation", "Deal information", 0)},
            USERS: {"userinformation": PropertyGroup("userinformation", "User information", 0)},
            GOAL_TARGETS: {"goalinformation": PropertyGroup("goalinformation", "Goal", 0)},
            CONTACTS: {
                "contactinformation": PropertyGroup("contactinformation", "Contact information", 0)
            },
            TASKS: {"task": PropertyGroup("task", "Task information", 0)},
        }
        self.associations: dict[str, list[tuple[int, str]]] = {}  # task id → (type, id)
        self._seed_people()
        self._seed_deals()
        self._seed_goals()

    # --- seeding ------------------------------------------------------------------

    def _deal_properties(self, epoch: int) -> list[PropertyDef]:
        group = "dealinformation"
        stages = tuple((stage, STAGE_LABELS[stage]) for stage in STAGE_LABELS)
        types = tuple((value, label) for label, value in DEAL_TYPE_VALUES.items())
        return [
            PropertyDef("dealname", "Deal Name", "string", "text", group),
            PropertyDef(
                "amount", "Amount", "number", "number", group, number_display_hint="currency"
            ),
            PropertyDef("closedate", "Close Date", "datetime", "date", group),
            PropertyDef("dealstage", "Deal Stage", "enumeration", "radio", group, options=stages),
            PropertyDef(
                "pipeline",
                "Pipeline",
                "enumeration",
                "select",
                group,
                options=((PIPELINE_ID, "Sales Pipeline"),),
            ),
            PropertyDef(
                "hubspot_owner_id",
                "Deal owner",
                "enumeration",
                "select",
                group,
                referenced_object_type="OWNER",
            ),
            PropertyDef("dealtype", "Deal Type", "enumeration", "radio", group, options=types),
            # Every portal has it; its options are the portal's currencies.
            PropertyDef(
                "deal_currency_code",
                "Currency",
                "enumeration",
                "select",
                group,
                options=tuple((code, code) for code in self.currencies),
            ),
            PropertyDef(
                "hs_is_closed_won",
                "Is Closed Won",
                "bool",
                "booleancheckbox",
                group,
                options=(("true", "True"), ("false", "False")),
                read_only=True,
                calculated=True,
            ),
            PropertyDef(
                "hs_is_closed",
                "Is Deal Closed?",
                "bool",
                "booleancheckbox",
                group,
                options=(("true", "True"), ("false", "False")),
                read_only=True,
                calculated=True,
            ),
            PropertyDef(
                "hs_deal_stage_probability",
                "Deal Stage Probability",
                "number",
                "number",
                group,
                read_only=True,
                calculated=True,
                number_display_hint="probability",
            ),
            PropertyDef("createdate", "Create Date", "datetime", "date", group, read_only=True),
            PropertyDef(
                "hs_lastmodifieddate",
                "Last Modified Date",
                "datetime",
                "date",
                group,
                read_only=True,
            ),
            PropertyDef(
                "hs_object_id",
                "Record ID",
                "number",
                "number",
                group,
                read_only=True,
                has_unique_value=True,
            ),
        ]

    def _user_properties(self, epoch: int) -> list[PropertyDef]:
        group = "userinformation"
        return [
            PropertyDef("hs_email", "Email", "string", "text", group, read_only=True),
            PropertyDef("hs_given_name", "First name", "string", "text", group, read_only=True),
            PropertyDef("hs_family_name", "Last name", "string", "text", group, read_only=True),
            PropertyDef(
                "hs_internal_user_id",
                "User ID",
                "number",
                "number",
                group,
                read_only=True,
                has_unique_value=True,
            ),
            PropertyDef("hs_createdate", "Create date", "datetime", "date", group, read_only=True),
            PropertyDef(
                "hs_lastmodifieddate",
                "Last modified date",
                "datetime",
                "date",
                group,
                read_only=True,
            ),
            PropertyDef(
                "hs_object_id",
                "Record ID",
                "number",
                "number",
                group,
                read_only=True,
                has_unique_value=True,
            ),
        ]

    def _seed_people(self) -> None:
        reps = self.org.reps
        teams = {
            r.index: {"id": str(TEAM_ID_BASE + r.index), "name": f"Team {r.last_name}"}
            for r in reps
            if r.manager_index is None
        }
        for rep in reps:
            owner_id = str(OWNER_ID_BASE + rep.index)
            user_id = USER_ID_BASE + rep.index * 3
            created = to_ms(rep.created_at)
            lead = rep.index if rep.manager_index is None else rep.manager_index
            team = teams.get(lead)
            owner: dict[str, Any] = {
                "id": owner_id,
                "email": rep.email,
                "type": "PERSON",
                "firstName": rep.first_name,
                "lastName": rep.last_name,
                "userId": user_id,
                "userIdIncludingInactive": user_id,
                "createdAt": iso_ms(created),
                "updatedAt": iso_ms(created),
                "archived": not rep.active,
                "teams": [{**team, "primary": True}] if team else [],
            }
            self.owners[owner_id] = owner
            self.owner_ids.append(owner_id)
            num = USER_OBJECT_ID_BASE + rep.index
            record = CrmRecord(
                id=str(num),
                num=num,
                properties={
                    "hs_object_id": str(num),
                    "hs_internal_user_id": str(user_id),
                    "hs_email": rep.email,
                    "hs_given_name": rep.first_name,
                    "hs_family_name": rep.last_name,
                    "hs_createdate": iso_ms(created),
                    "hs_lastmodifieddate": iso_ms(created),
                },
                created_ms=created,
                updated_ms=created,
            )
            self.stores[USERS].add(record)
            self.user_ids.append(record.id)
            self._last_ms = max(self._last_ms, created)

    def _seed_deals(self) -> None:
        store = self.stores[DEALS]
        for deal in self.org.deals:
            num = DEAL_ID_BASE + deal.index
            stage = STAGE_IDS[deal.stage]
            # Capped stamps stay distinct, so no search window holds thousands of equal ones.
            latest = self.started_ms - len(self.org.deals) + deal.index
            created = min(to_ms(deal.created_at), latest)
            modified = min(to_ms(deal.modified_at), latest)
            record = CrmRecord(
                id=str(num),
                num=num,
                properties={
                    "dealname": deal.name,
                    "amount": _money_text(deal.amount),
                    "closedate": _close_date_text(deal.close_date),
                    "dealstage": stage,
                    "pipeline": PIPELINE_ID,
                    "hubspot_owner_id": str(OWNER_ID_BASE + deal.owner_index),
                    "dealtype": DEAL_TYPE_VALUES[deal.type],
                    "createdate": iso_ms(created),
                    "hs_lastmodifieddate": iso_ms(modified),
                    "hs_object_id": str(num),
                },
                created_ms=created,
                updated_ms=modified,
            )
            record.properties.update(self._derived(stage))
            store.add(record)
            self.deal_ids.append(record.id)
            self._last_ms = max(self._last_ms, modified)
            if deal.splits:
                self.splits[record.id] = [
                    self._new_split(
                        record.id, str(OWNER_ID_BASE + s.rep_index), s.percent / 100, created
                    )
                    for s in deal.splits
                ]

    def _seed_goals(self) -> None:
        """A monthly revenue goal target per rep, and contacts (some became customers)."""
        targets = self.stores[GOAL_TARGETS]
        for number, quota in enumerate(self.org.quotas):
            num = GOAL_TARGET_ID_BASE + number
            start = to_ms(datetime.combine(quota.month, datetime.min.time(), tzinfo=UTC))
            month_end = (
                date(quota.month.year + 1, 1, 1)
                if quota.month.month == 12
                else date(quota.month.year, quota.month.month + 1, 1)
            )
            end = to_ms(datetime.combine(month_end, datetime.min.time(), tzinfo=UTC)) - 1
            created = min(start, self.started_ms)
            targets.add(
                CrmRecord(
                    id=str(num),
                    num=num,
                    properties={
                        "hs_goal_name": f"Revenue {self.org.year}",
                        "hs_assignee_user_id": str(USER_ID_BASE + quota.rep_index * 3),
                        "hs_start_datetime": iso_ms(start),
                        "hs_end_datetime": iso_ms(end),
                        "hs_target_amount": _money_text(quota.amount),
                        "hs_createdate": iso_ms(created),
                        "hs_lastmodifieddate": iso_ms(created),
                        "hs_object_id": str(num),
                    },
                    created_ms=created,
                    updated_ms=created,
                )
            )
        contacts = self.stores[CONTACTS]
        for lead in self.org.leads:
            created = to_ms(lead.created_at)
            if created > self.started_ms:
                continue  # not created yet
            num = CONTACT_ID_BASE + lead.index
            contacts.add(
                CrmRecord(
                    id=str(num),
                    num=num,
                    properties={
                        "email": f"prospect{lead.index + 1}@prospect.example",
                        "firstname": "Prospect",
                        "lastname": str(lead.index + 1),
                        "hubspot_owner_id": str(OWNER_ID_BASE + lead.owner_index),
                        "lifecyclestage": "customer" if lead.converted else "lead",
                        "createdate": iso_ms(created),
                        "lastmodifieddate": iso_ms(created),
                        "hs_object_id": str(num),
                    },
                    created_ms=created,
                    updated_ms=created,
                )
            )

    def _new_split(self, deal_id: str, owner_id: str, fraction: Decimal, at: int) -> Split:
        split = Split(str(self._next_split), deal_id, owner_id, fraction, at)
        self._next_split += 1
        return split

    @staticmethod
    def _derived(stage: str) -> dict[str, str]:
        known = stage in STAGE_PROBABILITY
        return {
            "hs_is_closed_won": "true" if stage == "closedwon" else "false",
            "hs_is_closed": "true" if stage in ("closedwon", "closedlost") else "false",
            "hs_deal_stage_probability": _probability(stage) if known else "0",
        }

    # --- clock and events -----------------------------------------------------------

    def next_ms(self) -> int:
        """The next modification time: now, but always after every earlier one (seeded ones too)."""
        with self.lock:
            self._last_ms = max(int(self._clock() * 1000), self._last_ms + 1)
            return self._last_ms

    def _emit(self, events: list[dict[str, Any]]) -> None:
        if events:
            for listener in list(self.listeners):
                listener(events)

    def _event(
        self, kind: str, record: CrmRecord, at: int, source: str, name: str = "", value: str = ""
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "occurredAt": at,
            "subscriptionType": f"deal.{kind}",
            "objectId": record.num,
        }
        if kind == "propertyChange":
            event["propertyName"] = name
            event["propertyValue"] = value
        if source == "API":
            event["changeSource"] = "INTEGRATION"
            event["sourceId"] = str(self.app_id)
        else:
            event["changeSource"] = "CRM_UI"
            event["sourceId"] = f"userId:{USER_ID_BASE}"
        return event

    # --- properties -----------------------------------------------------------------

    def property_defs(self, object_type: str) -> dict[str, PropertyDef]:
        return self.properties[object_type]

    def check_custom_allowed(self, object_type: str) -> None:
        if object_type == USERS and not self.users_custom_properties:
            raise ApiError(
                400,
                "Custom properties are not supported for object type users in this account.",
                "VALIDATION_ERROR",
            )

    def create_property(self, object_type: str, body: dict[str, Any]) -> PropertyDef:
        self.check_custom_allowed(object_type)
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            raise ApiError(
                400,
                f"Invalid input JSON: missing required field(s): {', '.join(missing)}",
                "VALIDATION_ERROR",
            )
        name, kind, field_type = str(body["name"]), str(body["type"]), str(body["fieldType"])
        hint = body.get("numberDisplayHint")
        if kind not in PROPERTY_TYPES or field_type not in FIELD_TYPES:
            raise ApiError(
                400,
                f"Invalid type/fieldType combination: {kind}/{field_type}",
                "VALIDATION_ERROR",
            )
        if hint is not None and hint not in NUMBER_DISPLAY_HINTS:
            raise ApiError(400, f"Invalid numberDisplayHint: {hint}", "VALIDATION_ERROR")
        with self.lock:
            defs = self.properties[object_type]
            if name in defs:
                raise ApiError(
                    409,
                    "Property already exists",
                    "OBJECT_ALREADY_EXISTS",
                    subCategory="PropertyValidationError.PROPERTY_ALREADY_EXISTS",
                    context={"name": [name]},
                )
            group = str(body["groupName"])
            if group not in self.groups[object_type]:
                raise ApiError(
                    400,
                    f"property group {group} does not exist",
                    "VALIDATION_ERROR",
                    context={"groupName": [group]},
                )
            options = tuple(
                (str(o.get("value", "")), str(o.get("label", "")))
                for o in body.get("options") or ()
            )
            prop = PropertyDef(
                name=name,
                label=str(body["label"]),
                type=kind,
                field_type=field_type,
                group_name=group,
                description=str(body.get("description") or ""),
                options=options,
                hubspot_defined=False,
                number_display_hint=hint,
                display_order=int(body.get("displayOrder", -1)),
                has_unique_value=bool(body.get("hasUniqueValue", False)),
                created_ms=self.next_ms(),
            )
            defs[name] = prop
            return prop

    def create_group(self, object_type: str, body: dict[str, Any]) -> PropertyGroup:
        self.check_custom_allowed(object_type)
        if not body.get("name") or not body.get("label"):
            raise ApiError(
                400, "Invalid input JSON: name and label are required", "VALIDATION_ERROR"
            )
        with self.lock:
            groups = self.groups[object_type]
            name = str(body["name"])
            if name in groups:
                raise ApiError(
                    409,
                    f"A property group named '{name}' already exists.",
                    "OBJECT_ALREADY_EXISTS",
                    context={"name": [name]},
                )
            group = PropertyGroup(name, str(body["label"]), int(body.get("displayOrder", -1)))
            groups[name] = group
            return group

    # --- reading ----------------------------------------------------------------------

    def get(self, object_type: str, object_id: str, *, archived: bool = False) -> CrmRecord | None:
        record = self.stores[object_type].by_id.get(object_id)
        if record is None or record.archived != archived:
            return None
        return record

    def find_by(self, object_type: str, name: str, value: str) -> CrmRecord | None:
        """A live record by a unique property's value (``idProperty``)."""
        if name == "hs_object_id":
            return self.get(object_type, value)
        return self.index_by(object_type, name).get(value)

    def index_by(self, object_type: str, name: str) -> dict[str, CrmRecord]:
        """Live records by one property's value, rebuilt only after the records change."""
        store = self.stores[object_type]
        with self.lock:
            key = (name, store.revision)
            index = self._indexes.get((object_type, name))
            if index is None or index[0] != key:
                values = {r.properties[name]: r for r in store.live() if name in r.properties}
                index = (key, values)
                self._indexes[(object_type, name)] = index
            return index[1]

    # --- writing ----------------------------------------------------------------------

    def validate(
        self, object_type: str, values: dict[str, Any], *, trusted: bool = False
    ) -> dict[str, str]:
        """Check property values as HubSpot does; answer them normalised to stored text."""
        defs = self.properties[object_type]
        problems: list[dict[str, Any]] = []
        clean: dict[str, str] = {}
        for name, raw in values.items():
            prop = defs.get(name)
            text = "" if raw is None else str(raw)
            if prop is None:
                problems.append(
                    _problem(name, f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST")
                )
                continue
            if prop.read_only and not trusted:
                problems.append(
                    _problem(
                        name,
                        f'"{name}" is a read only property; its value cannot be set.',
                        "READ_ONLY_VALUE",
                    )
                )
                continue
            error = self._value_error(prop, text)
            if error:
                problems.append(_problem(name, *error))
                continue
            if prop.type in ("datetime", "date") and text:
                ms = parse_time_ms(text)
                assert ms is not None
                text = iso_ms(ms) if prop.type == "datetime" else iso_ms(ms)[:10]
            clean[name] = text
        if problems:
            raise ApiError(
                400,
                "Property values were not valid: " + json.dumps(problems, separators=(",", ":")),
                "VALIDATION_ERROR",
                errors=[
                    {
                        "message": p["message"],
                        "code": p["error"],
                        "context": {"propertyName": [p["name"]]},
                    }
                    for p in problems
                ],
                context={"propertyName": [p["name"] for p in problems]},
            )
        return clean

    def _value_error(self, prop: PropertyDef, text: str) -> tuple[str, str] | None:
        if text == "":
            return None
        if prop.type == "number" and parse_decimal(text) is None:
            return f"{text} was not a valid number.", "INVALID_FLOAT"
        if prop.type in ("datetime", "date") and parse_time_ms(text) is None:
            return f"{text} was not a valid long.", "INVALID_DATE"
        if prop.type == "bool" and text not in ("true", "false"):
            return f"{text} was not a valid boolean.", "INVALID_BOOLEAN"
        if prop.name == "hubspot_owner_id" and text not in self.owners:
            return f"{text} is not a valid owner id", "INVALID_OWNER_ID"
        if prop.type == "enumeration" and prop.options and text not in {v for v, _ in prop.options}:
            allowed = ", ".join(v for v, _ in prop.options)
            return (
                f"{text} was not one of the allowed options: [{allowed}]",
                "INVALID_OPTION",
            )
        return None

    def indexed(self, object_type: str) -> Iterable[CrmRecord]:
        """The live records search can see: a task is indexed a moment after its create."""
        live = self.stores[object_type].live()
        if object_type != TASKS or not self.search_lag_ms:
            return live
        seen_before = int(self._clock() * 1000) - self.search_lag_ms
        return [r for r in live if r.created_ms <= seen_before]

    def _task_links(self, associations: list[Any]) -> list[tuple[int, str]]:
        """A new task's associations, checked as HubSpot checks them."""
        links: list[tuple[int, str]] = []
        for item in associations:
            target = str(((item or {}).get("to") or {}).get("id", ""))
            for kind in (item or {}).get("types") or []:
                type_id = int(kind.get("associationTypeId", 0))
                category = kind.get("associationCategory")
                if category != "HUBSPOT_DEFINED" or type_id not in TASK_ASSOCIATIONS:
                    raise ApiError(
                        400,
                        f"{category} {type_id} is not a valid association type from tasks",
                        "VALIDATION_ERROR",
                    )
                if self.get(TASK_ASSOCIATIONS[type_id], target) is None:
                    raise ApiError(
                        400,
                        f"No {TASK_ASSOCIATIONS[type_id][:-1]} with id {target} exists",
                        "INVALID_OBJECT_ID",
                    )
                links.append((type_id, target))
        return links

    def create(
        self,
        object_type: str,
        values: dict[str, Any],
        *,
        source: str = "API",
        associations: list[Any] | None = None,
    ) -> CrmRecord:
        clean = self.validate(object_type, values)
        links = self._task_links(associations or []) if object_type == TASKS else []
        if associations and object_type != TASKS:
            raise ApiError(400, "associations are not supported here", "VALIDATION_ERROR")
        if object_type == TASKS and not clean.get("hs_timestamp"):
            raise ApiError(
                400,
                "Property values were not valid: "
                + json.dumps([_problem("hs_timestamp", "hs_timestamp is required",
                                       "REQUIRED_PROPERTY")], separators=(",", ":")),
                "VALIDATION_ERROR",
            )  # fmt: skip
        with self.lock:
            store = self.stores[object_type]
            at = self.next_ms()
            base = {DEALS: DEAL_ID_BASE, TASKS: TASK_ID_BASE}.get(object_type, USER_OBJECT_ID_BASE)
            num = max(store.order[-1] + 1 if store.order else base, base)
            record = CrmRecord(id=str(num), num=num, properties={}, created_ms=at, updated_ms=at)
            stamp = iso_ms(at)
            props = record.properties
            props["hs_object_id"] = record.id
            props["hs_lastmodifieddate"] = stamp
            if object_type == DEALS:
                props["createdate"] = stamp
                props["pipeline"] = PIPELINE_ID
                props.update(clean)
                props.update(self._derived(props.get("dealstage", "")))
            else:
                props["hs_createdate"] = stamp
                if object_type == TASKS:
                    props.update(hs_task_status="NOT_STARTED", hs_task_priority="NONE",
                                 hs_task_type="TODO")  # fmt: skip
                props.update(clean)
                if links:
                    self.associations[record.id] = links
            store.add(record)
            store.revision += 1
            if object_type == DEALS:
                self.deal_ids.append(record.id)
                events = [self._event("creation", record, at, source)]
                events += [
                    self._event("propertyChange", record, at, source, name, value)
                    for name, value in clean.items()
                ]
                self._emit(events)
            return record

    def update(
        self,
        object_type: str,
        record: CrmRecord,
        clean: dict[str, str],
        *,
        source: str = "API",
    ) -> CrmRecord:
        """Apply already validated values; announce what really changed."""
        with self.lock:
            props = record.properties
            changed = {k: v for k, v in clean.items() if props.get(k) != v}
            at = self.next_ms()
            props.update(clean)
            if object_type == DEALS and "dealstage" in changed:
                props.update(self._derived(props["dealstage"]))
            props["hs_lastmodifieddate"] = iso_ms(at)
            record.updated_ms = at
            record.changed()
            self.stores[object_type].revision += 1
            if object_type == DEALS:
                self._emit(
                    [
                        self._event("propertyChange", record, at, source, name, value)
                        for name, value in changed.items()
                    ]
                )
            return record

    def archive(self, object_type: str, record: CrmRecord, *, source: str = "API") -> None:
        with self.lock:
            if record.archived:
                return
            at = self.next_ms()
            record.archived = True
            record.archived_ms = at
            record.updated_ms = at
            record.properties["hs_lastmodifieddate"] = iso_ms(at)
            record.changed()
            self.stores[object_type].revision += 1
            if object_type == DEALS:
                self._emit([self._event("deletion", record, at, source)])

    # --- mutations (what a person does in the CRM) ------------------------------------

    def deal(self, deal_id: str) -> CrmRecord:
        record = self.get(DEALS, deal_id)
        if record is None:
            raise KeyError(f"no live deal {deal_id}")
        return record

    def mutate(self, deal_id: str, values: dict[str, str]) -> CrmRecord:
        with self.lock:
            record = self.deal(deal_id)
            return self.update(DEALS, record, self.validate(DEALS, values), source="CRM_UI")

    def close_deal(self, deal_id: str, *, won: bool, on: date | None = None) -> CrmRecord:
        values = {"dealstage": "closedwon" if won else "closedlost"}
        if on is not None:
            values["closedate"] = _close_date_text(on)
        return self.mutate(deal_id, values)

    def reverse_deal(self, deal_id: str) -> CrmRecord:
        with self.lock:
            record = self.deal(deal_id)
            if record.properties.get("dealstage") != "closedwon":
                raise ValueError(
                    f"deal {deal_id} is not closed won; only won deals can be reversed"
                )
            return self.mutate(deal_id, {"dealstage": "closedlost"})

    def create_deal(
        self,
        *,
        name: str,
        amount: Decimal,
        owner_id: str,
        stage: str = "appointmentscheduled",
        close_date: date | None = None,
        deal_type: str = "newbusiness",
    ) -> CrmRecord:
        close = close_date or datetime.now(UTC).date()
        values = {
            "dealname": name,
            "amount": _money_text(amount),
            "hubspot_owner_id": owner_id,
            "dealstage": stage,
            "closedate": _close_date_text(close),
            "dealtype": deal_type,
        }
        return self.create(DEALS, values, source="CRM_UI")

    def archive_deal(self, deal_id: str) -> None:
        with self.lock:
            self.archive(DEALS, self.deal(deal_id), source="CRM_UI")


def _goal_target_properties() -> list[PropertyDef]:
    group = "goalinformation"
    return [
        PropertyDef("hs_goal_name", "Goal name", "string", "text", group, read_only=True),
        PropertyDef(
            "hs_assignee_user_id", "Assignee user ID", "number", "number", group, read_only=True
        ),
        PropertyDef("hs_start_datetime", "Start date", "datetime", "date", group, read_only=True),
        PropertyDef("hs_end_datetime", "End date", "datetime", "date", group, read_only=True),
        PropertyDef(
            "hs_target_amount",
            "Target amount",
            "number",
            "number",
            group,
            read_only=True,
            number_display_hint="currency",
        ),
        PropertyDef("hs_createdate", "Create date", "datetime", "date", group, read_only=True),
        PropertyDef(
            "hs_lastmodifieddate", "Last modified date", "datetime", "date", group, read_only=True
        ),
        PropertyDef("hs_object_id", "Record ID", "number", "number", group, read_only=True),
    ]


def _contact_properties() -> list[PropertyDef]:
    group = "contactinformation"
    stages = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
              "opportunity", "customer")  # fmt: skip
    return [
        PropertyDef("email", "Email", "string", "text", group),
        PropertyDef("firstname", "First name", "string", "text", group),
        PropertyDef("lastname", "Last name", "string", "text", group),
        PropertyDef("hubspot_owner_id", "Contact owner", "enumeration", "select", group),
        PropertyDef(
            "lifecyclestage",
            "Lifecycle stage",
            "enumeration",
            "radio",
            group,
            options=tuple((stage, stage) for stage in stages),
        ),
        PropertyDef("createdate", "Create date", "datetime", "date", group, read_only=True),
        PropertyDef(
            "lastmodifieddate", "Last modified date", "datetime", "date", group, read_only=True
        ),
        PropertyDef("hs_object_id", "Record ID", "number", "number", group, read_only=True),
    ]


def _task_properties() -> list[PropertyDef]:
    group = "task"
    return [
        PropertyDef("hs_task_subject", "Task Title", "string", "text", group),
        PropertyDef("hs_task_body", "Notes", "string", "html", group),
        PropertyDef(
            "hs_task_status", "Task Status", "enumeration", "select", group,
            options=tuple((status, status.replace("_", " ").title()) for status in TASK_STATUSES),
        ),
        PropertyDef(
            "hs_task_priority", "Priority", "enumeration", "select", group,
            options=(("NONE", "None"), ("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High")),
        ),
        PropertyDef(
            "hs_task_type", "Task Type", "enumeration", "select", group,
            options=(("TODO", "To-do"), ("CALL", "Call"), ("EMAIL", "Email")),
        ),
        PropertyDef("hs_timestamp", "Due date", "datetime", "date", group),
        PropertyDef("hubspot_owner_id", "Assigned to", "enumeration", "select", group),
        PropertyDef("hs_createdate", "Created at", "datetime", "date", group, read_only=True),
        PropertyDef(
            "hs_lastmodifieddate", "Last modified date", "datetime", "date", group, read_only=True
        ),
        PropertyDef("hs_object_id", "Record ID", "number", "number", group, read_only=True),
    ]  # fmt: skip


def _problem(name: str, message: str, error: str) -> dict[str, Any]:
    return {
        "isValid": False,
        "message": message,
        "error": error,
        "name": name,
        "localizedErrorMessage": message,
    }
