"""HubSpot's API as the adapter uses it: one way out, pacing, and the portal's metadata.

- Every call goes through one method, :meth:`HubSpotApi.request`: the library's
  own API clients (auth, TLS, connection pool, its per-package ``ApiException``)
  with raw JSON answers, so values stay exact text and a 100,000-deal pull does
  not build a model object per deal. urllib3's own retries are off: the shared
  retry policy does all retrying.
- Pacing: the ``X-HubSpot-RateLimit-*`` headers of every answer say how much of
  the ten-second budget is left; the client waits for the window to roll on
  before it runs out, and paces search (limited per second) on its own.
- Listings page with the shared :class:`~connector.adapters.base.Pager`.
- Vendor errors become ours in one function, :func:`mapped`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import urllib3
from hubspot import HubSpot
from pydantic import SecretStr

from connector.adapters.base import (
    DAILY_RESERVE,
    CallBudget,
    Metadata,
    MetadataCache,
    NoCache,
    Pager,
    keep_daily_reserve,
)
from connector.adapters.hubspot.values import decimal, is_number
from connector.adapters.retry import (
    RetryPolicy,
    call_crm,
    connect_failure,
)
from connector.core.fields import CATALOGUE, FieldSpec, ValueKind
from connector.core.models import ApiUsage, Outcome
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
PROPERTY_TYPE = {
    ValueKind.MONEY: ("number", "number", "currency"),
    ValueKind.FRACTION: ("number", "number", "percentage"),
    ValueKind.TEXT: ("string", "text", None),
    ValueKind.DATETIME: ("datetime", "date", None),
    ValueKind.NUMBER: ("number", "number", None),
}
# Before a portal's first answer says its limit: HubSpot's for a private app.
NOMINAL_TEN_SECOND_LIMIT = 100
# Calls taken from the shared budget at a time: each is good for one slot of the window
# (a twentieth), and one left unused there counts against the window all the same.
SHARED_BLOCK = 2
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
    payroll_id_property: str | None = None  # a rep-object property holding the employee id
    # Deal properties the plans name (filters, a payment holdback's date), read too.
    deal_properties: tuple[str, ...] = ()
    searches_per_second: float = 4.0
    reserve: int = 2  # calls kept in hand in each ten-second window
    daily_reserve: Decimal = DAILY_RESERVE  # the share of the daily allocation left to others


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
    daily_seen: float = float("-inf")  # when (monotonic) an answer last said so


class HubSpotApi:
    """One portal's API for one run: what every HubSpot call of the adapter goes through."""

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
        budget: CallBudget | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        # The portal's calls, shared with every other process working on it.
        self._shared = budget
        self._wall = wall
        self._blocks: dict[str, tuple[float, int]] = {}  # API class → (use by, calls left)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._client = client or HubSpot(**client_options(settings, access_token))
        self.calls = 0
        # Pacing decisions are one at a time: a pass may read two things at once.
        self._pacing = threading.Lock()
        self._paced = 0.0
        self._budget = _Budget()
        self.metadata = Metadata(cache or NoCache(), settings.base_url)
        self._portal_id: str | None = None
        self._apis: dict[str, Any] = {}

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

    def request(
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
            age = time.monotonic() - self._budget.daily_seen
            keep_daily_reserve(self.usage(), self.settings.daily_reserve, "HubSpot", age)
            with self._pacing:
                self._pace(search)
                self._share(search)
                self.calls += 1
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
                if is_api_exception(error):
                    self._observe(getattr(error, "headers", None))
                    refusal = mapped(error, url, path)
                    self._paused_by(refusal)
                    raise refusal from None
                raise
            self._observe(raw.headers)
            data = raw.data
            # Numbers with a fraction (exchange rates) are exact Decimals, never floats.
            return raw.status, json.loads(data, parse_float=Decimal) if data else None

        return call_crm(self.retry, attempt, crm="HubSpot", url=url, setting="base_url")

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
                budget.daily_seen = time.monotonic()
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

    def _share(self, search: bool) -> None:
        """Take this call from the portal's budget shared by every process (the ten-second
        window, and the search endpoints' second), waiting while it has no room."""
        if self._shared is None or self._portal_id is None:
            return  # the portal is not known yet: its first call is paced alone
        budget = self._budget
        limit = budget.limit if budget.limit is not None else NOMINAL_TEN_SECOND_LIMIT
        self._take("ten_second", max(limit - self.settings.reserve, 1), budget.interval_s)
        if search:
            self._take("search", max(int(self.settings.searches_per_second), 1), 1.0)

    def _take(self, api: str, limit: int, window_s: float) -> None:
        assert self._shared is not None and self._portal_id is not None
        while True:
            now = self._wall()
            use_by, left = self._blocks.get(api, (0.0, 0))
            if left > 0 and now < use_by:
                self._blocks[api] = (use_by, left - 1)
                return
            granted, when = self._shared.take(
                self._portal_id, api, SHARED_BLOCK, limit, window_s, now
            )
            if granted:
                self._blocks[api] = (when, granted - 1)
                return
            self._wait(when)

    def _paused_by(self, failure: Exception) -> None:
        """A 429 pauses every process on the portal for its Retry-After."""
        if (
            isinstance(failure, RetryableError)
            and failure.status == 429
            and failure.retry_after
            and self._shared is not None
            and self._portal_id is not None
        ):
            self._shared.pause(self._portal_id, self._wall() + failure.retry_after)
            self._blocks.clear()

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._paced += seconds
            self._sleep(seconds)

    # -- the portal's metadata -------------------------------------------------------

    def portal_id(self) -> str:
        """The portal id (``portalId``), read once."""
        if self._portal_id is None:
            _, answer = self.request("owners", "/account-info/v3/details")
            self._portal_id = str((answer or {}).get("portalId", ""))
            if not self._portal_id:
                raise CrmError(f"HubSpot at {self.settings.base_url} names no portal id")
        return self._portal_id

    def properties(self, object_type: str, *, refresh: bool = False) -> dict[str, dict[str, Any]]:
        def fetch() -> dict[str, dict[str, Any]]:
            _, answer = self.request("properties", f"/crm/v3/properties/{object_type}")
            return {
                p["name"]: {
                    "type": p.get("type"),
                    "hubspotDefined": bool(p.get("hubspotDefined")),
                    "options": p.get("options") or [],
                }
                for p in answer.get("results", [])
            }

        found: dict[str, dict[str, Any]] = self.metadata.get(
            f"properties:{object_type}", fetch, refresh=refresh
        )
        return found

    def require(self, object_type: str, specs: Sequence[FieldSpec]) -> None:
        """Our properties exist with the types we write; a cached list is checked afresh first."""
        problems = property_problems(object_type, specs, self.properties(object_type))
        if problems:
            fresh = self.properties(object_type, refresh=True)
            problems = property_problems(object_type, specs, fresh)
        if problems:
            raise ConfigError("; ".join(problems))

    def outcomes(self, *, refresh: bool = False) -> dict[tuple[str, str], Outcome]:
        """(pipeline, stage) → outcome, from the stages' metadata."""

        def fetch() -> list[list[str]]:
            _, answer = self.request("pipelines", "/crm/v3/pipelines/deals")
            stages: list[list[str]] = []
            for pipeline in answer.get("results", []):
                for stage in pipeline.get("stages", []):
                    metadata = stage.get("metadata") or {}
                    closed = str(metadata.get("isClosed", "false")).lower() == "true"
                    won = closed and decimal(str(metadata.get("probability", "0"))) == 1
                    outcome = Outcome.WON if won else Outcome.LOST if closed else Outcome.OPEN
                    stages.append([str(pipeline["id"]), str(stage["id"]), outcome.value])
            return stages

        rows = self.metadata.get("pipelines", fetch, refresh=refresh)
        return {(pipeline, stage): Outcome(outcome) for pipeline, stage, outcome in rows}

    def listing(
        self, area: str, path: str, query: Sequence[tuple[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        """The results of a GET listing, following ``paging.next.after`` lazily."""

        def page(after: str | None) -> tuple[list[dict[str, Any]], str | None]:
            more = [("after", after)] if after else []
            _, answer = self.request(area, path, query=[*query, *more])
            following = ((answer.get("paging") or {}).get("next") or {}).get("after")
            return answer.get("results", []), following

        return iter(Pager(f"HubSpot {path}", page))

    def usage(self) -> ApiUsage:
        budget = self._budget
        used = (
            budget.daily - budget.daily_remaining
            if budget.daily is not None and budget.daily_remaining is not None
            else None
        )
        return ApiUsage(
            calls=self.calls,
            used=used,
            limit=budget.daily,
            waited_s=self.retry.waited + self._paced,
        )


def is_api_exception(error: Exception) -> bool:
    """Any sub-package's ApiException: each has its own class, so go by attributes."""
    return (
        type(error).__name__.endswith("Exception")
        and hasattr(error, "status")
        and (hasattr(error, "body"))
    )


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


def property_problems(
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
        kind = PROPERTY_TYPE[spec.value][0]
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


def mapped(error: Exception, base_url: str, path: str = "") -> Exception:
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
            max(float(locked_for), 2.0) if locked_for and is_number(locked_for) else 2.0,
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
