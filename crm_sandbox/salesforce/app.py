"""The Salesforce REST API over HTTP (a WSGI app), as simple-salesforce expects it.

Every answer carries ``Sforce-Limit-Info``; errors use Salesforce's
``[{"message", "errorCode"}]`` bodies and status codes, so simple-salesforce
raises the same exceptions it raises against a real org. ``/_sandbox/`` is the
admin endpoint (call log, faults, mutations), open only on loopback.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from crm_sandbox.common import ADMIN_HEADERS, CallLog, Faults, LoggedCall, admin_refusal
from crm_sandbox.salesforce.org import (
    COLLECTION_LIMIT,
    DEFAULT_BATCH,
    MAX_BATCH,
    MIN_BATCH,
    Org,
    Page,
    SalesforceApiError,
)
from crm_sandbox.salesforce.schema import ValueError_

API_VERSIONS = ("58.0", "59.0", "60.0", "61.0", "62.0")
_PREFIX = "/services/data/v<version>"
_BATCH_OPTION = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


def _rules() -> list[Rule]:
    """Fresh rules for each app: a werkzeug rule can belong to one map only."""
    return [
        Rule("/services/data", endpoint="versions", methods=["GET"]),
        Rule("/services/oauth2/userinfo", endpoint="userinfo", methods=["GET"]),
        Rule(_PREFIX, endpoint="resources", methods=["GET"]),
        Rule(f"{_PREFIX}/limits", endpoint="limits", methods=["GET"]),
        Rule(f"{_PREFIX}/query", endpoint="query", methods=["GET"]),
        Rule(f"{_PREFIX}/queryAll", endpoint="query_all", methods=["GET"]),
        Rule(f"{_PREFIX}/query/<locator>", endpoint="query_more", methods=["GET"]),
        Rule(f"{_PREFIX}/queryAll/<locator>", endpoint="query_all_more", methods=["GET"]),
        Rule(f"{_PREFIX}/sobjects", endpoint="describe_global", methods=["GET"]),
        Rule(f"{_PREFIX}/sobjects/<sobject>", endpoint="sobject", methods=["GET", "POST"]),
        Rule(f"{_PREFIX}/sobjects/<sobject>/describe", endpoint="describe", methods=["GET"]),
        Rule(
            f"{_PREFIX}/sobjects/<sobject>/<record_id>",
            endpoint="record",
            methods=["GET", "PATCH", "DELETE"],
        ),
        Rule(f"{_PREFIX}/composite/sobjects", endpoint="collection", methods=["PATCH", "POST"]),
        Rule(f"{_PREFIX}/tooling/query", endpoint="tooling_query", methods=["GET"]),
        Rule(f"{_PREFIX}/tooling/query/<locator>", endpoint="tooling_more", methods=["GET"]),
        Rule(f"{_PREFIX}/tooling/sobjects/<sobject>", endpoint="tooling_sobject", methods=["POST"]),
        Rule(
            f"{_PREFIX}/tooling/sobjects/<sobject>/<record_id>",
            endpoint="tooling_record",
            methods=["PATCH"],
        ),
        Rule(
            f"{_PREFIX}/tooling/sobjects/<sobject>/describe",
            endpoint="tooling_describe",
            methods=["GET"],
        ),
        Rule("/_sandbox", endpoint="admin_info", methods=["GET"]),
        Rule("/_sandbox/calls", endpoint="admin_calls", methods=["GET"]),
        Rule("/_sandbox/calls/reset", endpoint="admin_reset", methods=["POST"]),
        Rule("/_sandbox/faults", endpoint="admin_faults", methods=["GET", "POST"]),
        Rule("/_sandbox/mutate", endpoint="admin_mutate", methods=["POST"]),
        Rule("/_sandbox/outbound", endpoint="admin_outbound", methods=["GET"]),
    ]


@dataclass
class Answer:
    """What a handler returns: a JSON body (text or value), status and call-log details."""

    body: Any
    status: int = 200
    kind: str = ""
    records: int = 0


class ApiBudget:
    """The org's daily API request count against its limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, faults: Faults) -> bool:
        """Count one call; False once the day's budget is spent."""
        with self._lock:
            limit = faults.daily_limit if faults.daily_limit is not None else self.limit
            if self.used >= limit:
                return False
            self.used += 1
            return True

    def header(self, faults: Faults) -> str:
        limit = faults.daily_limit if faults.daily_limit is not None else self.limit
        return f"api-usage={self.used}/{limit}"


class SalesforceApp:
    """WSGI callable: routes, authentication, faults, the call log."""

    def __init__(
        self,
        org: Org,
        *,
        token: str,
        admin_token: str = "",
        faults: Faults,
        calls: CallLog,
        daily_limit: int = 100_000,
        mutations: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        outbound: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.org = org
        self.token = token
        self.admin_token = admin_token
        self.faults = faults
        self.calls = calls
        self.budget = ApiBudget(daily_limit)
        self._mutations = mutations
        self._outbound = outbound
        self.urls = Map(_rules(), strict_slashes=False, merge_slashes=False)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    # -- dispatch ----------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        adapter = self.urls.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except HTTPException as error:
            status = 405 if isinstance(error, MethodNotAllowed) else 404
            body = [
                {
                    "errorCode": "NOT_FOUND" if status == 404 else "METHOD_NOT_ALLOWED",
                    "message": "The requested resource does not exist"
                    if status == 404
                    else f"HTTP Method '{request.method}' not allowed",
                }
            ]
            self._log(request, "unknown", status)
            return self._json(body, status)
        if endpoint.startswith("admin_"):
            return self._admin(endpoint, request)
        self.faults.delay()
        args = dict(args)
        version = args.pop("version", None)
        if version is not None and version not in API_VERSIONS:
            return self._refused(
                request, "unknown", 404, "NOT_FOUND", "The requested resource does not exist"
            )
        if endpoint != "versions" and not self._authorised(request):
            return self._refused(
                request, "rejected", 401, "INVALID_SESSION_ID", "Session expired or invalid"
            )
        if endpoint != "versions" and not self.budget.take(self.faults):
            return self._refused(
                request, "rejected", 403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
            )
        if self.faults.org_busy():
            return self._refused(
                request,
                "rejected",
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentPerOrgLongTxn Limit exceeded.",
            )
        if self.faults.should_fail():
            return self._refused(
                request,
                "unavailable",
                503,
                "SERVER_UNAVAILABLE",
                "Service temporarily unavailable; try again.",
            )
        self.org.api_version = version or API_VERSIONS[-1]
        handler: Callable[..., Answer] = getattr(self, f"_{endpoint}")
        try:
            answer = handler(request, **args)
        except SalesforceApiError as error:
            self._log(request, endpoint, error.status)
            return self._json(error.body(), error.status)
        except NotFound:
            self._log(request, endpoint, 404)
            return self._json(
                [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
                404,
            )
        self._log(request, answer.kind or endpoint, answer.status, answer.records)
        return self._json(answer.body, answer.status)

    def _refused(
        self, request: Request, kind: str, status: int, code: str, message: str
    ) -> Response:
        """A whole request refused before any handler runs, in Salesforce's error shape."""
        self._log(request, kind, status)
        return self._json([{"message": message, "errorCode": code}], status)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() in ("bearer", "oauth") and value == self.token

    def _json(self, body: Any, status: int) -> Response:
        if status == 204:
            response = Response(status=204)
        else:
            text = body if isinstance(body, str) else json.dumps(body, default=_default)
            response = Response(text, status=status, content_type="application/json;charset=UTF-8")
        response.headers["Sforce-Limit-Info"] = self.budget.header(self.faults)
        return response

    def _log(self, request: Request, kind: str, status: int, records: int = 0) -> None:
        self.calls.record(LoggedCall(request.method, request.path, kind, status, records))

    # -- discovery -------------------------------------------------------------------------

    def _versions(self, request: Request) -> Answer:
        return Answer(
            [
                {"label": "Sandbox", "url": f"/services/data/v{v}", "version": v}
                for v in API_VERSIONS
            ],
            kind="versions",
        )

    def _resources(self, request: Request) -> Answer:
        base = f"/services/data/v{self.org.api_version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite", "tooling")
        return Answer({name: f"{base}/{name}" for name in names}, kind="resources")

    def _userinfo(self, request: Request) -> Answer:
        """Who the session acts as (OpenID Connect userinfo): the integration user."""
        user = self.org.records["User"][self.org.integration_user_id].values
        return Answer(
            {
                "sub": f"https://login.salesforce.com/id/{self.org.organization_id}/{user['Id']}",
                "user_id": user["Id"],
                "organization_id": self.org.organization_id,
                "preferred_username": user["Username"],
                "name": user["Name"],
                "email": user["Email"],
                "active": True,
            },
            kind="userinfo",
        )

    def _limits(self, request: Request) -> Answer:
        limit = self.faults.daily_limit or self.budget.limit
        return Answer(
            {"DailyApiRequests": {"Max": limit, "Remaining": max(limit - self.budget.used, 0)}},
            kind="limits",
        )

    # -- queries ---------------------------------------------------------------------------

    def _batch(self, request: Request) -> int:
        match = _BATCH_OPTION.search(request.headers.get("Sforce-Query-Options", ""))
        if match is None:
            return DEFAULT_BATCH
        return min(max(int(match.group(1)), MIN_BATCH), MAX_BATCH)

    def _run_query(self, request: Request, *, include_deleted: bool, tooling: bool) -> Answer:
        text = request.args.get("q")
        if not text:
            raise SalesforceApiError(400, "MALFORMED_QUERY", "A query string is required")
        page = self.org.query(
            text, include_deleted=include_deleted, batch=self._batch(request), tooling=tooling
        )
        return _page(page, "tooling_query" if tooling else "query_page")

    def _query(self, request: Request) -> Answer:
        return self._run_query(request, include_deleted=False, tooling=False)

    def _query_all(self, request: Request) -> Answer:
        return self._run_query(request, include_deleted=True, tooling=False)

    def _query_more(self, request: Request, locator: str) -> Answer:
        return _page(self.org.more(locator), "query_page")

    def _query_all_more(self, request: Request, locator: str) -> Answer:
        return _page(self.org.more(locator), "query_page")

    def _tooling_query(self, request: Request) -> Answer:
        return self._run_query(request, include_deleted=False, tooling=True)

    def _tooling_more(self, request: Request, locator: str) -> Answer:
        return _page(self.org.more(locator, tooling=True), "tooling_query")

    # -- describe ----------------------------------------------------------------------------

    def _describe_global(self, request: Request) -> Answer:
        version = self.org.api_version
        return Answer(
            {
                "encoding": "UTF-8",
                "maxBatchSize": COLLECTION_LIMIT,
                "sobjects": [o.summary(version) for o in self.org.objects.values()],
            },
            kind="describe",
        )

    def _describe(self, request: Request, sobject: str) -> Answer:
        definition = self.org.describe_object(sobject)
        access = self.org.security.access(definition.name)
        return Answer(definition.describe(self.org.api_version, access), kind="describe")

    def _tooling_describe(self, request: Request, sobject: str) -> Answer:
        definition = self.org.describe_object(sobject, tooling=True)
        return Answer(definition.describe(self.org.api_version), kind="describe")

    # -- single records --------------------------------------------------------------------

    def _sobject(self, request: Request, sobject: str) -> Answer:
        definition = self.org.describe_object(sobject)
        if request.method == "GET":
            return Answer({"objectDescribe": definition.summary(self.org.api_version)})
        body = _body(request)
        if not isinstance(body, dict):
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        try:
            record = self.org.create(definition.name, body)
        except ValueError_ as error:
            raise SalesforceApiError(400, error.code, error.message) from None
        return Answer(
            {"id": record.id, "success": True, "errors": []},
            status=201,
            kind="record_create",
            records=1,
        )

    def _record(self, request: Request, sobject: str, record_id: str) -> Answer:
        definition = self.org.describe_object(sobject)
        if request.method == "GET":
            record = self.org.get(definition.name, record_id)
            wanted = {n.strip().lower() for n in request.args.get("fields", "").split(",") if n}
            attributes = {
                "type": definition.name,
                "url": f"/services/data/v{self.org.api_version}/sobjects/"
                f"{definition.name}/{record.id}",
            }
            cells = [f'"attributes":{json.dumps(attributes)}']
            access = self.org.security.access(definition.name)
            cells += [
                f'"{name}":{record.text(f)}'
                for name, f in definition.fields.items()
                if (not wanted or name.lower() in wanted) and access(name)[0]
            ]
            return Answer("{" + ",".join(cells) + "}", kind="record_get", records=1)
        if request.method == "DELETE":
            self.org.delete(definition.name, record_id)
            return Answer(None, status=204, kind="record_delete", records=1)
        body = _body(request)
        if not isinstance(body, dict):
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        try:
            self.org.update(definition.name, record_id, body, locked=self.faults.lock_fails)
        except ValueError_ as error:
            status = 404 if error.code == "INVALID_CROSS_REFERENCE_KEY" else 400
            raise SalesforceApiError(status, error.code, error.message) from None
        return Answer(None, status=204, kind="record_update", records=1)

    # -- sObject Collections ----------------------------------------------------------------

    def _collection(self, request: Request) -> Answer:
        body = _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", "The request body needs a records array"
            )
        rows: list[Any] = body["records"]
        if len(rows) > COLLECTION_LIMIT:
            raise SalesforceApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records "
                "into this call",
            )
        all_or_none = bool(body.get("allOrNone", False))
        creating = request.method == "POST"
        for row in rows:  # unknown types or fields refuse the whole call, as Salesforce does
            self._check_row(row, creating)
        with self.org.lock:
            results = self._apply(rows, creating=creating, all_or_none=all_or_none)
        kind = "composite_create" if creating else "composite_update"
        return Answer(results, kind=kind, records=len(rows))

    def _check_row(self, row: Any, creating: bool) -> None:
        if not isinstance(row, dict):
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "Each record must be an object")
        sobject = (row.get("attributes") or {}).get("type")
        if not sobject:
            raise SalesforceApiError(400, "INVALID_TYPE", "Must send a concrete entity type.", [])
        definition = self.org.describe_object(str(sobject))
        access = self.org.security.access(definition.name)
        for name in row:
            if name in ("attributes", "id", "Id"):
                continue
            found = definition.field(name)
            if found is None or not access(found.name)[0]:
                raise SalesforceApiError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{name}' on sobject of type {definition.name}",
                )
        if not creating and not (row.get("id") or row.get("Id")):
            raise SalesforceApiError(400, "MISSING_ARGUMENT", "Id not specified in an update call")

    def _apply(
        self, rows: list[dict[str, Any]], *, creating: bool, all_or_none: bool
    ) -> list[dict[str, Any]]:
        outcomes: list[dict[str, Any]] = []
        undo: list[tuple[str, str, dict[str, Any]] | tuple[str, str, None]] = []
        failed = False
        for row in rows:
            sobject = self.org.describe_object(str(row["attributes"]["type"])).name
            record_id = str(row.get("id") or row.get("Id") or "")
            try:
                if creating:
                    record = self.org.create(sobject, row)
                    undo.append((sobject, record.id, None))
                    outcomes.append({"id": record.id, "success": True, "errors": []})
                else:
                    before = self._snapshot(sobject, record_id)
                    record = self.org.update(sobject, record_id, row, locked=self.faults.lock_fails)
                    if before is not None:
                        undo.append((sobject, record.id, before))
                    outcomes.append({"id": record.id, "success": True, "errors": []})
            except ValueError_ as error:
                failed = True
                outcomes.append(
                    {
                        "id": record_id or None,
                        "success": False,
                        "errors": [
                            {"statusCode": error.code, "message": error.message, "fields": []}
                        ],
                    }
                )
        if all_or_none and failed:
            self._roll_back(undo)
            rolled = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the "
                "request was using AllOrNone header",
                "fields": [],
            }
            outcomes = [
                o if not o["success"] else {"id": o["id"], "success": False, "errors": [rolled]}
                for o in outcomes
            ]
        return outcomes

    def _snapshot(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        try:
            return dict(self.org.get(sobject, record_id).values)
        except SalesforceApiError:
            return None

    def _roll_back(self, undo: Iterable[tuple[str, str, dict[str, Any] | None]]) -> None:
        for sobject, record_id, before in undo:
            store = self.org.records[sobject]
            if before is None:
                store.pop(record_id, None)
            else:
                store[record_id].values = before
                store[record_id].changed()

    # -- Tooling API -----------------------------------------------------------------------

    def _tooling_sobject(self, request: Request, sobject: str) -> Answer:
        if sobject.lower() != "customfield":
            raise SalesforceApiError(
                404, "NOT_FOUND", f"The requested resource does not exist: {sobject}"
            )
        body = _body(request)
        if not isinstance(body, dict):
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        field_id = self.org.create_custom_field(body)
        return Answer(
            {"id": field_id, "success": True, "errors": [], "warnings": [], "infos": []},
            status=201,
            kind="tooling_create",
            records=1,
        )

    def _tooling_record(self, request: Request, sobject: str, record_id: str) -> Answer:
        if sobject.lower() != "layout":
            raise SalesforceApiError(
                404, "NOT_FOUND", f"The requested resource does not exist: {sobject}"
            )
        body = _body(request)
        if not isinstance(body, dict):
            raise SalesforceApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        self.org.update_layout(record_id, body)
        return Answer(None, status=204, kind="tooling_update", records=1)

    # -- admin -----------------------------------------------------------------------------

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
                    "organizationId": self.org.organization_id,
                    "api_usage": self.budget.used,
                    "users": len(self.org.records["User"]),
                    "opportunities": len(self.org.records["Opportunity"]),
                }
            elif endpoint == "admin_calls":
                body = self.calls.as_json()
            elif endpoint == "admin_reset":
                self.calls.reset()
                body = {"reset": True}
            elif endpoint == "admin_faults":
                if request.method == "POST":
                    settings = _body(request)
                    if not isinstance(settings, dict):
                        raise ValueError("expected a JSON object of fault settings")
                    self.faults.update(settings)
                body = _faults_json(self.faults)
            elif endpoint == "admin_mutate":
                if self._mutations is None:
                    raise ValueError("mutations are not available")
                change = _body(request)
                if not isinstance(change, dict):
                    raise ValueError("expected a JSON object with an action")
                body = self._mutations(change)
            else:
                body = self._outbound() if self._outbound is not None else {"deliveries": []}
        except (ValueError, KeyError, TypeError, SalesforceApiError, ValueError_) as error:
            message = getattr(error, "message", None) or str(error)
            return Response(
                json.dumps({"error": message}), status=400, content_type="application/json"
            )
        return Response(json.dumps(body, default=_default), content_type="application/json")


def _page(page: Page, kind: str) -> Answer:
    return Answer(page.body, kind=kind, records=page.records)


def _body(request: Request) -> Any:
    try:
        return json.loads(request.get_data(as_text=True) or "null", parse_float=Decimal)
    except ValueError:
        raise SalesforceApiError(
            400, "JSON_PARSER_ERROR", "The request body is not valid JSON"
        ) from None


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _faults_json(faults: Faults) -> dict[str, Any]:
    return {
        "rate_limit": faults.rate_limit,
        "rate_window_s": faults.rate_window_s,
        "daily_limit": faults.daily_limit,
        "error_rate": faults.error_rate,
        "locked_ids": sorted(faults.locked_ids),
        "lock_failures": faults.lock_failures,
        "latency_ms": faults.latency_ms,
        "seed": faults.seed,
        "busy_requests": faults.busy_requests,
    }
