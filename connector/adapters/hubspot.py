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

from connector.adapters.base import Metadata, MetadataCache, NoCache
from connector.adapters.retry import ConnectFailure, RetryPolicy, connect_failure, unreachable
from connector.core.fields import CATALOGUE, HUBSPOT_DEAL_INPUTS, FieldSpec, RecordKind, ValueKind
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
from connector.errors import (
    ConfigError,
    CrmAuthError,
    CrmConfigError,
    CrmError,
    CrmLimitError,
    CrmUnavailableError,
    RetryableError,
)

LIST_PAGE = 100
SEARCH_PAGE = 200
SEARCH_CAP = 10_000
BATCH_SIZE = 100
GROUP = "spm_compensation"
_DEAL_PROPERTIES = HUBSPOT_DEAL_INPUTS
_PROPERTY_TYPE = {
    ValueKind.MONEY: ("number", "number", "currency"),
    ValueKind.FRACTION: ("number", "number", "percentage"),
    ValueKind.TEXT: ("string", "text", None),
    ValueKind.DATETIME: ("datetime", "date", None),
    ValueKind.NUMBER: ("number", "number", None),
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
    quota_goal: str | None = None  # only goal targets of the goal of this name are quotas
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
    # The deal columns a goal or SPIFF filter can name, besides the Deal's own.
    deal_columns = frozenset({"Name", "StageName", "Pipeline", "Type"})

    def __init__(
        self,
        settings: HubSpotSettings,
        access_token: SecretStr,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        *,
        client: HubSpot | None = None,
        cache: MetadataCache | None = None,
    ) -> None:
        self.settings = settings
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._client = client or HubSpot(**client_options(settings, access_token))
        self._calls = 0
        self._paced = 0.0
        self._budget = _Budget()
        self._specs = {spec.key: spec for spec in settings.fields}
        self._metadata = Metadata(cache or NoCache(), settings.base_url)
        self._account: str | None = None
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
        url = self.settings.base_url

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
                failure = connect_failure(error)
                if failure is not None:
                    raise failure from None
                raise ConnectionError("the connection failed") from None
            except Exception as error:
                if _is_api_exception(error):
                    self._observe(getattr(error, "headers", None))
                    raise _mapped(error, url, path) from None
                raise
            self._observe(raw.headers)
            data = raw.data
            return raw.status, json.loads(data) if data else None

        try:
            return self._retry.call(attempt)
        except RetryableError as error:
            raise CrmUnavailableError(
                f"HubSpot at {url} kept failing after {self._retry.attempts} attempts: {error}",
                status=error.status,
                code=error.code,
            ) from None
        except ConnectFailure as failure:
            raise unreachable("HubSpot", url, failure, "base_url") from None
        except OSError as error:
            cause = connect_failure(error)
            if cause is not None:
                raise unreachable("HubSpot", url, cause, "base_url") from None
            raise CrmUnavailableError(
                f"could not reach HubSpot at {url}: {error}; check crm.base_url and the network"
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

    def writer_id(self) -> str | None:
        return None  # HubSpot's events name the app that made a change (changeSource, sourceId)

    def account_id(self) -> str:
        """The portal id (``portalId``), read once."""
        if self._account is None:
            _, answer = self._request("owners", "/account-info/v3/details")
            self._account = str((answer or {}).get("portalId", ""))
            if not self._account:
                raise CrmError(f"HubSpot at {self.settings.base_url} names no portal id")
        return self._account

    def _properties(self, object_type: str, *, refresh: bool = False) -> dict[str, dict[str, Any]]:
        def fetch() -> dict[str, dict[str, Any]]:
            _, answer = self._request("properties", f"/crm/v3/properties/{object_type}")
            return {
                p["name"]: {
                    "type": p.get("type"),
                    "hubspotDefined": bool(p.get("hubspotDefined")),
                    "options": p.get("options") or [],
                }
                for p in answer.get("results", [])
            }

        found: dict[str, dict[str, Any]] = self._metadata.get(
            f"properties:{object_type}", fetch, refresh=refresh
        )
        return found

    def _require(self, object_type: str, specs: Sequence[FieldSpec]) -> None:
        """Our properties exist with the types we write; a cached list is checked afresh first."""
        problems = _property_problems(object_type, specs, self._properties(object_type))
        if problems:
            fresh = self._properties(object_type, refresh=True)
            problems = _property_problems(object_type, specs, fresh)
        if problems:
            raise ConfigError("; ".join(problems))

    def _outcomes(self, *, refresh: bool = False) -> dict[tuple[str, str], Outcome]:
        """(pipeline, stage) → outcome, from the stages' metadata."""

        def fetch() -> list[list[str]]:
            _, answer = self._request("pipelines", "/crm/v3/pipelines/deals")
            stages: list[list[str]] = []
            for pipeline in answer.get("results", []):
                for stage in pipeline.get("stages", []):
                    metadata = stage.get("metadata") or {}
                    closed = str(metadata.get("isClosed", "false")).lower() == "true"
                    won = closed and _decimal(str(metadata.get("probability", "0"))) == 1
                    outcome = Outcome.WON if won else Outcome.LOST if closed else Outcome.OPEN
                    stages.append([str(pipeline["id"]), str(stage["id"]), outcome.value])
            return stages

        rows = self._metadata.get("pipelines", fetch, refresh=refresh)
        return {(pipeline, stage): Outcome(outcome) for pipeline, stage, outcome in rows}

    def _ours(self, record: RecordKind) -> list[FieldSpec]:
        return [spec for spec in self.settings.fields if spec.record is record]

    # -- reading ------------------------------------------------------------------------------

    def _owners(self, *, refresh: bool) -> list[dict[str, Any]]:
        """Every owner, archived ones included (their deals still count), cached."""

        def fetch() -> list[dict[str, Any]]:
            owners: list[dict[str, Any]] = []
            for archived in ("false", "true"):
                after: str | None = None
                while True:
                    query = [("limit", LIST_PAGE), ("archived", archived)]
                    if after:
                        query.append(("after", after))
                    _, page = self._request("owners", "/crm/v3/owners", query=query)
                    owners += [
                        {
                            key: owner.get(key)
                            for key in ("id", "email", "firstName", "lastName", "userId")
                        }
                        | {"archived": archived == "true", "team": _primary_team(owner)}
                        for owner in page.get("results", [])
                    ]
                    after = ((page.get("paging") or {}).get("next") or {}).get("after")
                    if not after:
                        break
            return owners

        found: list[dict[str, Any]] = self._metadata.get("owners", fetch, refresh=refresh)
        if found and "team" not in found[0]:
            # Cached by a version that did not keep teams: read them now, not in a day.
            found = self._metadata.get("owners", fetch, refresh=True)
        return found

    def read_users(
        self, include_fields: bool = True, *, refresh: bool = False
    ) -> Iterator[CrmUser]:
        owners = self._owners(refresh=refresh)
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
            record_id: str | None = None
            if record is not None:
                record_id = str(record["id"])
                self._rep_records[owner_id] = record_id
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
                team_id=owner.get("team"),
                fields=values,
                record_id=record_id,
            )

    def _every(self, object_type: str, names: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Every live record of an object type, a page (one call) at a time."""
        after: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", LIST_PAGE), ("properties", ",".join(names))]
            if after:
                query.append(("after", after))
            _, page = self._request("objects", f"/crm/v3/objects/{object_type}", query=query)
            yield from page.get("results", [])
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return

    def read_quotas(self) -> list[CrmQuota]:
        """Goal targets (``goal_targets``) assigned to users, as quota amounts by owner.

        A target names its user (``hs_assignee_user_id``); the owner with that
        ``userId`` is the rep. With ``quota_goal`` set, only targets of the goal
        of that name count (a portal may also track calls made, meetings booked).
        """
        by_user = {str(o.get("userId")): str(o["id"]) for o in self._owners(refresh=False)}
        names = (
            "hs_assignee_user_id",
            "hs_start_datetime",
            "hs_end_datetime",
            "hs_target_amount",
            "hs_goal_name",
        )
        quotas: list[CrmQuota] = []
        for row in self._every("goal_targets", names):
            props = row.get("properties") or {}
            goal = self.settings.quota_goal
            if goal is not None and props.get("hs_goal_name") != goal:
                continue
            owner = by_user.get(str(props.get("hs_assignee_user_id") or ""))
            start, amount = props.get("hs_start_datetime"), props.get("hs_target_amount")
            if owner is None or not start or amount in (None, ""):
                continue
            quotas.append(CrmQuota(owner, self._date(str(start)), _decimal(str(amount))))
        return quotas

    def read_leads(self, since: date) -> list[Lead]:
        """Contacts created on or after ``since`` with an owner; converted = became a customer."""
        names = ("hubspot_owner_id", "createdate", "lifecyclestage")
        leads: list[Lead] = []
        for row in self._every("contacts", names):
            props = row.get("properties") or {}
            owner, created = props.get("hubspot_owner_id"), props.get("createdate")
            if not owner or not created:
                continue
            day = self._date(str(created))
            if day >= since:
                converted = str(props.get("lifecyclestage") or "") == "customer"
                leads.append(Lead(str(row["id"]), str(owner), day, converted))
        return leads

    def _rep_object_records(self, specs: Sequence[FieldSpec]) -> list[dict[str, Any]]:
        object_type = self.settings.rep_object
        if specs:
            self._require(object_type, specs)
        names = ["hs_email", "hs_internal_user_id", *(s.hubspot for s in specs)]
        return list(self._every(object_type, names))

    def read_deals(self, since: datetime | None) -> Iterator[CrmDeal]:
        specs = self._ours(RecordKind.DEAL)
        self._require("deals", specs)
        names = [*_DEAL_PROPERTIES, *(s.hubspot for s in specs)]
        types = self._deal_types()
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

    def _deal_types(self) -> dict[str, str]:
        return {
            str(o.get("value")): str(o.get("label"))
            for o in self._properties("deals").get("dealtype", {}).get("options", [])
        }

    def read_deals_by_id(self, deal_ids: Collection[str]) -> Iterator[CrmDeal]:
        specs = self._ours(RecordKind.DEAL)
        self._require("deals", specs)
        names = [*_DEAL_PROPERTIES, *(s.hubspot for s in specs)]
        types, outcomes = self._deal_types(), self._outcomes()
        wanted = sorted(set(deal_ids))
        for start in range(0, len(wanted), BATCH_SIZE):
            batch = wanted[start : start + BATCH_SIZE]
            found: set[str] = set()
            for row in self._batch_read(batch, names, archived=False):
                found.add(str(row["id"]))
                deal = self._deal(row, specs, types, outcomes)
                if deal is not None:
                    yield deal
            missing = [deal_id for deal_id in batch if deal_id not in found]
            if missing:  # deleted (archived) deals are read apart
                for row in self._batch_read(missing, names, archived=True):
                    deal = self._deal(row, specs, types, outcomes, deleted=True)
                    if deal is not None:
                        yield deal

    def _batch_read(
        self, ids: Sequence[str], names: Sequence[str], *, archived: bool
    ) -> list[dict[str, Any]]:
        _, answer = self._request(
            "deals",
            "/crm/v3/objects/deals/batch/read",
            "POST",
            query=[("archived", "true" if archived else "false")],
            body={"inputs": [{"id": i} for i in ids], "properties": list(names)},
        )
        results: list[dict[str, Any]] = (answer or {}).get("results", [])
        return results

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
        if outcome is None:  # a stage added since we cached the pipelines?
            outcome = self._outcomes(refresh=True).get((pipeline, stage))
        if outcome is None:  # a stage HubSpot does not list: trust its own flags
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
            created_date=self._date(str(props["createdate"])) if props.get("createdate") else None,
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
            if error.status == 403:
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
            if any(u.target_id is None for u in updates) and not self._rep_records:
                list(self.read_users(include_fields=False))
            targets = {}
            for update in updates:
                target = update.target_id or self._rep_records.get(update.record_id)
                if target is not None:
                    targets[update.record_id] = target
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
        for round_ in _rounds([u for u in updates if u.record_id in targets], targets):
            for start in range(0, len(round_), BATCH_SIZE):
                batch = round_[start : start + BATCH_SIZE]
                results.update(self._write_batch(object_type, batch, targets))
        return [results[u.record_id] for u in updates]

    def _write_batch(
        self, object_type: str, batch: Sequence[RecordUpdate], targets: Mapping[str, str]
    ) -> dict[str, WriteResult]:
        """One batch update; records failing for a passing reason are sent again.

        Every input carries its record id as ``objectWriteTraceId``, and a write counts
        as done only when the answer lists it among the results: a 207 may name a
        failed input by its trace id alone, and an input the answer does not mention
        is not confirmed (reported, and sent again by the next sync).
        """
        results: dict[str, WriteResult] = {}
        remaining = list(batch)
        owner_of = {targets[u.record_id]: u.record_id for u in batch}

        def send() -> None:
            nonlocal remaining
            body = {
                "inputs": [
                    {
                        "id": targets[u.record_id],
                        "objectWriteTraceId": u.record_id,
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
            written, failed = _batch_outcome(answer, owner_of)
            retry: list[RecordUpdate] = []
            for update in remaining:
                if update.record_id in failed:
                    category, message = failed[update.record_id]
                    results[update.record_id] = WriteResult(
                        update.record_id, False, category, message
                    )
                    if category in _RETRYABLE_CATEGORIES:
                        retry.append(update)
                elif update.record_id in written:
                    results[update.record_id] = WriteResult(update.record_id, True)
                else:
                    results[update.record_id] = WriteResult(
                        update.record_id,
                        False,
                        "NOT_CONFIRMED",
                        "HubSpot's answer did not list this record as written",
                    )
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
        self,
        specs: Sequence[FieldSpec],
        *,
        dry_run: bool,
        assign_to: Collection[str] = (),
        readers: Collection[str] | None = None,
        layouts: Sequence[str] | None = None,
        skip_layouts: bool = False,
    ) -> list[FieldStatus]:
        # HubSpot has no API for record layouts (install prints the steps) and no
        # field-level security to grant: ``assign_to`` and the layout choices do not apply.
        del assign_to, readers, layouts, skip_layouts
        report: list[FieldStatus] = []
        targets = (("deals", RecordKind.DEAL), (self.settings.rep_object, RecordKind.REP))
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
        self._outcomes()  # kept for the first sync, as the properties are
        return report

    def _ensure_object(
        self, object_type: str, specs: Sequence[FieldSpec], *, dry_run: bool
    ) -> list[FieldStatus]:
        report: list[FieldStatus] = []
        existing = self._properties(object_type, refresh=True)
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
                    self._metadata.forget(f"properties:{object_type}")
                    found = self._properties(object_type, refresh=True).get(spec.hubspot)
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
        self._metadata.forget(f"properties:{object_type}")
        self._properties(object_type)
        return report

    def _create(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """POST a definition; None when it already exists (409)."""
        try:
            _, created = self._request("properties", path, "POST", body=body)
        except CrmError as error:
            if error.status == 409:
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


# -- batches -----------------------------------------------------------------------------------


def _rounds(
    updates: Sequence[RecordUpdate], targets: Mapping[str, str]
) -> list[list[RecordUpdate]]:
    """The updates as rounds in which no CRM record appears twice.

    HubSpot refuses a whole batch that names one record twice. Updates of one
    record id are merged (later values win); updates of different record ids that
    land on one CRM record (two owners matched to one user record) go in separate
    rounds, one after the other, so none is lost.
    """
    merged: dict[str, RecordUpdate] = {}
    for update in updates:
        earlier = merged.get(update.record_id)
        if earlier is not None:
            update = RecordUpdate(
                update.record_id,
                {**earlier.values, **update.values},
                update.target_id or earlier.target_id,
            )
        merged[update.record_id] = update
    rounds: list[list[RecordUpdate]] = []
    seen: dict[str, int] = {}
    for update in merged.values():
        target = targets[update.record_id]
        index = seen.get(target, 0)
        seen[target] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(update)
    return rounds


def _listed(value: Any) -> list[str]:
    """A context entry as a list of ids: HubSpot sends a list, or now and then one string."""
    if value is None:
        return []
    if isinstance(value, list | tuple | set):
        return [str(v) for v in value]
    return [str(value)]


def _batch_outcome(
    answer: Any, owner_of: Mapping[str, str]
) -> tuple[set[str], dict[str, tuple[str, str]]]:
    """A batch answer as (record ids written, record id → (category, message) failed).

    Results and errors are matched by ``objectWriteTraceId`` (our record id) where
    they carry one, else by the CRM record id they name.
    """
    written: set[str] = set()
    failed: dict[str, tuple[str, str]] = {}
    if not isinstance(answer, dict):
        return written, failed
    for result in answer.get("results") or []:
        trace = result.get("objectWriteTraceId")
        if trace is not None:
            written.add(str(trace))
        elif str(result.get("id")) in owner_of:
            written.add(owner_of[str(result.get("id"))])
    for error in answer.get("errors") or []:
        outcome = (str(error.get("category") or "ERROR"), str(error.get("message") or ""))
        context = error.get("context") or {}
        names = _listed(context.get("objectWriteTraceId"))
        names += _listed(error.get("objectWriteTraceId"))
        names += [owner_of[i] for i in _listed(context.get("ids")) if i in owner_of]
        for name in names:
            failed[name] = outcome
            written.discard(name)
    return written, failed


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
    try:
        if raw.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise CrmError(f"HubSpot sent {raw[:40]!r} where a time belongs") from None
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


def _primary_team(owner: Mapping[str, Any]) -> str | None:
    """The owner's primary team id (the first team when none is marked primary)."""
    teams = owner.get("teams") or []
    chosen = next((t for t in teams if t.get("primary")), teams[0] if teams else None)
    return str(chosen["id"]) if chosen and chosen.get("id") is not None else None


def _is_api_exception(error: Exception) -> bool:
    """Any sub-package's ApiException: each has its own class, so go by attributes."""
    return (
        type(error).__name__.endswith("Exception")
        and hasattr(error, "status")
        and (hasattr(error, "body"))
    )


def _is_number(text: str) -> bool:
    try:
        return float(text) >= 0
    except ValueError:
        return False


def client_options(settings: HubSpotSettings, access_token: SecretStr) -> dict[str, Any]:
    """How the library's client is built: our host and CA, and no retries of its own."""
    options: dict[str, Any] = {
        "access_token": access_token.get_secret_value(),
        "host": settings.base_url.rstrip("/"),
        "retry": urllib3.Retry(total=0, redirect=0, respect_retry_after_header=False),
    }
    if settings.ca_bundle is not None:
        options["ssl_ca_cert"] = str(settings.ca_bundle)
    return options


def _property_problems(
    object_type: str, specs: Sequence[FieldSpec], existing: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    missing = [s.hubspot for s in specs if s.hubspot not in existing]
    problems = []
    if missing:
        problems.append(
            f"HubSpot {object_type} have no property {', '.join(missing)}: "
            "run `spm-connector install` first"
        )
    for spec in specs:
        found = existing.get(spec.hubspot)
        if found is None:
            continue
        kind = _PROPERTY_TYPE[spec.value][0]
        if found.get("hubspotDefined"):
            problems.append(
                f"fields.{spec.key}: {object_type}.{spec.hubspot} is one of HubSpot's own "
                "properties; spm-connector writes only properties of its own: choose another name"
            )
        elif found.get("type") != kind:
            problems.append(
                f"fields.{spec.key}: {object_type}.{spec.hubspot} is a {found.get('type')} "
                f"property, not {kind}: choose another name under `fields:` in spm.yaml"
            )
    return problems


# HTTP status → what it means for us, and what to do. 429 and 5xx are handled first.
_STATUS: dict[int, tuple[type[CrmError], str]] = {
    400: (CrmError, "rejected a request"),
    401: (CrmAuthError, "refused the access token"),
    403: (CrmAuthError, "refused the request"),
    409: (CrmError, "already has it"),
}


def _mapped(error: Exception, base_url: str, path: str = "") -> Exception:
    """Every hubspot-api-client ApiException as one of ours, with its status and category."""
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
    structure: dict[str, Any] = {"status": status, "code": category}
    if status == 429:
        if body.get("policyName") == "DAILY":
            return CrmLimitError(
                "HubSpot's daily API limit is used up; nothing more was written. Run sync "
                "again after midnight (the portal's time zone): it picks up where this one "
                "stopped",
                **structure,
            )
        retry_after = headers.get("Retry-After")
        interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        wait = float(retry_after) if retry_after else float(interval) / 1000 if interval else None
        return RetryableError(
            f"HubSpot rate limit ({body.get('policyName', '429')})", wait, status=429, code=category
        )
    if status == 423:
        # A record locked by concurrent writes: HubSpot holds such a lock about 2 s.
        locked_for = headers.get("Retry-After")
        return RetryableError(
            f"HubSpot answered 423 Locked ({message})",
            max(float(locked_for), 2.0) if locked_for and _is_number(locked_for) else 2.0,
            status=423,
            code=category or "LOCKED",
        )
    if status >= 500 or status == 0:
        return RetryableError(
            f"HubSpot answered {status or 'nothing'} ({message})", status=status, code=category
        )
    # Newer bodies name the code in errors[]; older ones only inside the message text.
    if status == 400 and "PROPERTY_DOESNT_EXIST" in json.dumps(body):
        return CrmConfigError(f"HubSpot: {message}. Run `spm-connector install` first", **structure)
    if status == 404:
        # Every call we make names a collection, never one record: a 404 means the
        # address is wrong.
        return CrmUnavailableError(
            f"HubSpot at {base_url} answered 404 for {path or 'the API'}: check crm.base_url "
            "(https://api.hubapi.com, or a sandbox's address, with no path)",
            **structure,
        )
    kind, meaning = _STATUS.get(status, (CrmError, f"answered {status}"))
    if status == 401:
        hint = "; create a new private-app token and set SPM_HUBSPOT_ACCESS_TOKEN"
    elif status == 403:
        hint = "; grant the private app the scopes listed in docs/hubspot.md"
    else:
        hint = ""
    return kind(
        f"HubSpot at {base_url} {meaning} ({status} {category}: {message}){hint}",
        detail=message,
        **structure,
    )
