"""The HubSpot CRM v3 API over HTTP (a WSGI app), as hubspot-api-client expects it.

Bodies follow HubSpot's OpenAPI schemas (``../shared/crm-specs/hubspot``), errors
carry HubSpot's ``{"status": "error", "message", "correlationId", "category"}``
shape, and every answer carries the ``X-HubSpot-RateLimit-*`` headers.
``/_sandbox/`` is the admin endpoint (call log, faults, mutations).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from crm_sandbox.common import ADMIN_HEADERS, CallLog, Faults, LoggedCall, admin_refusal
from crm_sandbox.hubspot import search
from crm_sandbox.hubspot.portal import (
    PIPELINE_ID,
    STAGE_LABELS,
    STAGE_PROBABILITY,
    Portal,
)
from crm_sandbox.hubspot.records import (
    CONTACTS,
    DEALS,
    GOAL_TARGETS,
    OBJECT_TYPES,
    TASKS,
    TASKS_SCOPE,
    USERS,
    ApiError,
    CrmRecord,
    batch_error,
    iso_ms,
)

LIST_LIMIT = 100
BATCH_LIMIT = 100
NOMINAL_TEN_SECOND_LIMIT = 190  # a private app's published budget, shown when no limit is set
DAILY_LIMIT = 1_000_000
_DEFAULT_PROPERTIES = {
    DEALS: ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
            "hs_object_id", "pipeline"),
    USERS: ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    GOAL_TARGETS: ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    CONTACTS: ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    TASKS: ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
}  # fmt: skip
_SEARCH_DEFAULTS = {
    DEALS: ("createdate", "hs_lastmodifieddate", "hs_object_id"),
    USERS: ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    GOAL_TARGETS: ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    CONTACTS: ("createdate", "hs_object_id", "lastmodifieddate"),
    TASKS: ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
}
_SEARCHABLE = {
    DEALS: ("dealname",),
    USERS: ("hs_email", "hs_given_name", "hs_family_name"),
    GOAL_TARGETS: ("hs_goal_name",),
    CONTACTS: ("email", "firstname", "lastname"),
    TASKS: ("hs_task_subject", "hs_task_body"),
}
_OBJECT_PATH = "/crm/v3/objects/<object_type>"


def _rules() -> list[Rule]:
    """Fresh rules for each app: a werkzeug rule can belong to one map only."""
    return [
        Rule("/account-info/v3/details", endpoint="account_details", methods=["GET"]),
        Rule("/crm/v3/owners", endpoint="owners", methods=["GET"]),
        Rule("/crm/v3/owners/<owner_id>", endpoint="owner", methods=["GET"]),
        Rule(_OBJECT_PATH, endpoint="objects", methods=["GET", "POST"]),
        Rule(f"{_OBJECT_PATH}/search", endpoint="search", methods=["POST"]),
        Rule(f"{_OBJECT_PATH}/batch/read", endpoint="batch_read", methods=["POST"]),
        Rule(f"{_OBJECT_PATH}/batch/update", endpoint="batch_update", methods=["POST"]),
        Rule(f"{_OBJECT_PATH}/<object_id>", endpoint="object", methods=["GET", "PATCH", "DELETE"]),
        Rule("/crm/v3/pipelines/<object_type>", endpoint="pipelines", methods=["GET"]),
        Rule("/crm/v3/pipelines/<object_type>/<pipeline_id>", endpoint="pipeline", methods=["GET"]),
        Rule(
            "/crm/v3/pipelines/<object_type>/<pipeline_id>/stages",
            endpoint="stages",
            methods=["GET"],
        ),
        Rule("/crm/v3/properties/<object_type>", endpoint="properties", methods=["GET", "POST"]),
        Rule("/crm/v3/properties/<object_type>/groups", endpoint="groups", methods=["GET", "POST"]),
        Rule(
            "/crm/v3/properties/<object_type>/groups/<group_name>",
            endpoint="group",
            methods=["GET"],
        ),
        Rule(
            "/crm/v3/properties/<object_type>/<property_name>",
            endpoint="property",
            methods=["GET"],
        ),
        Rule("/crm/objects/v3/deals/splits/batch/read", endpoint="splits", methods=["POST"]),
        Rule(
            "/settings/v3/currencies/company-currency", endpoint="company_currency", methods=["GET"]
        ),
        Rule("/settings/v3/currencies/exchange-rates", endpoint="exchange_rates", methods=["GET"]),
        Rule("/_sandbox", endpoint="admin_info", methods=["GET"]),
        Rule("/_sandbox/calls", endpoint="admin_calls", methods=["GET"]),
        Rule("/_sandbox/calls/reset", endpoint="admin_reset", methods=["POST"]),
        Rule("/_sandbox/faults", endpoint="admin_faults", methods=["GET", "POST"]),
        Rule("/_sandbox/mutate", endpoint="admin_mutate", methods=["POST"]),
        Rule("/_sandbox/webhooks", endpoint="admin_webhooks", methods=["GET"]),
    ]


@dataclass
class Answer:
    body: Any  # a JSON-ready value, or bytes already rendered
    status: int = 200
    kind: str = ""
    records: int = 0
    fields: dict[str, list[str]] | None = None


class HubSpotApp:
    """WSGI callable: routes, bearer token, faults, rate-limit headers, the call log."""

    def __init__(
        self,
        portal: Portal,
        *,
        token: str,
        admin_token: str = "",
        faults: Faults,
        calls: CallLog,
        mutations: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        webhooks: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.portal = portal
        self.token = token
        self.admin_token = admin_token
        self.faults = faults
        self.calls = calls
        self.daily_used = 0
        self._mutations = mutations
        self._webhooks = webhooks
        self._cache = search.ResultCache()
        self.urls = Map(_rules(), strict_slashes=False, merge_slashes=False)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self.dispatch(Request(environ))(environ, start_response)

    # -- dispatch --------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        adapter = self.urls.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except HTTPException as error:
            status = 405 if isinstance(error, MethodNotAllowed) else 404
            self._log(request, "unknown", status)
            return self._error(ApiError(status, "Resource not found", "OBJECT_NOT_FOUND"), {})
        if endpoint.startswith("admin_"):
            return self._admin(endpoint, request)
        self.faults.delay()
        headers: dict[str, str] = {}
        try:
            self._authorise(request)
            headers = self._admit(endpoint)
            if self.faults.should_fail():
                self._log(request, "unavailable", 503)
                raise ApiError(503, "Service Unavailable", "SERVICE_UNAVAILABLE")
            args = dict(args)
            if "object_type" in args:
                args["object_type"] = self._object_type(args["object_type"])
            handler: Callable[..., Answer] = getattr(self, f"_{endpoint}")
            answer = handler(request, **args)
        except ApiError as error:
            if error.status != 503:
                kind = {401: "rejected", 429: "rate_limited"}.get(error.status, endpoint)
                self._log(request, kind, error.status)
            return self._error(error, headers)
        self._log(request, answer.kind or endpoint, answer.status, answer.records, answer.fields)
        body = answer.body
        data = body if isinstance(body, bytes) else json.dumps(body, default=_default).encode()
        response = Response(
            data, status=answer.status, content_type="application/json;charset=utf-8"
        )
        response.headers.update(headers)
        return response

    def _authorise(self, request: Request) -> None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or value != self.token:
            raise ApiError(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            )

    def _admit(self, endpoint: str) -> dict[str, str]:
        """Count the call against the daily, ten-second and search budgets; 429 past them."""
        faults = self.faults
        if faults.daily_limit is not None and self.daily_used >= faults.daily_limit:
            raise _rate_limited("DAILY", "You have reached your daily limit.", {}, 3600.0)
        self.daily_used += 1
        limited, remaining, wait = faults.rate_limited()
        window_ms = int(faults.rate_window_s * 1000)
        limit = faults.rate_limit if faults.rate_limit is not None else NOMINAL_TEN_SECOND_LIMIT
        headers = {
            "X-HubSpot-RateLimit-Daily": str(faults.daily_limit or DAILY_LIMIT),
            "X-HubSpot-RateLimit-Daily-Remaining": str(
                max((faults.daily_limit or DAILY_LIMIT) - self.daily_used, 0)
            ),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(window_ms),
            "X-HubSpot-RateLimit-Max": str(limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining if remaining >= 0 else limit - 1),
        }
        if limited:
            self.daily_used -= 1
            raise _rate_limited(
                "TEN_SECONDLY_ROLLING",
                f"You have reached your ten_secondly_rolling limit of {limit} requests.",
                headers,
                wait,
            )
        if endpoint == "search":
            limited, _, wait = faults.search_rate_limited()
            if limited:
                raise _rate_limited(
                    "SECONDLY", "You have reached your secondly limit.", headers, wait
                )
        return headers

    def _object_type(self, text: str) -> str:
        found = OBJECT_TYPES.get(text.lower())
        if found is None:
            raise ApiError(400, f"Unable to infer object type from: {text}", "VALIDATION_ERROR")
        if found == TASKS:
            self._scoped(TASKS_SCOPE)  # tasks ride on the contacts scope, as HubSpot's do
        return found

    def _error(self, error: ApiError, headers: dict[str, str]) -> Response:
        response = Response(
            json.dumps(error.body),
            status=error.status,
            content_type="application/json;charset=utf-8",
        )
        response.headers.update(headers)
        response.headers.update(error.headers)
        return response

    def _log(
        self,
        request: Request,
        kind: str,
        status: int,
        records: int = 0,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        self.calls.record(LoggedCall(request.method, request.path, kind, status, records, fields))

    # -- owners -------------------------------------------------------------------------------

    def _owners(self, request: Request) -> Answer:
        limit = _limit(request, LIST_LIMIT, maximum=500)
        archived = request.args.get("archived", "false").lower() == "true"
        email = request.args.get("email")
        owners = [
            o
            for o in (self.portal.owners[i] for i in self.portal.owner_ids)
            if o["archived"] == archived and (email is None or o["email"] == email)
        ]
        start = _after(request)
        page = owners[start : start + limit]
        body: dict[str, Any] = {"results": page}
        if start + limit < len(owners):
            body["paging"] = {"next": {"after": str(start + limit), "link": ""}}
        return Answer(body, kind="owners_page", records=len(page))

    def _owner(self, request: Request, owner_id: str) -> Answer:
        id_property = request.args.get("idProperty", "id")
        for owner in self.portal.owners.values():
            if str(owner.get(id_property)) == owner_id:
                return Answer(owner, kind="owner_get", records=1)
        raise ApiError(404, f"Owner {owner_id} not found", "OBJECT_NOT_FOUND")

    # -- objects ------------------------------------------------------------------------------

    def _names(
        self, request: Request, object_type: str, *, search_defaults: bool = False
    ) -> tuple[str, ...]:
        requested = [
            name.strip()
            for value in request.args.getlist("properties")
            for name in value.split(",")
            if name.strip()
        ]
        return _selection(object_type, requested, search_defaults=search_defaults)

    def _objects(self, request: Request, object_type: str) -> Answer:
        if request.method == "POST":
            body = _json_body(request)
            record = self.portal.create(
                object_type,
                dict(body.get("properties") or {}),
                associations=body.get("associations") or [],
            )
            # The answer holds what the record was created with, defaults included.
            names = tuple(dict.fromkeys([*_selection(object_type, []), *record.properties]))
            return Answer(record.render(names), 201, "object_create", 1)
        limit = _limit(request, 10, maximum=LIST_LIMIT)
        archived = request.args.get("archived", "false").lower() == "true"
        names = self._names(request, object_type)
        after_text = request.args.get("after")
        try:
            after = int(after_text) if after_text else None
        except ValueError:
            raise ApiError(400, f"Invalid after: {after_text}", "VALIDATION_ERROR") from None
        with self.portal.lock:
            found, next_num = self.portal.stores[object_type].page(after, limit, archived)
            rendered = [r.render(names) for r in found]
        page = b'{"results":[' + b",".join(rendered) + b"]"
        if next_num is not None:
            link = f"/crm/v3/objects/{object_type}?after={next_num}"
            page += b',"paging":{"next":{"after":"%d","link":"%s"}}' % (next_num, link.encode())
        kind = {DEALS: "deal_list_page", USERS: "user_list_page"}.get(
            object_type, f"{object_type}_list_page"
        )
        return Answer(page + b"}", kind=kind, records=len(found))

    def _object(self, request: Request, object_type: str, object_id: str) -> Answer:
        id_property = request.args.get("idProperty", "hs_object_id")
        archived = request.args.get("archived", "false").lower() == "true"
        with self.portal.lock:
            record = (
                self.portal.get(object_type, object_id, archived=True)
                if archived
                else self.portal.find_by(object_type, id_property, object_id)
            )
            if record is None:
                raise ApiError(404, "Object not found", "OBJECT_NOT_FOUND")
            if request.method == "DELETE":
                self.portal.archive(object_type, record)
                return Answer(b"", 204, "object_archive", 1)
            if request.method == "PATCH":
                body = _json_body(request)
                clean = self.portal.validate(object_type, dict(body.get("properties") or {}))
                if self.faults.lock_fails(record.id):
                    raise ApiError(409, f"Object {record.id} is being modified; retry", "CONFLICT")
                self.portal.update(object_type, record, clean)
                names = _selection(object_type, list(clean))
                return Answer(record.render(names), kind="object_update", records=1)
            return Answer(
                record.render(self._names(request, object_type)), kind="object_get", records=1
            )

    def _search(self, request: Request, object_type: str) -> Answer:
        body = _json_body(request)
        defs = self.portal.property_defs(object_type)
        query = search.parse(body, defs)
        names = _selection(object_type, query.properties, search_defaults=True)
        with self.portal.lock:
            store = self.portal.stores[object_type]
            found = (
                None  # a task's search index lags: never served from the cache
                if object_type == TASKS
                else self._cache.get(object_type, query.cache_key, store.revision)
            )
            if found is None:
                found = search.run(
                    query, self.portal.indexed(object_type), _SEARCHABLE[object_type]
                )
                self._cache.put(object_type, query.cache_key, store.revision, found)
            page = found[query.after : query.after + query.limit]
            rendered = [r.render(names) for r in page]
        end = query.after + len(page)
        out = b'{"total":%d,"results":[' % len(found) + b",".join(rendered) + b"]"
        if end < len(found) and end < search.MAX_RESULTS:
            out += b',"paging":{"next":{"after":"%d"}}' % end
        kind = {DEALS: "deal_search", TASKS: "task_search"}.get(object_type, "user_search")
        return Answer(out + b"}", kind=kind, records=len(page))

    def _batch_read(self, request: Request, object_type: str) -> Answer:
        body = _json_body(request)
        inputs = _inputs(body, unique=True)
        id_property = str(body.get("idProperty") or "hs_object_id")
        names = _selection(object_type, [str(p) for p in body.get("properties") or []])
        started = _now()
        results: list[bytes] = []
        missing: list[str] = []
        with self.portal.lock:
            for item in inputs:
                key = str(item.get("id", ""))
                record = self.portal.find_by(object_type, id_property, key)
                if record is None:
                    missing.append(key)
                else:
                    results.append(record.render(names))
        errors = (
            [
                batch_error(
                    "OBJECT_NOT_FOUND",
                    "Could not get some objects: they may be deleted or not exist.",
                    missing,
                )
            ]
            if missing
            else []
        )
        kind = {DEALS: "deal_batch_read", TASKS: "task_batch_read"}.get(
            object_type, "user_batch_read"
        )
        return Answer(_batch(results, errors, started), 207 if errors else 200, kind, len(results))

    def _batch_update(self, request: Request, object_type: str) -> Answer:
        body = _json_body(request)
        inputs = _inputs(body, unique=True)
        if self.faults.write_locked():
            raise ApiError(
                423,
                "The records are locked by another write in progress; retry in 2 seconds.",
                "LOCKED",
                headers={"Retry-After": "2"},
            )
        # Inputs that carry an objectWriteTraceId are answered by it: results echo it, and
        # a 207's errors name the failed inputs by trace id alone (HubSpot's documented shape).
        traced = any("objectWriteTraceId" in item for item in inputs)
        started = _now()
        results: list[bytes] = []
        missing: list[str] = []
        locked: list[str] = []
        with self.portal.lock:
            planned: list[tuple[CrmRecord, dict[str, str], str]] = []
            for item in inputs:  # any invalid value refuses the whole batch, as HubSpot does
                properties = item.get("properties")
                if not isinstance(properties, dict):
                    raise ApiError(
                        400, "Invalid input JSON: each input needs properties", "VALIDATION_ERROR"
                    )
                clean = self.portal.validate(object_type, properties)
                key = str(item.get("id", ""))
                trace = str(item.get("objectWriteTraceId", "")) if traced else ""
                record = self.portal.find_by(
                    object_type, str(body.get("idProperty") or "hs_object_id"), key
                )
                if record is None:
                    missing.append(trace or key)
                    continue
                planned.append((record, clean, trace))
            for record, clean, trace in planned:
                if self.faults.lock_fails(record.id):
                    locked.append(trace or record.id)
                    continue
                self.portal.update(object_type, record, clean)
                rendered = record.render(_selection(object_type, list(clean)))
                if traced:
                    rendered = (
                        rendered[:-1] + b',"objectWriteTraceId":%s}' % json.dumps(trace).encode()
                    )
                results.append(rendered)
        errors = []
        if missing:
            errors.append(
                batch_error(
                    "OBJECT_NOT_FOUND",
                    "Could not update some objects: they do not exist.",
                    missing,
                    by_trace=traced,
                )
            )
        if locked:
            errors.append(
                batch_error(
                    "CONFLICT",
                    "Some objects were being modified at the same time; retry them.",
                    locked,
                    by_trace=traced,
                )
            )
        kind = "deal_batch_update" if object_type == DEALS else "user_batch_update"
        written = {
            record.id: sorted(clean)
            for record, clean, trace in planned
            if (trace or record.id) not in locked
        }
        return Answer(
            _batch(results, errors, started), 207 if errors else 200, kind, len(results), written
        )

    # -- pipelines ---------------------------------------------------------------------------

    def _pipeline_json(self) -> dict[str, Any]:
        stamp = iso_ms(self.portal.created_ms)
        stages = [
            {
                "id": stage,
                "label": label,
                "displayOrder": order,
                "metadata": {
                    "isClosed": "true" if stage in ("closedwon", "closedlost") else "false",
                    "probability": str(STAGE_PROBABILITY[stage]),
                },
                "createdAt": stamp,
                "updatedAt": stamp,
                "archived": False,
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            }
            for order, (stage, label) in enumerate(STAGE_LABELS.items())
        ]
        return {
            "id": PIPELINE_ID,
            "label": "Sales Pipeline",
            "displayOrder": 0,
            "stages": stages,
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }

    def _account_details(self, request: Request) -> Answer:
        """The account information API: who this portal is."""
        body = {
            "portalId": self.portal.portal_id,
            "accountType": "SANDBOX",
            "timeZone": "UTC",
            "companyCurrency": self.portal.currencies[0],
            "additionalCurrencies": list(self.portal.currencies[1:]),
            "utcOffset": "+00:00",
            "utcOffsetMilliseconds": 0,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
        }
        return Answer(body, kind="account_details", records=1)

    # -- currencies (settings API) -------------------------------------------------------------

    def _scoped(self, scope: str) -> None:
        if scope not in self.portal.scopes:
            raise ApiError(
                403,
                "This app hasn't been granted all required scopes to make this call. Read more "
                "about required scopes here: https://developers.hubspot.com/scopes.",
                "MISSING_SCOPES",
                errors=[{"message": "One or more of the following scopes are required.",
                         "context": {"requiredGranularScopes": [scope]}}],
            )  # fmt: skip

    def _company_currency(self, request: Request) -> Answer:
        self._scoped("settings.currencies.read")
        code = self.portal.currencies[0]
        return Answer({"currencyCode": code, "currencyName": code}, kind="currencies", records=1)

    def _exchange_rates(self, request: Request) -> Answer:
        """The portal's exchange rates, a page at a time; ``conversionRate`` a JSON number."""
        self._scoped("settings.currencies.read")
        limit, after = _limit(request, 100, maximum=100), _after(request)
        rows = self.portal.exchange_rates[after : after + limit]
        rendered = [
            json.dumps({k: v for k, v in row.items() if k != "conversionRate"})[:-1]
            + f', "conversionRate": {row["conversionRate"]}}}'
            for row in rows
        ]
        paging = ""
        if after + limit < len(self.portal.exchange_rates):
            paging = f', "paging": {{"next": {{"after": "{after + limit}"}}}}'
        body = ('{"results": [' + ", ".join(rendered) + "]" + paging + "}").encode()
        return Answer(body, kind="currencies", records=len(rows))

    def _pipelines(self, request: Request, object_type: str) -> Answer:
        if object_type != DEALS:
            return Answer({"results": []}, kind="pipelines")
        return Answer({"results": [self._pipeline_json()]}, kind="pipelines")

    def _pipeline(self, request: Request, object_type: str, pipeline_id: str) -> Answer:
        if object_type != DEALS or pipeline_id != PIPELINE_ID:
            raise ApiError(404, f"Pipeline {pipeline_id} not found", "OBJECT_NOT_FOUND")
        return Answer(self._pipeline_json(), kind="pipelines")

    def _stages(self, request: Request, object_type: str, pipeline_id: str) -> Answer:
        pipeline = self._pipeline(request, object_type, pipeline_id).body
        return Answer({"results": pipeline["stages"]}, kind="pipelines")

    # -- properties ---------------------------------------------------------------------------

    def _properties(self, request: Request, object_type: str) -> Answer:
        if request.method == "POST":
            created = self.portal.create_property(object_type, _json_body(request))
            return Answer(created.to_json(), 201, "property_create", 1)
        defs = self.portal.property_defs(object_type).values()
        return Answer({"results": [p.to_json() for p in defs]}, kind="properties")

    def _property(self, request: Request, object_type: str, property_name: str) -> Answer:
        found = self.portal.property_defs(object_type).get(property_name)
        if found is None:
            raise ApiError(404, f"Property {property_name} does not exist", "OBJECT_NOT_FOUND")
        return Answer(found.to_json(), kind="properties")

    def _groups(self, request: Request, object_type: str) -> Answer:
        if request.method == "POST":
            created = self.portal.create_group(object_type, _json_body(request))
            return Answer(created.to_json(), 201, "group_create", 1)
        groups = self.portal.groups[object_type].values()
        return Answer({"results": [g.to_json() for g in groups]}, kind="groups")

    def _group(self, request: Request, object_type: str, group_name: str) -> Answer:
        found = self.portal.groups[object_type].get(group_name)
        if found is None:
            raise ApiError(404, f"Property group {group_name} does not exist", "OBJECT_NOT_FOUND")
        return Answer(found.to_json(), kind="groups")

    # -- deal splits ----------------------------------------------------------------------

    def _splits(self, request: Request) -> Answer:
        if not self.portal.splits_enabled:
            raise ApiError(
                403,
                "This portal does not have deal splits enabled.",
                "MISSING_SCOPES",
            )
        inputs = _inputs(_json_body(request))
        started = _now()
        results = []
        missing = []
        with self.portal.lock:
            for item in inputs:
                deal_id = str(item.get("id", ""))
                if self.portal.get(DEALS, deal_id) is None:
                    missing.append(deal_id)
                    continue
                splits = self.portal.splits.get(deal_id, [])
                results.append({"id": deal_id, "splits": [s.to_json() for s in splits]})
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now(),
        }
        if missing:
            body["numErrors"] = 1
            body["errors"] = [batch_error("OBJECT_NOT_FOUND", "Some deals do not exist.", missing)]
        return Answer(body, 207 if missing else 200, "split_batch_read", len(results))

    # -- admin ------------------------------------------------------------------------------

    def _admin(self, endpoint: str, request: Request) -> Response:
        headers = {name: request.headers.get(name) for name in ADMIN_HEADERS}
        refused = admin_refusal(request.remote_addr, headers, request.method, self.admin_token)
        if refused is not None:
            status, reason = refused
            return Response(
                json.dumps({"error": reason}), status=status, content_type="application/json"
            )
        try:
            if endpoint == "admin_info":
                body: Any = {
                    "portalId": self.portal.portal_id,
                    "owners": len(self.portal.owners),
                    "deals": len(self.portal.stores[DEALS].by_id),
                    "daily_used": self.daily_used,
                }
            elif endpoint == "admin_calls":
                body = self.calls.as_json()
            elif endpoint == "admin_reset":
                self.calls.reset()
                body = {"reset": True}
            elif endpoint == "admin_faults":
                if request.method == "POST":
                    settings = json.loads(request.get_data(as_text=True) or "{}")
                    if not isinstance(settings, dict):
                        raise ValueError("expected a JSON object of fault settings")
                    self.faults.update(settings)
                body = {
                    "rate_limit": self.faults.rate_limit,
                    "rate_window_s": self.faults.rate_window_s,
                    "search_rate_limit": self.faults.search_rate_limit,
                    "daily_limit": self.faults.daily_limit,
                    "error_rate": self.faults.error_rate,
                    "locked_ids": sorted(self.faults.locked_ids),
                    "lock_failures": self.faults.lock_failures,
                    "latency_ms": self.faults.latency_ms,
                    "locked_writes": self.faults.locked_writes,
                }
            elif endpoint == "admin_mutate":
                if self._mutations is None:
                    raise ValueError("mutations are not available")
                change = json.loads(request.get_data(as_text=True) or "{}")
                if not isinstance(change, dict):
                    raise ValueError("expected a JSON object with an action")
                body = self._mutations(change)
            else:
                body = self._webhooks() if self._webhooks is not None else {"deliveries": []}
        except (ValueError, KeyError, TypeError, ApiError) as error:
            message = error.body["message"] if isinstance(error, ApiError) else str(error)
            return Response(
                json.dumps({"error": message}), status=400, content_type="application/json"
            )
        return Response(json.dumps(body, default=_default), content_type="application/json")


# -- helpers ------------------------------------------------------------------------------------


def _selection(
    object_type: str, requested: list[str], *, search_defaults: bool = False
) -> tuple[str, ...]:
    """Properties to render: the requested ones (unknown names are skipped, as HubSpot does)."""
    if not requested:
        return (_SEARCH_DEFAULTS if search_defaults else _DEFAULT_PROPERTIES)[object_type]
    base = _SEARCH_DEFAULTS[object_type] if search_defaults else ()
    return tuple(dict.fromkeys([*base, *requested]))


def _rate_limited(policy: str, message: str, headers: dict[str, str], wait: float) -> ApiError:
    retry_after = max(1, int(wait + 0.999))
    return ApiError(
        429,
        message,
        "RATE_LIMITS",
        headers={**headers, "Retry-After": str(retry_after)},
        errorType="RATE_LIMIT",
        policyName=policy,
    )


def _limit(request: Request, default: int, *, maximum: int) -> int:
    text = request.args.get("limit")
    try:
        value = int(text) if text else default
    except ValueError:
        raise ApiError(400, f"Invalid limit: {text}", "VALIDATION_ERROR") from None
    return max(1, min(value, maximum))


def _after(request: Request) -> int:
    text = request.args.get("after") or "0"
    try:
        return max(int(text), 0)
    except ValueError:
        raise ApiError(400, f"Invalid after: {text}", "VALIDATION_ERROR") from None


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise ApiError(400, "Invalid input JSON on line 1", "VALIDATION_ERROR") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid input JSON: expected an object", "VALIDATION_ERROR")
    return body


def _inputs(body: dict[str, Any], *, unique: bool = False) -> list[dict[str, Any]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise ApiError(
            400, "Invalid input JSON: inputs must be a list of objects", "VALIDATION_ERROR"
        )
    if len(inputs) > BATCH_LIMIT:
        raise ApiError(
            400,
            f"Batch input limit exceeded: {len(inputs)} inputs; at most {BATCH_LIMIT} allowed.",
            "VALIDATION_ERROR",
            context={"inputs": [str(len(inputs))]},
        )
    if unique:  # HubSpot refuses a whole batch that names one record twice
        ids = [str(item.get("id", "")) for item in inputs]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ApiError(
                400,
                f"Duplicate IDs found in batch input: [{', '.join(repeated)}]. IDs must be unique",
                "VALIDATION_ERROR",
                context={"ids": repeated},
            )
    return inputs


def _batch(results: list[bytes], errors: list[dict[str, Any]], started: str) -> bytes:
    head: dict[str, Any] = {"status": "COMPLETE", "startedAt": started, "completedAt": _now()}
    if errors:
        head["numErrors"] = sum(len(next(iter(e["context"].values()))) for e in errors)
        head["errors"] = errors
    text = json.dumps(head)[:-1].encode()
    return text + b',"results":[' + b",".join(results) + b"]}"


def _now() -> str:
    return iso_ms(int(time.time() * 1000))


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
