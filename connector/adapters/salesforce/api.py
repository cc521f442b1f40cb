"""Salesforce's API as the adapter uses it: the session, one call wrapper, queries, describe.

- Every call goes through :meth:`SalesforceApi.call`: counted, retried through the
  shared retry policy when transient, and its errors mapped to ours in one
  function, :func:`mapped`.
- Queries page through SOQL one page per call (2,000 records) with the shared
  :class:`~connector.adapters.base.Pager`; numbers are parsed as Decimal
  (simple-salesforce's ``parse_float``), never float.
- Describe answers are cached with the CRM metadata; they are what field-level
  security lets the integration user see, which :meth:`SalesforceApi.require_fields`
  checks before our fields are read or written.

TLS: requests ignores ``session.verify`` when ``REQUESTS_CA_BUNDLE`` or
``CURL_CA_BUNDLE`` is set, so with a ``ca_bundle`` the session stops reading
the environment (``trust_env = False``) and takes its proxies explicitly.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote_plus, urlparse
from urllib.request import getproxies
from zoneinfo import ZoneInfo

import requests
from pydantic import SecretStr
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
)

from connector.adapters.base import (
    DAILY_RESERVE,
    Metadata,
    MetadataCache,
    NoCache,
    Pager,
    keep_daily_reserve,
)
from connector.adapters.retry import (
    RetryPolicy,
    call_crm,
    connect_failure,
)
from connector.core.fields import CATALOGUE, FieldSpec, RecordKind, ValueKind
from connector.core.models import ApiUsage
from connector.errors import (
    ConfigError,
    CrmAuthError,
    CrmConfigError,
    CrmError,
    CrmLimitError,
    CrmUnavailableError,
    RetryableError,
)

T = TypeVar("T")

BATCH_SIZE = 200  # sObject Collections' limit per call
INTEGRATION_PERMISSION_SET = "SPM_Connector_Integration"  # Read and Edit, for the API user
LOCKED = "UNABLE_TO_LOCK_ROW"
_CONCURRENT_WAIT_S = 5.0  # a long-running request takes seconds: let some finish first
OBJECT = {RecordKind.DEAL: "Opportunity", RecordKind.REP: "User"}
SF_TYPE = {
    ValueKind.MONEY: "currency",
    ValueKind.FRACTION: "percent",
    ValueKind.TEXT: "string",
    ValueKind.DATETIME: "datetime",
    ValueKind.NUMBER: "double",
}


@dataclass(frozen=True)
class SalesforceCredentials:
    """One of: an access token; username + password (+ security token); client credentials."""

    access_token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None


@dataclass(frozen=True)
class SalesforceSettings:
    instance_url: str
    api_version: str = "62.0"
    won_stages: tuple[str, ...] | None = None
    ca_bundle: Path | None = None
    timeout_s: float = 30.0
    fields: tuple[FieldSpec, ...] = CATALOGUE
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    payroll_id_field: str | None = None  # a User field holding the employee id
    # Opportunity fields the plans name (filters, a payment holdback's date), read too.
    deal_fields: tuple[str, ...] = ()
    daily_reserve: Decimal = DAILY_RESERVE  # the share of the daily allocation left to others


class SalesforceApi:
    """One org's API for one run: what every Salesforce call of the adapter goes through."""

    def __init__(
        self,
        settings: SalesforceSettings,
        credentials: SalesforceCredentials,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        cache: MetadataCache | None = None,
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self.retry = retry or RetryPolicy()
        self._session = session or self._new_session()
        self.calls = 0
        self._counting = threading.Lock()  # a pass may read two things at once
        self._usage_seen = float("-inf")  # when (monotonic) an answer last gave the usage
        self._sf: Salesforce | None = None
        self.metadata = Metadata(cache or NoCache(), settings.instance_url)
        self._org_id: str | None = None

    # -- connection ---------------------------------------------------------------------

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        if self.settings.ca_bundle is not None:
            session.trust_env = False
            session.proxies.update(getproxies())
            session.verify = str(self.settings.ca_bundle)
        return session

    @property
    def sf(self) -> Salesforce:
        if self._sf is None:
            self._sf = self.call(self._connect)
        return self._sf

    def _connect(self) -> Salesforce:
        creds, url = self._credentials, self.settings.instance_url
        common: dict[str, Any] = {
            "session": self._session,
            "version": self.settings.api_version,
            "parse_float": Decimal,
        }
        if creds.access_token is not None:
            return Salesforce(
                instance_url=url, session_id=creds.access_token.get_secret_value(), **common
            )
        host = urlparse(url).hostname or ""
        domain = host.removesuffix(".salesforce.com") if host.endswith(".salesforce.com") else None
        if creds.username and creds.password is not None:
            return Salesforce(
                username=creds.username,
                password=creds.password.get_secret_value(),
                security_token=(
                    creds.security_token.get_secret_value() if creds.security_token else ""
                ),
                domain=domain or "login",
                **common,
            )
        if creds.client_id and creds.client_secret is not None and domain:
            return Salesforce(
                consumer_key=creds.client_id,
                consumer_secret=creds.client_secret.get_secret_value(),
                domain=domain,
                **common,
            )
        raise ConfigError(
            "no Salesforce credentials: set SPM_SALESFORCE_ACCESS_TOKEN; or "
            "SPM_SALESFORCE_USERNAME, SPM_SALESFORCE_PASSWORD and SPM_SALESFORCE_SECURITY_TOKEN "
            "(the token the user resets in Salesforce; not needed from an IP the org trusts); "
            "or SPM_SALESFORCE_CLIENT_ID and SPM_SALESFORCE_CLIENT_SECRET (with a "
            "*.my.salesforce.com instance_url)"
        )

    def call(self, operation: Callable[[], T]) -> T:
        """One API call: counted, retried when transient, errors mapped to ours."""
        url = self.settings.instance_url

        def attempt() -> T:
            age = time.monotonic() - self._usage_seen
            keep_daily_reserve(self.usage(), self.settings.daily_reserve, "Salesforce", age)
            with self._counting:
                self.calls += 1
            try:
                answer = operation()
                self._usage_seen = time.monotonic()  # its Sforce-Limit-Info is the org's now
                return answer
            except SalesforceError as error:
                self._usage_seen = time.monotonic()
                raise mapped(error, url) from None
            except requests.RequestException as error:
                failure = connect_failure(error)
                if failure is not None:
                    raise failure from None
                raise

        return call_crm(
            self.retry,
            attempt,
            crm="Salesforce",
            url=url,
            setting="instance_url",
            describe=lambda error: f"the connection failed ({plain(error)})",
        )

    def rest(self, path: str, method: str = "GET", body: str | None = None) -> Any:
        """One REST call through :meth:`_call`; the JSON answer (None for 204)."""

        def request() -> Any:
            return self.sf.restful(path, method=method, data=body)

        return self.call(request)

    # -- describe and field access -------------------------------------------------

    def described(self, sobject: str, *, refresh: bool = False) -> dict[str, list[Any]]:
        """Field name → [type, editable] as the API user sees the object (cached describe).

        Field-level security shapes the answer: a field the user may not read is not
        in it at all, and one it may read but not edit is not ``updateable``.
        """

        def describe() -> dict[str, list[Any]]:
            described = self.rest(f"sobjects/{sobject}/describe")
            return {
                f["name"]: [f.get("type", ""), bool(f.get("updateable"))]
                for f in described["fields"]
            }

        found: dict[str, list[Any]] = self.metadata.get(
            f"fields:{sobject}", describe, refresh=refresh
        )
        return found

    def fields_of(self, sobject: str, *, refresh: bool = False) -> dict[str, str]:
        """The object's field names and types, from the cached describe."""
        return {name: kind for name, (kind, _) in self.described(sobject, refresh=refresh).items()}

    def require_fields(
        self, sobject: str, specs: Sequence[FieldSpec], *, edit: bool = False, fresh: bool = False
    ) -> None:
        """Our fields exist with the types we write, and the API user may read them (and,
        with ``edit``, change them). A cached describe that disagrees is read afresh first;
        ``fresh`` reads it afresh anyway (once per run), as before writing."""
        if not specs:
            return
        problems = _field_problems(sobject, specs, self.described(sobject, refresh=fresh), edit)
        if problems and not fresh:
            problems = _field_problems(sobject, specs, self.described(sobject, refresh=True), edit)
        if problems:
            raise ConfigError("; ".join(self._explained(sobject, specs, problems)))

    def _explained(
        self, sobject: str, specs: Sequence[FieldSpec], problems: list[str]
    ) -> list[str]:
        """Say which missing fields exist but are hidden by field-level security.

        Describe cannot tell a field that was never created from one the user may not
        see; the Tooling API's CustomField list can (one call, only when something is
        wrong).
        """
        visible = self.described(sobject)
        unseen = [s.salesforce for s in specs if s.salesforce not in visible]
        if not unseen:
            return problems
        created = self.custom_fields(sobject)
        hidden = [name for name in unseen if name in created]
        if not hidden:
            return problems
        missing = [name for name in unseen if name not in created]
        explained = [p for p in problems if not p.startswith(f"{sobject} has no field")]
        if missing:
            explained.insert(
                0,
                f"{sobject} has no field {', '.join(missing)}: run `spm-connector install` first",
            )
        explained.insert(
            0,
            f"the integration user cannot see {sobject} field(s) {', '.join(hidden)}: no "
            f"field-level security grants it Read (permission set {INTEGRATION_PERMISSION_SET}"
            " is missing, changed or unassigned); run `spm-connector install` to grant it again",
        )
        return explained

    # -- queries --------------------------------------------------------------------

    def query_tooling(self, soql: str) -> list[dict[str, Any]]:
        def request() -> Any:
            return self.sf.toolingexecute(f"query/?q={quote_plus(soql)}")

        answer: Any = self.call(request)
        return list(answer.get("records", []))

    def query(
        self,
        soql: str,
        include_deleted: bool = False,
        ours: tuple[str, Sequence[FieldSpec]] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every record of a SOQL query, one page (one API call) at a time.

        ``ours``: the object and our fields the query names. Should the org answer that
        one does not exist (a cached describe can predate a grant someone removed), the
        describe is read afresh and the error says which grant is missing.
        """

        def page(next_url: str | None) -> tuple[list[dict[str, Any]], str | None]:
            if next_url is not None:
                answer: Any = self.call(
                    lambda: self.sf.query_more(next_url, identifier_is_url=True)
                )
            else:
                try:
                    answer = self.call(lambda: self.sf.query(soql, include_deleted=include_deleted))
                except CrmConfigError as error:
                    if ours is not None and error.code == "INVALID_FIELD":
                        self.require_fields(*ours, fresh=True)
                    raise
            last = answer.get("done", True) or not answer.get("nextRecordsUrl")
            return answer["records"], None if last else answer["nextRecordsUrl"]

        return iter(Pager(f"Salesforce query {soql[:60]!r}", page))

    def custom_fields(self, sobject: str) -> set[str]:
        """API names of the object's own custom fields (not a managed package's), whoever
        may see them: the Tooling API lists fields that field-level security hides."""
        rows = self.query_tooling(
            "SELECT DeveloperName FROM CustomField "
            f"WHERE TableEnumOrId = '{sobject}' AND NamespacePrefix = null"
        )
        return {f"{row['DeveloperName']}__c" for row in rows}

    def org_id(self) -> str:
        """The org id (``00D…``), read once."""
        if self._org_id is None:
            rows = list(self.query("SELECT Id FROM Organization"))
            if not rows:
                raise CrmError(f"Salesforce at {self.settings.instance_url} names no organization")
            self._org_id = str(rows[0]["Id"])
        return self._org_id

    def writer_id(self) -> str | None:
        """The integration user (OpenID Connect ``userinfo``), cached with the metadata."""

        def fetch() -> str:
            info: Any = self.call(lambda: self.sf.oauth2("userinfo"))
            return str(info["user_id"])

        found: str = self.metadata.get("integration_user", fetch)
        return found

    def usage(self) -> ApiUsage:
        used = limit = None
        if self._sf is not None:
            usage = self._sf.api_usage.get("api-usage")
            if usage is not None:
                used, limit = usage.used, usage.total
        return ApiUsage(calls=self.calls, used=used, limit=limit, waited_s=self.retry.waited)


def json_body(payload: Any) -> str:
    """Dump ``payload`` with Decimals as exact JSON numbers, not floats."""
    marker = "\u0000N:"

    def encode(value: Any) -> Any:
        if isinstance(value, Decimal):
            return f"{marker}{value:f}"
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [encode(v) for v in value]
        return value

    text = json.dumps(encode(payload), separators=(",", ":"))
    return re.sub(r'"\\u0000N:(-?[0-9.]+)"', r"\1", text)


def _field_problems(
    sobject: str,
    specs: Sequence[FieldSpec],
    existing: Mapping[str, Sequence[Any]],
    edit: bool = False,
) -> list[str]:
    missing = [spec.salesforce for spec in specs if spec.salesforce not in existing]
    problems = []
    if missing:
        problems.append(
            f"{sobject} has no field {', '.join(missing)}: run `spm-connector install` first"
        )
    read_only: list[str] = []
    for spec in specs:
        found = existing.get(spec.salesforce)
        if found is None:
            continue
        if found[0] != SF_TYPE[spec.value]:
            problems.append(
                f"{sobject}.{spec.salesforce} is a {found[0]} field, not "
                f"{SF_TYPE[spec.value]}: spm-connector would write {spec.key} values into it; "
                f"rename ours under `fields: {{{spec.key}: …}}` in spm.yaml"
            )
        elif edit and not found[1]:
            read_only.append(spec.salesforce)
    if read_only:
        problems.append(
            f"the integration user may read but not edit {sobject} field(s) "
            f"{', '.join(read_only)}: field-level security grants no Edit (permission set "
            f"{INTEGRATION_PERMISSION_SET}); run `spm-connector install` to grant it again"
        )
    return problems


def plain(error: BaseException) -> str:
    """A library error in words, without its class name or internals."""
    text = str(error).split(":")[-1].strip() if str(error) else ""
    return text[:160] or "no answer"


# HTTP status → what it means for us: (error class, what to do). Codes refine it below.
_STATUS: dict[int, tuple[type[CrmError], str]] = {
    400: (CrmError, "Salesforce rejected a request"),
    401: (CrmAuthError, "refused the credentials"),
    403: (CrmAuthError, "refused the request"),
    404: (CrmConfigError, "has no such resource"),
}


def mapped(error: SalesforceError, instance_url: str) -> Exception:
    """Every simple-salesforce error as one of ours, with its status, code and fields."""
    content = error.content
    first: Any = content[0] if isinstance(content, list) and content else {}
    code = str(first.get("errorCode", "")) if isinstance(first, dict) else ""
    message = str(first.get("message", "")) if isinstance(first, dict) else ""
    fields = first.get("fields") if isinstance(first, dict) else None
    field_name = str(fields[0]) if isinstance(fields, list) and fields else ""
    detail = f"{code}: {message}" if code else message or "no details"
    status = int(getattr(error, "status", 0) or 0)
    structure: dict[str, Any] = {"status": status, "code": code, "field": field_name}
    if isinstance(error, SalesforceAuthenticationFailed):
        return CrmAuthError(f"Salesforce login failed: {error.message}", **structure)
    if code == "REQUEST_LIMIT_EXCEEDED" and "concurrent" in message.lower():
        # Not the daily allowance: a short-term limit (ConcurrentPerOrgLongTxn, the org's
        # ten concurrent long-running requests) that passes once other requests finish.
        limit = message.split(" Limit exceeded")[0].strip() or "a concurrent request limit"
        return RetryableError(
            f"Salesforce's {limit} limit was reached (too many long-running requests in the "
            "org at once); waiting and trying again",
            _CONCURRENT_WAIT_S,
            status=status,
            code=code,
        )
    if code == "REQUEST_LIMIT_EXCEEDED":
        return CrmLimitError(
            f"Salesforce's daily API limit is used up ({message}); nothing more was written. "
            "Run sync again after the limit resets: it picks up where this one stopped",
            **structure,
        )
    if code == LOCKED:
        return RetryableError(detail, status=status, code=code)
    if status in (500, 502, 503, 504):
        return RetryableError(
            f"Salesforce answered {status} ({detail or 'unavailable'})", status=status, code=code
        )
    if code == "INVALID_FIELD":
        return CrmConfigError(
            f"Salesforce: {message}. The field is missing, or field-level security hides it "
            "from the integration user: run `spm-connector install`",
            **structure,
        )
    kind, meaning = _STATUS.get(status, (CrmError, f"answered {status}"))
    if isinstance(error, SalesforceExpiredSession) or status == 401:
        hint = "; get a new access token or check the login settings"
    elif status == 403:
        hint = "; check the integration user's permissions"
    elif status == 404 and not code:
        # No Salesforce error body: the URL is wrong, not the record.
        path = urlparse(str(getattr(error, "url", ""))).path
        hint = (
            f" ({path or 'the API'}); check crm.instance_url (the org's address, no path: "
            "https://acme.my.salesforce.com) and crm.api_version"
        )
        return CrmUnavailableError(f"Salesforce at {instance_url} {meaning}{hint}", **structure)
    else:
        hint = ""
    return kind(f"Salesforce at {instance_url} {meaning} ({detail}){hint}", **structure)
