"""HubSpot behind the adapter protocol, on hubspot-api-client.

- Every call goes through one method, :meth:`HubSpotAdapter._request`: the
  library's own API clients (auth, TLS, connection pool, its per-package
  ``ApiException``) with raw JSON answers, so values stay exact text and a
  100,000-deal pull does not build a model object per deal. urllib3's own
  retries are off: the shared retry policy does all retrying.
- Pacing: the ``X-HubSpot-RateLimit-*`` headers of every answer say how much
  of the ten-second budget is left; the adapter waits for the window to roll
  on before it runs out, and paces search (limited per second) on its own.
- Reps: plan members are owner ids (a deal's ``hubspot_owner_id``) or emails.
  Rep values are written to the ``users`` object (or ``fields.hubspot_rep_object``),
  matched to each owner by ``hs_internal_user_id`` = the owner's ``userId``, else email.
- Vendor errors become ours in one function, :func:`_mapped`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import urllib3
from hubspot import HubSpot
from pydantic import SecretStr

from connector.adapters.base import (
    ApiUsage,
    CrmDeal,
    CrmSplit,
    CrmUser,
    FieldStatus,
    FieldValue,
    Outcome,
    RecordUpdate,
    WriteResult,
)
from connector.errors import (
    ConfigError,
    CrmAuthError,
    CrmError,
    CrmLimitError,
    CrmUnavailableError,
    RetryableError,
)
from connector.fields import CATALOGUE, FieldSpec, RecordKind, ValueKind
from connector.retry import RetryPolicy
from connector.sync.diff import canonical

LIST_PAGE = 100
SEARCH_PAGE = 200
SEARCH_CAP = 10_000
BATCH_SIZE = 100
GROUP = "spm_compensation"
_DEAL_PROPERTIES = (
    "dealname",
    "amount",
    "closedate",
    "dealstage",
    "pipeline",
    "hubspot_owner_id",
    "hs_lastmodifieddate",
    "dealtype",
    "hs_is_closed_won",
    "hs_is_closed",
    "deal_currency_code",
)
_PROPERTY_TYPE = {
    ValueKind.MONEY: ("number", "number", "currency"),
    ValueKind.FRACTION: ("number", "number", "percentage"),
    ValueKind.TEXT: ("string", "text", None),
    ValueKind.DATETIME: ("datetime", "date", None),
}
# 207 error categories worth sending again (the record was busy, not wrong).
_RETRYABLE_CATEGORIES = frozenset({"CONFLICT", "RATE_LIMITS", "LOCKED"})


@dataclass(frozen=True)
class HubSpotSettings:
    base_url: str = "https://api.hubapi.com"
    pipelines: tuple[str, ...] | None = None
    ca_bundle: Path | None = None
    timeout_s: float = 30.0
    fields: tuple[FieldSpec, ...] = CATALOGUE
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    rep_object: str = "users"
    searches_per_second: float = 4.0
    reserve: int = 2  # calls kept in hand in each ten-second window


@dataclass
class _Budget:
    """The ten-second window as the last answer reported it, plus our own count."""

    limit: int | None = None
    interval_s: float = 10.0
    remaining: int | None = None
    calls: list[float] = field(default_factory=list)
    searches: list[float] = field(default_factory=list)
    daily: int | None = None
    daily_remaining: int | None = None


class HubSpotAdapter:
    name = "hubspot"

    def __init__(
        self,
        settings: HubSpotSettings,
        access_token: SecretStr,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        options: dict[str, Any] = {
            "access_token": access_token.get_secret_value(),
            "host": settings.base_url.rstrip("/"),
            "retry": urllib3.Retry(total=0, redirect=0, respect_retry_after_header=False),
        }
        if settings.ca_bundle is not None:
            options["ssl_ca_cert"] = str(settings.ca_bundle)
        self._client = HubSpot(**options)
        self._calls = 0
        self._paced = 0.0
        self._budget = _Budget()
        self._specs = {spec.key: spec for spec in settings.fields}
        self._defs: dict[str, dict[str, dict[str, Any]]] = {}
        self._stages: dict[tuple[str, str], Outcome] | None = None
        self._rep_records: dict[str, str] = {}  # owner id → rep object record id
        self._apis: dict[str, Any] = {}

    # -- the one way out ------------------------------------------------------------------

    def _api(self, area: str) -> Any:
        """The library's API object whose client (and exception class) a call goes through.

        Kept: the library builds a new client, with a new connection pool, on every
        attribute access.
        """
        api = self._apis.get(area)
        if api is None:
            crm = self._client.crm
            api = {
                "owners": lambda: crm.owners.owners_api,
                "deals": lambda: crm.deals.basic_api,
                "objects": lambda: crm.objects.basic_api,
                "pipelines": lambda: crm.pipelines.pipelines_api,
                "properties": lambda: crm.properties.core_api,
            }[area]()
            self._apis[area] = api
        return api

    def _request(
        self,
        area: str,
        path: str,
        method: str = "GET",
        *,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        search: bool = False,
    ) -> tuple[int, Any]:
        """One API call: paced, counted, retried when transient; (status, parsed JSON)."""
        api_client = self._api(area).api_client

        def attempt() -> tuple[int, Any]:
            self._pace(search)
            self._calls += 1
            try:
                raw = api_client.call_api(
                    path,
                    method,
                    query_params=list(query),
                    header_params={
                        "Accept": "application/json",
                        "Content-Type": "application/json",
                    },
                    body=body,
                    auth_settings=["oauth2"],
                    response_types_map={},
                    _preload_content=False,
                    _return_http_data_only=True,
                    _request_timeout=self.settings.timeout_s,
                )
            except urllib3.exceptions.HTTPError as error:
                raise ConnectionError(type(error).__name__) from None
            except Exception as error:
                if _is_api_exception(error):
                    self._observe(getattr(error, "headers", None))
                    raise _mapped(error, self.settings.base_url) from None
                raise
            self._observe(raw.headers)
            data = raw.data
            return raw.status, json.loads(data) if data else None

        try:
            return self._retry.call(attempt)
        except RetryableError as error:
            raise CrmUnavailableError(
                f"HubSpot at {self.settings.base_url} kept failing after "
                f"{self._retry.attempts} attempts: {error}"
            ) from None
        except OSError as error:
            raise CrmUnavailableError(
                f"could not reach HubSpot at {self.settings.base_url} ({error}); "
                "check crm.base_url and the network"
            ) from None

    def _observe(self, headers: Mapping[str, str] | None) -> None:
        if not headers:
            return
        budget = self._budget
        try:
            if "X-HubSpot-RateLimit-Max" in headers:
                budget.limit = int(headers["X-HubSpot-RateLimit-Max"])
                budget.remaining = int(headers["X-HubSpot-RateLimit-Remaining"])
            if "X-HubSpot-RateLimit-Interval-Milliseconds" in headers:
                budget.interval_s = int(headers["X-HubSpot-RateLimit-Interval-Milliseconds"]) / 1000
            if "X-HubSpot-RateLimit-Daily" in headers:
                budget.daily = int(headers["X-HubSpot-RateLimit-Daily"])
                budget.daily_remaining = int(headers["X-HubSpot-RateLimit-Daily-Remaining"])
        except (KeyError, ValueError):
            pass  # a malformed header only costs us pacing, never the call

    def _pace(self, search: bool) -> None:
        """Wait, if need be, so this call stays inside the portal's budgets."""
        budget, now = self._budget, self._clock()
        window = budget.interval_s
        budget.calls = [t for t in budget.calls if now - t < window]
        if budget.limit is not None:
            allowed = max(budget.limit - self.settings.reserve, 1)
            if len(budget.calls) >= allowed:
                self._wait(budget.calls[len(budget.calls) - allowed] + window - now)
            elif budget.remaining is not None and budget.remaining <= self.settings.reserve:
                # Someone else shares the budget: let the oldest of our calls age out.
                oldest = budget.calls[0] if budget.calls else now
                self._wait(oldest + window - now)
                budget.remaining = None
        if search:
            now = self._clock()
            budget.searches = [t for t in budget.searches if now - t < 1.0]
            per_second = max(int(self.settings.searches_per_second), 1)
            if len(budget.searches) >= per_second:
                self._wait(budget.searches[0] + 1.0 - now)
            budget.searches.append(self._clock())
        budget.calls.append(self._clock())

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._paced += seconds
            self._sleep(seconds)

    # -- metadata ---------------------------------------------------------------------------

    def _properties(self, object_type: str) -> dict[str, dict[str, Any]]:
        if object_type not in self._defs:
            _, answer = self._request("properties", f"/crm/v3/properties/{object_type}")
            self._defs[object_type] = {p["name"]: p for p in answer.get("results", [])}
        return self._defs[object_type]

    def _require(self, object_type: str, specs: Sequence[FieldSpec]) -> None:
        missing = [s.hubspot for s in specs if s.hubspot not in self._properties(object_type)]
        if missing:
            raise ConfigError(
                f"HubSpot {object_type} have no property {', '.join(missing)}: "
                "run `spm-connector install` first"
            )

    def _outcomes(self) -> dict[tuple[str, str], Outcome]:
        """(pipeline, stage) → outcome, from the stages' metadata."""
        if self._stages is None:
            _, answer = self._request("pipelines", "/crm/v3/pipelines/deals")
            stages: dict[tuple[str, str], Outcome] = {}
            for pipeline in answer.get("results", []):
                for stage in pipeline.get("stages", []):
                    metadata = stage.get("metadata") or {}
                    closed = str(metadata.get("isClosed", "false")).lower() == "true"
                    won = closed and _decimal(str(metadata.get("probability", "0"))) == 1
                    outcome = Outcome.WON if won else Outcome.LOST if closed else Outcome.OPEN
                    stages[(str(pipeline["id"]), str(stage["id"]))] = outcome
            self._stages = stages
        return self._stages

    def _ours(self, record: RecordKind) -> list[FieldSpec]:
        return [spec for spec in self.settings.fields if spec.record is record]

    # -- reading ------------------------------------------------------------------------------

    def read_users(self, include_fields: bool = True) -> Iterator[CrmUser]:
        owners: list[dict[str, Any]] = []
        for archived in ("false", "true"):
            after: str | None = None
            while True:
                query = [("limit", LIST_PAGE), ("archived", archived)]
                if after:
                    query.append(("after", after))
                _, page = self._request("owners", "/crm/v3/owners", query=query)
                owners += page.get("results", [])
                after = ((page.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
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
            if record is not None:
                self._rep_records[owner_id] = str(record["id"])
                props = record["properties"]
                values = {s.key: _value_text(s, props.get(s.hubspot)) for s in specs}
            elif specs:
                values = dict.fromkeys((s.key for s in specs), None)
            name = " ".join(p for p in (owner.get("firstName"), owner.get("lastName")) if p)
            yield CrmUser(
                id=owner_id,
                name=name or email,
                email=email,
                active=not owner.get("archived", False),
                fields=values,
            )

    def _rep_object_records(self, specs: Sequence[FieldSpec]) -> list[dict[str, Any]]:
        object_type = self.settings.rep_object
        if specs:
            self._require(object_type, specs)
        names = ["hs_email", "hs_internal_user_id", *(s.hubspot for s in specs)]
        records: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", LIST_PAGE), ("properties", ",".join(names))]
            if after:
                query.append(("after", after))
            _, page = self._request("objects", f"/crm/v3/objects/{object_type}", query=query)
            records += page.get("results", [])
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return records

    def read_deals(self, since: datetime | None) -> Iterator[CrmDeal]:
        specs = self._ours(RecordKind.DEAL)
        self._require("deals", specs)
        names = [*_DEAL_PROPERTIES, *(s.hubspot for s in specs)]
        types = {
            str(o.get("value")): str(o.get("label"))
            for o in self._properties("deals").get("dealtype", {}).get("options", [])
        }
        outcomes = self._outcomes()
        if since is None:
            rows = self._list_deals(names, archived=False)
        else:
            rows = self._search_deals(names, since)
        for row in rows:
            deal = self._deal(row, specs, types, outcomes)
            if deal is not None:
                yield deal
        for row in self._list_deals(names, archived=True):
            if since is not None and _moment(row.get("archivedAt")) < since:
                continue
            deal = self._deal(row, specs, types, outcomes, deleted=True)
            if deal is not None:
                yield deal

    def _list_deals(self, names: Sequence[str], *, archived: bool) -> Iterator[dict[str, Any]]:
        after: str | None = None
        while True:
            query: list[tuple[str, Any]] = [
                ("limit", LIST_PAGE),
                ("properties", ",".join(names)),
                ("archived", "true" if archived else "false"),
            ]
            if after:
                query.append(("after", after))
            _, page = self._request("deals", "/crm/v3/objects/deals", query=query)
            yield from page.get("results", [])
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return

    def _search_deals(self, names: Sequence[str], since: datetime) -> Iterator[dict[str, Any]]:
        """Deals modified at or after ``since``, oldest first, in windows under the search cap.

        A window pages until the cap; the next window starts at the last stamp read
        (inclusive, so deals sharing that millisecond are not missed) and skips the
        deals already given.
        """
        start_ms = int(since.timestamp() * 1000)
        given: set[str] = set()
        while True:
            after = 0
            last_ms = start_ms
            fresh = 0
            while True:
                body = {
                    "filterGroups": [
                        {
                            "filters": [
                                {
                                    "propertyName": "hs_lastmodifieddate",
                                    "operator": "GTE",
                                    "value": str(start_ms),
                                }
                            ]
                        }
                    ],
                    "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                    "properties": list(names),
                    "limit": SEARCH_PAGE,
                    "after": str(after),
                }
                _, page = self._request(
                    "deals", "/crm/v3/objects/deals/search", "POST", body=body, search=True
                )
                results = page.get("results", [])
                for row in results:
                    last_ms = max(last_ms, _ms(row["properties"].get("hs_lastmodifieddate")))
                    if row["id"] in given:
                        continue
                    given.add(row["id"])
                    fresh += 1
                    yield row
                after += len(results)
                more = (page.get("paging") or {}).get("next")
                if not more:
                    if after >= SEARCH_CAP and int(page.get("total", 0)) > after:
                        break  # the cap, not the end: open the next window
                    return
                if after + SEARCH_PAGE > SEARCH_CAP:
                    break
            if fresh == 0:
                raise CrmError(
                    f"HubSpot: more than {SEARCH_CAP} deals share the modification time "
                    f"{last_ms}; run `spm-connector sync --full`"
                )
            start_ms = last_ms

    def _deal(
        self,
        row: Mapping[str, Any],
        specs: Sequence[FieldSpec],
        types: Mapping[str, str],
        outcomes: Mapping[tuple[str, str], Outcome],
        *,
        deleted: bool = False,
    ) -> CrmDeal | None:
        props: Mapping[str, Any] = row.get("properties") or {}
        pipeline = str(props.get("pipeline") or "")
        if self.settings.pipelines is not None and pipeline not in self.settings.pipelines:
            return None
        stage = str(props.get("dealstage") or "")
        outcome = outcomes.get((pipeline, stage))
        if outcome is None:  # a stage we do not know: trust HubSpot's own flags
            won = str(props.get("hs_is_closed_won") or "").lower() == "true"
            closed = str(props.get("hs_is_closed") or "").lower() == "true"
            outcome = Outcome.WON if won else Outcome.LOST if closed else Outcome.OPEN
        amount_text = props.get("amount")
        amount = _decimal(str(amount_text)) if amount_text not in (None, "") else None
        close = props.get("closedate")
        modified = props.get("hs_lastmodifieddate") or row.get("updatedAt")
        deal_type = props.get("dealtype")
        properties = {
            key: str(value)
            for key, value in (
                ("Name", props.get("dealname")),
                ("StageName", stage),
                ("Pipeline", pipeline),
                ("Type", types.get(str(deal_type), deal_type) if deal_type else None),
            )
            if value
        }
        return CrmDeal(
            id=str(row["id"]),
            owner_id=str(props.get("hubspot_owner_id") or ""),
            amount=amount,
            close_date=self._date(close) if close else None,
            outcome=outcome,
            modified_at=_moment(modified),
            currency=props.get("deal_currency_code") or None,
            type=properties.get("Type"),
            name=str(props.get("dealname") or ""),
            deleted=deleted,
            properties=properties,
            fields={s.key: _value_text(s, props.get(s.hubspot)) for s in specs},
        )

    def _date(self, text: str) -> date:
        """A HubSpot date or datetime (epoch ms or ISO) as a date in the configured time zone."""
        if len(text) == 10 and text[4] == "-":
            return date.fromisoformat(text)
        return _moment(text).astimezone(self.settings.timezone).date()

    def read_splits(self, deal_ids: Collection[str]) -> Iterator[CrmSplit] | None:
        wanted = sorted(deal_ids)  # the engine asks only for deals that are or were won
        if not wanted:
            return iter(())
        try:
            first = self._split_batch(wanted[:BATCH_SIZE])
        except CrmAuthError as error:
            if "splits" in str(error).lower() or "scope" in str(error).lower():
                return None  # the portal has no deal splits (or the token may not read them)
            raise

        def every() -> Iterator[CrmSplit]:
            yield from first
            for start in range(BATCH_SIZE, len(wanted), BATCH_SIZE):
                yield from self._split_batch(wanted[start : start + BATCH_SIZE])

        return every()

    def _split_batch(self, ids: Sequence[str]) -> list[CrmSplit]:
        _, answer = self._request(
            "deals",
            "/crm/objects/v3/deals/splits/batch/read",
            "POST",
            body={"inputs": [{"id": deal_id} for deal_id in ids]},
        )
        splits = []
        for result in answer.get("results", []):
            for split in result.get("splits", []):
                props = split.get("properties") or {}
                fraction = _decimal(str(props.get("hs_deal_split_percentage", "0")))
                splits.append(
                    CrmSplit(
                        deal_id=str(result["id"]),
                        rep_id=str(props.get("hubspot_owner_id")),
                        percent=fraction * 100,
                    )
                )
        return splits

    # -- writing ------------------------------------------------------------------------------

    def write(self, record: RecordKind, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        if record is RecordKind.DEAL:
            object_type, targets = "deals", {u.record_id: u.record_id for u in updates}
        else:
            object_type = self.settings.rep_object
            if not self._rep_records:
                list(self.read_users(include_fields=False))
            targets = {
                u.record_id: self._rep_records[u.record_id]
                for u in updates
                if u.record_id in self._rep_records
            }
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
        sendable = [u for u in updates if u.record_id in targets]
        for start in range(0, len(sendable), BATCH_SIZE):
            batch = sendable[start : start + BATCH_SIZE]
            results.update(self._write_batch(object_type, batch, targets))
        return [results[u.record_id] for u in updates]

    def _write_batch(
        self, object_type: str, batch: Sequence[RecordUpdate], targets: Mapping[str, str]
    ) -> dict[str, WriteResult]:
        """One batch update; records failing for a passing reason are sent again."""
        results: dict[str, WriteResult] = {}
        remaining = list(batch)
        owner_of = {targets[u.record_id]: u.record_id for u in batch}

        def send() -> None:
            nonlocal remaining
            body = {
                "inputs": [
                    {
                        "id": targets[u.record_id],
                        "properties": {
                            self._specs[key].hubspot: _outgoing(self._specs[key], value)
                            for key, value in u.values.items()
                        },
                    }
                    for u in remaining
                ]
            }
            _, answer = self._request(
                "objects" if object_type != "deals" else "deals",
                f"/crm/v3/objects/{object_type}/batch/update",
                "POST",
                body=body,
            )
            failed: dict[str, tuple[str, str]] = {}
            for error in answer.get("errors") or []:
                category = str(error.get("category", "ERROR"))
                for crm_id in (error.get("context") or {}).get("ids", []):
                    failed[str(crm_id)] = (category, str(error.get("message", "")))
            retry: list[RecordUpdate] = []
            for update in remaining:
                crm_id = targets[update.record_id]
                if crm_id in failed:
                    category, message = failed[crm_id]
                    results[update.record_id] = WriteResult(
                        update.record_id, False, category, message
                    )
                    if category in _RETRYABLE_CATEGORIES:
                        retry.append(update)
                else:
                    results[update.record_id] = WriteResult(update.record_id, True)
            remaining = retry
            if retry:
                names = ", ".join(owner_of[targets[u.record_id]] for u in retry[:5])
                raise RetryableError(f"{len(retry)} record(s) busy ({names})")

        # Still failing after every attempt: reported per record, and retried by the next sync.
        with contextlib.suppress(RetryableError):
            self._retry.call(send)
        for update in batch:
            results.setdefault(
                update.record_id,
                WriteResult(update.record_id, False, "NOT_SENT", "the write was not attempted"),
            )
        return results

    # -- install ------------------------------------------------------------------------------

    def ensure_fields(
        self, specs: Sequence[FieldSpec], *, dry_run: bool, assign_to: Collection[str] = ()
    ) -> list[FieldStatus]:
        report: list[FieldStatus] = []
        targets = (("deals", RecordKind.DEAL), (self.settings.rep_object, RecordKind.REP))
        for object_type, record in targets:
            wanted = [s for s in specs if s.record is record]
            try:
                report += self._ensure_object(object_type, wanted, dry_run=dry_run)
            except CrmError as error:
                if record is RecordKind.REP and _refused_custom(error):
                    raise ConfigError(
                        f"this HubSpot portal does not accept custom properties on the "
                        f"'{object_type}' object ({error}). The deal properties are in "
                        "place; for the rep values, create a custom object (for example "
                        "'spm_rep', one record per owner) and name it in spm.yaml under "
                        "fields: hubspot_rep_object"
                    ) from None
                raise
        return report

    def _ensure_object(
        self, object_type: str, specs: Sequence[FieldSpec], *, dry_run: bool
    ) -> list[FieldStatus]:
        report: list[FieldStatus] = []
        self._defs.pop(object_type, None)
        existing = self._properties(object_type)
        _, groups = self._request("properties", f"/crm/v3/properties/{object_type}/groups")
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
            kind, field_type, hint = _PROPERTY_TYPE[spec.value]
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
                    self._defs.pop(object_type, None)
                    found = self._properties(object_type).get(spec.hubspot)
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
        self._defs.pop(object_type, None)
        return report

    def _create(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """POST a definition; None when it already exists (409)."""
        try:
            _, created = self._request("properties", path, "POST", body=body)
        except CrmError as error:
            if "409" in str(error):
                return None
            raise
        return created if isinstance(created, dict) else None

    def usage(self) -> ApiUsage:
        budget = self._budget
        used = (
            budget.daily - budget.daily_remaining
            if budget.daily is not None and budget.daily_remaining is not None
            else None
        )
        return ApiUsage(
            calls=self._calls,
            used=used,
            limit=budget.daily,
            waited_s=self._retry.waited + self._paced,
        )


# -- values ------------------------------------------------------------------------------------


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise CrmError(f"HubSpot sent {text!r} where a number belongs") from None
    if not value.is_finite():
        raise CrmError(f"HubSpot sent {text!r} where a number belongs")
    return value


def _ms(text: Any) -> int:
    return int(_moment(text).timestamp() * 1000)


def _moment(text: Any) -> datetime:
    """HubSpot's timestamps: epoch milliseconds or ISO 8601 (``…Z``), as aware UTC."""
    raw = str(text or "").strip()
    if not raw:
        return datetime.fromtimestamp(0, tz=UTC)
    if raw.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _value_text(spec: FieldSpec, raw: Any) -> str | None:
    """A property value as read → canonical text (HubSpot keeps fractions as fractions)."""
    if raw is None or raw == "":
        return None
    if spec.value is ValueKind.DATETIME:
        return canonical(spec.key, _moment(raw))
    return canonical(spec.key, raw)


def _outgoing(spec: FieldSpec, value: FieldValue) -> str:
    """Canonical text → a HubSpot property value (always a string; empty clears it)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if spec.value is ValueKind.DATETIME:
        return _moment(value).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return str(value)


def _is_api_exception(error: Exception) -> bool:
    """Any sub-package's ApiException: each has its own class, so go by attributes."""
    return (
        type(error).__name__.endswith("Exception")
        and hasattr(error, "status")
        and (hasattr(error, "body"))
    )


def _refused_custom(error: CrmError) -> bool:
    text = str(error).lower()
    return "not supported" in text or "not allowed" in text or "custom propert" in text


def _mapped(error: Exception, base_url: str) -> Exception:
    """Every hubspot-api-client ApiException as one of ours, grouped by what to do next."""
    status = int(getattr(error, "status", 0) or 0)
    raw_body = getattr(error, "body", None)
    headers: Mapping[str, str] = getattr(error, "headers", None) or {}
    try:
        body = json.loads(raw_body) if raw_body else {}
    except (TypeError, ValueError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or getattr(error, "reason", "") or "no details")
    category = str(body.get("category") or "")
    if status == 401:
        return CrmAuthError(
            f"HubSpot at {base_url} refused the access token (401 {category}); create a new "
            "private-app token and set SPM_HUBSPOT_ACCESS_TOKEN"
        )
    if status == 403:
        return CrmAuthError(
            f"HubSpot refused the request (403: {message}); grant the private app the "
            "scopes listed in docs/hubspot.md"
        )
    if status == 429:
        if body.get("policyName") == "DAILY":
            return CrmLimitError(
                "HubSpot's daily API limit is used up; nothing more was written. Run sync "
                "again after midnight (the portal's time zone): it picks up where this one stopped"
            )
        retry_after = headers.get("Retry-After")
        interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        wait = float(retry_after) if retry_after else float(interval) / 1000 if interval else None
        return RetryableError(f"HubSpot rate limit ({body.get('policyName', '429')})", wait)
    if status >= 500 or status == 0:
        return RetryableError(f"HubSpot answered {status or 'nothing'} ({message})")
    if status == 400 and "PROPERTY_DOESNT_EXIST" in str(raw_body):
        return ConfigError(f"HubSpot: {message}. Run `spm-connector install` first")
    return CrmError(f"HubSpot answered {status} ({category}: {message})")
