"""Salesforce behind the adapter protocol, on simple-salesforce.

- Reads page through SOQL ``queryAll`` one page per call (2,000 records), each
  page fetched through the shared retry policy; numbers are parsed as Decimal
  (simple-salesforce's ``parse_float``), never float.
- Writes go through sObject Collections (``composite/sobjects``), 200 records
  a call, ``allOrNone: false``; records failing with ``UNABLE_TO_LOCK_ROW`` are
  sent again, the rest are reported with Salesforce's message.
- Vendor exceptions are mapped to ours in one function, :func:`_mapped`.

TLS: requests ignores ``session.verify`` when ``REQUESTS_CA_BUNDLE`` or
``CURL_CA_BUNDLE`` is set, so with a ``ca_bundle`` the session stops reading
the environment (``trust_env = False``) and takes its proxies explicitly.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
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

from connector.adapters.base import Metadata, MetadataCache, NoCache
from connector.adapters.retry import ConnectFailure, RetryPolicy, connect_failure, unreachable
from connector.core.fields import CATALOGUE, FieldSpec, RecordKind, ValueKind
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

T = TypeVar("T")

BATCH_SIZE = 200  # sObject Collections' limit per call
SPLIT_QUERY_CHUNK = 300  # ids per OpportunitySplit query, well under SOQL's length limit
ID_QUERY_CHUNK = 300  # ids per `Id IN (...)` query when reading deals by id
SPLIT_QUERIES_MAX = 3  # past this many IN queries, read every split in pages instead
COMMISSION_SECTION = "Commission"  # the page-layout section that holds our fields
PERMISSION_SET = "SPM_Payout_Fields"  # Read, for plan members and their managers
INTEGRATION_PERMISSION_SET = "SPM_Connector_Integration"  # Read and Edit, for the API user
_LOCKED = "UNABLE_TO_LOCK_ROW"
_CONCURRENT_WAIT_S = 5.0  # a long-running request takes seconds: let some finish first
_OBJECT = {RecordKind.DEAL: "Opportunity", RecordKind.REP: "User"}
_SF_TYPE = {
    ValueKind.MONEY: "currency",
    ValueKind.FRACTION: "percent",
    ValueKind.TEXT: "string",
    ValueKind.DATETIME: "datetime",
    ValueKind.NUMBER: "double",
}
_ID = re.compile(r"^[A-Za-z0-9]{15,18}$")


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


def _value_text(spec: FieldSpec, raw: Any) -> str | None:
    """A field value as read from Salesforce → canonical text (percent fields → fraction)."""
    if raw is None or raw == "":
        return None
    if spec.value is ValueKind.FRACTION:
        return canonical(spec.key, Decimal(str(raw)) / 100)
    if spec.value is ValueKind.DATETIME:
        return canonical(spec.key, _datetime(str(raw)))
    return canonical(spec.key, raw)


def _datetime(text: str) -> datetime:
    """Salesforce's ``2026-03-19T08:58:32.000+0000`` (and ISO variants) → aware datetime."""
    cleaned = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text.replace("Z", "+00:00"))
    return datetime.fromisoformat(cleaned)


def _soql_datetime(moment: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(payload: Any) -> str:
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


class SalesforceAdapter:
    name = "salesforce"
    # The deal columns a goal or SPIFF filter can name, besides the Deal's own.
    deal_columns = frozenset({"Name", "StageName", "Type"})

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
        self._retry = retry or RetryPolicy()
        self._session = session or self._new_session()
        self._calls = 0
        self._sf: Salesforce | None = None
        self._metadata = Metadata(cache or NoCache(), settings.instance_url)
        self._account: str | None = None
        self._specs = {spec.key: spec for spec in settings.fields}

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
            self._sf = self._call(self._connect)
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
            "no Salesforce credentials: set SPM_SALESFORCE_ACCESS_TOKEN, or "
            "SPM_SALESFORCE_USERNAME and SPM_SALESFORCE_PASSWORD, or SPM_SALESFORCE_CLIENT_ID "
            "and SPM_SALESFORCE_CLIENT_SECRET (with a *.my.salesforce.com instance_url)"
        )

    def _call(self, operation: Callable[[], T]) -> T:
        """One API call: counted, retried when transient, errors mapped to ours."""
        url = self.settings.instance_url

        def attempt() -> T:
            self._calls += 1
            try:
                return operation()
            except SalesforceError as error:
                raise _mapped(error, url) from None
            except requests.RequestException as error:
                failure = connect_failure(error)
                if failure is not None:
                    raise failure from None
                raise

        try:
            return self._retry.call(attempt)
        except RetryableError as error:
            raise CrmUnavailableError(
                f"Salesforce at {url} kept failing after {self._retry.attempts} attempts: {error}",
                status=error.status,
                code=error.code,
            ) from None
        except ConnectFailure as failure:
            raise unreachable("Salesforce", url, failure, "instance_url") from None
        except (requests.RequestException, OSError) as error:
            cause = connect_failure(error)
            if cause is not None:
                raise unreachable("Salesforce", url, cause, "instance_url") from None
            raise CrmUnavailableError(
                f"could not reach Salesforce at {url}: the connection failed "
                f"({_plain(error)}); check crm.instance_url and the network"
            ) from None

    def _rest(self, path: str, method: str = "GET", body: str | None = None) -> Any:
        """One REST call through :meth:`_call`; the JSON answer (None for 204)."""

        def request() -> Any:
            return self.sf.restful(path, method=method, data=body)

        return self._call(request)

    # -- reading --------------------------------------------------------------------------

    def _described(self, sobject: str, *, refresh: bool = False) -> dict[str, list[Any]]:
        """Field name → [type, editable] as the API user sees the object (cached describe).

        Field-level security shapes the answer: a field the user may not read is not
        in it at all, and one it may read but not edit is not ``updateable``.
        """

        def describe() -> dict[str, list[Any]]:
            described = self._rest(f"sobjects/{sobject}/describe")
            return {
                f["name"]: [f.get("type", ""), bool(f.get("updateable"))]
                for f in described["fields"]
            }

        found: dict[str, list[Any]] = self._metadata.get(
            f"fields:{sobject}", describe, refresh=refresh
        )
        return found

    def _fields_of(self, sobject: str, *, refresh: bool = False) -> dict[str, str]:
        """The object's field names and types, from the cached describe."""
        return {name: kind for name, (kind, _) in self._described(sobject, refresh=refresh).items()}

    def _ours(self, record: RecordKind) -> list[FieldSpec]:
        return [spec for spec in self.settings.fields if spec.record is record]

    def _require_fields(
        self, sobject: str, specs: Sequence[FieldSpec], *, edit: bool = False, fresh: bool = False
    ) -> None:
        """Our fields exist with the types we write, and the API user may read them (and,
        with ``edit``, change them). A cached describe that disagrees is read afresh first;
        ``fresh`` reads it afresh anyway (once per run), as before writing."""
        if not specs:
            return
        problems = _field_problems(sobject, specs, self._described(sobject, refresh=fresh), edit)
        if problems and not fresh:
            problems = _field_problems(sobject, specs, self._described(sobject, refresh=True), edit)
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
        visible = self._described(sobject)
        unseen = [s.salesforce for s in specs if s.salesforce not in visible]
        if not unseen:
            return problems
        created = self._custom_fields(sobject)
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

    def _query_tooling(self, soql: str) -> list[dict[str, Any]]:
        def request() -> Any:
            return self.sf.toolingexecute(f"query/?q={quote_plus(soql)}")

        answer: Any = self._call(request)
        return list(answer.get("records", []))

    def _query(
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

        def first() -> Any:
            return self.sf.query(soql, include_deleted=include_deleted)

        try:
            page: Any = self._call(first)
        except CrmConfigError as error:
            if ours is not None and error.code == "INVALID_FIELD":
                self._require_fields(*ours, fresh=True)
            raise
        while True:
            yield from page["records"]
            next_url: str | None = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return

            def more(url: str = next_url) -> Any:
                return self.sf.query_more(url, identifier_is_url=True)

            page = self._call(more)

    def read_users(
        self, include_fields: bool = True, *, refresh: bool = False
    ) -> Iterator[CrmUser]:
        del refresh  # every read is fresh: one query for all users
        specs = self._ours(RecordKind.REP) if include_fields else []
        self._require_fields("User", specs)
        columns = ["Id", "Name", "Email", "IsActive", "ManagerId", *(s.salesforce for s in specs)]
        for row in self._query(f"SELECT {', '.join(columns)} FROM User", ours=("User", specs)):
            yield CrmUser(
                id=row["Id"],
                name=row.get("Name") or "",
                email=row.get("Email") or "",
                active=bool(row.get("IsActive")),
                manager_id=row.get("ManagerId"),
                fields={s.key: _value_text(s, row.get(s.salesforce)) for s in specs},
            )

    def account_id(self) -> str:
        """The org id (``00D…``), read once."""
        if self._account is None:
            rows = list(self._query("SELECT Id FROM Organization"))
            if not rows:
                raise CrmError(f"Salesforce at {self.settings.instance_url} names no organization")
            self._account = str(rows[0]["Id"])
        return self._account

    def writer_id(self) -> str | None:
        """The integration user (OpenID Connect ``userinfo``), cached with the metadata."""

        def fetch() -> str:
            info: Any = self._call(lambda: self.sf.oauth2("userinfo"))
            return str(info["user_id"])

        found: str = self._metadata.get("integration_user", fetch)
        return found

    def _deal_columns(self, specs: Sequence[FieldSpec]) -> list[str]:
        columns = [
            "Id",
            "Name",
            "OwnerId",
            "Amount",
            "CloseDate",
            "StageName",
            "IsWon",
            "IsClosed",
            "Type",
            "SystemModstamp",
            "IsDeleted",
            "CreatedDate",
        ]
        if "CurrencyIsoCode" in self._fields_of("Opportunity"):
            columns.append("CurrencyIsoCode")  # multi-currency orgs only
        return columns + [s.salesforce for s in specs]

    def read_deals(self, since: datetime | None) -> Iterator[CrmDeal]:
        specs = self._ours(RecordKind.DEAL)
        self._require_fields("Opportunity", specs)
        soql = f"SELECT {', '.join(self._deal_columns(specs))} FROM Opportunity"
        if since is not None:
            # Inclusive: a record stamped in the same second as the cursor is read again
            # rather than missed; re-reading an unchanged deal changes nothing.
            soql += f" WHERE SystemModstamp >= {_soql_datetime(since)}"
        soql += " ORDER BY SystemModstamp, Id"
        for row in self._query(soql, include_deleted=True, ours=("Opportunity", specs)):
            yield self._deal(row, specs)

    def read_deals_by_id(self, deal_ids: Collection[str]) -> Iterator[CrmDeal]:
        specs = self._ours(RecordKind.DEAL)
        self._require_fields("Opportunity", specs)
        ids = sorted({deal_id for deal_id in deal_ids if _ID.match(deal_id)})
        columns = ", ".join(self._deal_columns(specs))
        for start in range(0, len(ids), ID_QUERY_CHUNK):
            quoted = ", ".join(f"'{deal_id}'" for deal_id in ids[start : start + ID_QUERY_CHUNK])
            soql = f"SELECT {columns} FROM Opportunity WHERE Id IN ({quoted})"
            for row in self._query(soql, include_deleted=True, ours=("Opportunity", specs)):
                yield self._deal(row, specs)

    def _deal(self, row: Mapping[str, Any], specs: Sequence[FieldSpec]) -> CrmDeal:
        stage = row.get("StageName") or ""
        won_stages = self.settings.won_stages
        if won_stages is not None:
            won = stage in won_stages
            outcome = Outcome.WON if won else Outcome.LOST if row.get("IsClosed") else Outcome.OPEN
        else:
            outcome = (
                Outcome.WON
                if row.get("IsWon")
                else Outcome.LOST
                if row.get("IsClosed")
                else Outcome.OPEN
            )
        amount = row.get("Amount")
        close = row.get("CloseDate")
        properties = {
            key: str(row[key]) for key in ("Name", "StageName", "Type") if row.get(key) is not None
        }
        return CrmDeal(
            id=row["Id"],
            owner_id=row.get("OwnerId") or "",
            amount=Decimal(str(amount)) if amount is not None else None,
            close_date=date.fromisoformat(close) if close else None,
            outcome=outcome,
            modified_at=_datetime(row["SystemModstamp"]),
            currency=row.get("CurrencyIsoCode"),
            type=row.get("Type"),
            name=row.get("Name") or "",
            deleted=bool(row.get("IsDeleted")),
            properties=properties,
            fields={s.key: _value_text(s, row.get(s.salesforce)) for s in specs},
            created_date=self._day(row.get("CreatedDate")),
        )

    def _day(self, stamp: str | None) -> date | None:
        """A Salesforce datetime as a date in the configured time zone."""
        return _datetime(stamp).astimezone(self.settings.timezone).date() if stamp else None

    def read_quotas(self) -> list[CrmQuota]:
        """Collaborative Forecasts quotas (``ForecastingQuota``): amounts and quantities."""
        soql = (
            "SELECT QuotaOwnerId, StartDate, QuotaAmount, QuotaQuantity, IsQuantity "
            "FROM ForecastingQuota"
        )
        quotas: list[CrmQuota] = []
        try:
            for row in self._query(soql):
                start = row.get("StartDate")
                owner = row.get("QuotaOwnerId")
                if not start or not owner:
                    continue
                amount, quantity = row.get("QuotaAmount"), row.get("QuotaQuantity")
                quantity_type = bool(row.get("IsQuantity"))
                quotas.append(
                    CrmQuota(
                        owner,
                        date.fromisoformat(start),
                        None if quantity_type or amount is None else Decimal(str(amount)),
                        None if not quantity_type or quantity is None else Decimal(str(quantity)),
                    )
                )
        except CrmError as error:
            if error.code in ("INVALID_TYPE", "NOT_FOUND") or error.status == 404:
                raise CrmConfigError(
                    "Salesforce: this org has no ForecastingQuota (Collaborative Forecasts is "
                    "off, or the integration user cannot see quotas): turn it on, or set the "
                    "plans' quota_source and target_source back to plan",
                    status=error.status,
                    code=error.code,
                ) from None
            raise
        return quotas

    def read_leads(self, since: date) -> list[Lead]:
        """Leads created on or after ``since`` that a user owns (not a queue)."""
        soql = (
            "SELECT Id, OwnerId, CreatedDate, IsConverted FROM Lead "
            f"WHERE CreatedDate >= {since.isoformat()}T00:00:00Z"
        )
        leads: list[Lead] = []
        for row in self._query(soql):
            owner = str(row.get("OwnerId") or "")
            created = self._day(row.get("CreatedDate"))
            if owner.startswith("005") and created is not None:
                leads.append(Lead(row["Id"], owner, created, bool(row.get("IsConverted"))))
        return leads

    def read_splits(self, deal_ids: Collection[str]) -> Iterator[CrmSplit] | None:
        ids = sorted(deal_id for deal_id in deal_ids if _ID.match(deal_id))
        # Many ids (a full sync): one paged read of every split beats hundreds of IN queries.
        read_all = len(ids) > SPLIT_QUERY_CHUNK * SPLIT_QUERIES_MAX
        try:
            if read_all:
                wanted = set(ids)
                every_split = self._splits(None)
                first = [s for s in every_split if s.deal_id in wanted]
            else:
                first = list(self._splits(ids[:SPLIT_QUERY_CHUNK])) if ids else []
        except CrmError as error:
            if error.code == "INVALID_TYPE":
                return None  # splits are not enabled in this org
            raise

        def every() -> Iterator[CrmSplit]:
            yield from first
            if read_all:
                return
            for start in range(SPLIT_QUERY_CHUNK, len(ids), SPLIT_QUERY_CHUNK):
                yield from self._splits(ids[start : start + SPLIT_QUERY_CHUNK])

        return every()

    def _splits(self, ids: Sequence[str] | None) -> Iterator[CrmSplit]:
        """Splits of these opportunities (of every opportunity when ``ids`` is None)."""
        soql = "SELECT OpportunityId, SplitOwnerId, SplitPercentage FROM OpportunitySplit"
        if ids is not None:
            if not ids:
                return
            quoted = ", ".join(f"'{deal_id}'" for deal_id in ids)
            soql += f" WHERE OpportunityId IN ({quoted})"
        for row in self._query(soql):
            yield CrmSplit(
                deal_id=row["OpportunityId"],
                rep_id=row["SplitOwnerId"],
                percent=Decimal(str(row["SplitPercentage"])),
            )

    # -- writing ------------------------------------------------------------------------------

    def write(self, record: RecordKind, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        sobject = _OBJECT[record]
        if updates:
            # Both objects, described afresh once a run, before the first write: a grant
            # someone removed is one clear error, not a failure on every record, and not
            # a run that wrote the deals and then could not write the reps.
            for kind, name in _OBJECT.items():
                self._require_fields(name, self._ours(kind), edit=True, fresh=True)
        results: dict[str, WriteResult] = {}
        for start in range(0, len(updates), BATCH_SIZE):
            batch = updates[start : start + BATCH_SIZE]
            results.update(self._write_batch(sobject, batch))
        return [results[update.record_id] for update in updates]

    def _write_batch(self, sobject: str, batch: Sequence[RecordUpdate]) -> dict[str, WriteResult]:
        """One composite call; locked records are sent again through the retry policy."""
        results: dict[str, WriteResult] = {}
        remaining = list(batch)

        def send() -> None:
            nonlocal remaining
            body = {
                "allOrNone": False,
                "records": [self._record(sobject, update) for update in remaining],
            }
            self._calls += 1
            try:
                answer = self.sf.restful("composite/sobjects", method="PATCH", data=_json(body))
            except SalesforceError as error:
                raise _mapped(error, self.settings.instance_url) from None
            except requests.RequestException as error:
                failure = connect_failure(error)
                if failure is not None:
                    raise failure from None
                raise
            locked: list[RecordUpdate] = []
            for update, outcome in zip(remaining, answer or [], strict=True):
                if outcome.get("success"):
                    results[update.record_id] = WriteResult(update.record_id, True)
                    continue
                errors = outcome.get("errors") or [{}]
                code = str(errors[0].get("statusCode", "UNKNOWN"))
                message = "; ".join(str(e.get("message", "")) for e in errors)
                if code == "INVALID_FIELD_FOR_INSERT_UPDATE":
                    message += (
                        f" (the integration user lacks Edit on our fields: run "
                        f"`spm-connector install` to grant it through {INTEGRATION_PERMISSION_SET})"
                    )
                results[update.record_id] = WriteResult(update.record_id, False, code, message)
                if code == _LOCKED:
                    locked.append(update)
            remaining = locked
            if locked:
                raise RetryableError(f"{len(locked)} record(s) locked ({_LOCKED})")

        try:
            self._retry.call(send)
        except RetryableError:
            pass  # still locked after every attempt: reported per record, retried next sync
        except ConnectFailure as failure:
            raise unreachable(
                "Salesforce", self.settings.instance_url, failure, "instance_url"
            ) from None
        except (requests.RequestException, OSError) as error:
            raise CrmUnavailableError(
                f"could not reach Salesforce at {self.settings.instance_url}: the connection "
                f"failed ({_plain(error)})"
            ) from None
        for update in batch:
            results.setdefault(
                update.record_id,
                WriteResult(update.record_id, False, "NOT_SENT", "the write was not attempted"),
            )
        return results

    def _record(self, sobject: str, update: RecordUpdate) -> dict[str, Any]:
        target = update.target_id or update.record_id
        record: dict[str, Any] = {"attributes": {"type": sobject}, "id": target}
        for key, value in update.values.items():
            spec = self._specs[key]
            record[spec.salesforce] = _outgoing(spec, value)
        return record

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
        report: list[FieldStatus] = []
        for sobject, record in (("Opportunity", RecordKind.DEAL), ("User", RecordKind.REP)):
            visible = self._fields_of(sobject, refresh=True)
            # A field the API user has no field-level security on is missing from describe
            # but exists: the Tooling API lists it, and creating it again would fail.
            created = self._custom_fields(sobject)
            for spec in (s for s in specs if s.record is record):
                full_name = f"{sobject}.{spec.salesforce}"
                found = visible.get(spec.salesforce)
                if found is not None:
                    expected = _SF_TYPE[spec.value]
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
                    report.append(FieldStatus(full_name, "would create", _SF_TYPE[spec.value]))
                else:
                    self._tooling_create(_field_metadata(full_name, spec))
                    report.append(FieldStatus(full_name, "created", _SF_TYPE[spec.value]))
            self._metadata.forget(f"fields:{sobject}")
        writer = self.writer_id()
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
            _OBJECT[record]: [s.salesforce for s in specs if s.record is record]
            for record in _OBJECT
        }
        objects = "('Opportunity', 'User')"
        if names is None and not readers:
            return []  # nobody to show them to (no plan members given)
        if names is None:
            profiles = {
                row["ProfileId"]
                for row in self._query("SELECT Id, ProfileId FROM User")
                if row["Id"] in readers and row.get("ProfileId")
            }
            assigned = self._query_tooling(
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
            rows = self._query_tooling(
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
            row = self._query_tooling(
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
                return self.sf.toolingexecute(
                    f"sobjects/Layout/{layout}", method="PATCH", data={"Metadata": body}
                )

            self._call(patch)
            report.append(FieldStatus(what, "updated", detail))
        return report

    def _custom_fields(self, sobject: str) -> set[str]:
        """API names of the object's own custom fields (not a managed package's), whoever
        may see them: the Tooling API lists fields that field-level security hides."""
        rows = self._query_tooling(
            "SELECT DeveloperName FROM CustomField "
            f"WHERE TableEnumOrId = '{sobject}' AND NamespacePrefix = null"
        )
        return {f"{row['DeveloperName']}__c" for row in rows}

    def _tooling_create(self, body: dict[str, Any]) -> None:
        def request() -> Any:
            return self.sf.toolingexecute("sobjects/CustomField", method="POST", data=body)

        self._call(request)

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
        found = list(self._query(f"SELECT Id FROM PermissionSet WHERE Name = '{name}'"))
        if found:
            permission_set_id = found[0]["Id"]
            report.append(FieldStatus(f"PermissionSet {name}", "exists"))
        elif dry_run:
            report.append(FieldStatus(f"PermissionSet {name}", "would create"))
            permission_set_id = None
        else:
            created = self._rest(
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
                for row in self._query(
                    "SELECT Id, Field, PermissionsRead, PermissionsEdit FROM FieldPermissions "
                    f"WHERE ParentId = '{permission_set_id}'"
                )
            }
            assigned = {
                row["AssigneeId"]
                for row in self._query(
                    "SELECT AssigneeId FROM PermissionSetAssignment "
                    f"WHERE PermissionSetId = '{permission_set_id}'"
                )
            }
        access = "read and edit" if kind.edit else "read"
        grants: list[dict[str, Any]] = []
        repairs: list[dict[str, Any]] = []
        for spec in specs:
            full_name = f"{_OBJECT[spec.record]}.{spec.salesforce}"
            row = granted.get(full_name.lower())
            wanted = {"PermissionsRead": True, "PermissionsEdit": kind.edit}
            if row is None:
                grants.append(
                    {
                        "attributes": {"type": "FieldPermissions"},
                        "ParentId": permission_set_id,
                        "SobjectType": _OBJECT[spec.record],
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
            answer = self._rest(
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

    def usage(self) -> ApiUsage:
        used = limit = None
        if self._sf is not None:
            usage = self._sf.api_usage.get("api-usage")
            if usage is not None:
                used, limit = usage.used, usage.total
        return ApiUsage(calls=self._calls, used=used, limit=limit, waited_s=self._retry.waited)


def _outgoing(spec: FieldSpec, value: FieldValue) -> Any:
    """Canonical text → what Salesforce expects in the field."""
    if value is None:
        return None
    if spec.value in (ValueKind.MONEY, ValueKind.NUMBER):
        return Decimal(str(value))
    if spec.value is ValueKind.FRACTION:
        return Decimal(str(value)) * 100  # Salesforce Percent fields hold 12.5 for 12.5 %
    return str(value)


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
        metadata.update(type="Text", length=10)
    else:
        metadata.update(type="DateTime")
    return {"FullName": full_name, "Metadata": metadata}


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
        if found[0] != _SF_TYPE[spec.value]:
            problems.append(
                f"{sobject}.{spec.salesforce} is a {found[0]} field, not "
                f"{_SF_TYPE[spec.value]}: spm-connector would write {spec.key} values into it; "
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


def _plain(error: BaseException) -> str:
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


def _mapped(error: SalesforceError, instance_url: str) -> Exception:
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
    if code == _LOCKED:
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
