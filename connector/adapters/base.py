"""The one small protocol every CRM adapter implements.

The sync engine needs only these operations from a CRM. Adapters turn vendor
payloads into the records of :mod:`connector.core.models` at the edge; past it,
nothing sees a vendor dict.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from connector.adapters.retry import RetryPolicy
from connector.core.currency import Rates
from connector.core.fields import FieldSpec, RecordKind
from connector.core.models import (
    ApiUsage,
    CrmDeal,
    CrmQuota,
    CrmSplit,
    CrmTask,
    CrmUser,
    FieldStatus,
    Lead,
    RecordUpdate,
    TaskDraft,
    WriteResult,
)
from connector.errors import CrmLimitError, CrmUnavailableError, RetryableError


class TaskBoard(Protocol):
    """The CRM's tasks, as coaching plays and training modules use them."""

    # How long after a create the task can surely be found (HubSpot's search lags).
    settle_s: float

    def create(self, task: TaskDraft) -> str:
        """Open the task; its CRM id."""
        ...

    def find(self, task: TaskDraft) -> str | None:
        """The id of a task with this owner and subject, when one exists (the oldest)."""
        ...

    def read(self, task_ids: Collection[str]) -> list[CrmTask]:
        """These tasks as the CRM holds them now; a deleted one is not among them."""
        ...

    def update_body(self, task_id: str, body: str) -> None:
        """Replace the task's notes (Salesforce: comments)."""
        ...


class CrmAdapter(Protocol):
    """Reads users, deals and splits; creates our fields; writes values back."""

    name: str
    # The deal columns a goal or SPIFF filter can name, besides the Deal's own.
    deal_columns: frozenset[str]
    tasks: TaskBoard  # coaching and training tasks

    def account_id(self) -> str:
        """The CRM account this adapter talks to (Salesforce org id, HubSpot portal id)."""
        ...

    def writer_id(self) -> str | None:
        """The CRM user our writes are made as, when events name who changed a record.

        Salesforce: the integration user (an outbound message's ``LastModifiedById``
        equal to it is our own write coming back). HubSpot: None; its events name our
        app instead.
        """
        ...

    def read_users(
        self, include_fields: bool = True, *, refresh: bool = False
    ) -> Iterator[CrmUser]:
        """Every user / owner, with the current values of our rep fields.

        ``include_fields=False`` reads them before our fields exist (install);
        ``refresh`` re-reads what the adapter caches about them (HubSpot's owners).
        """
        ...

    def read_deals(self, since: datetime | None) -> Iterator[CrmDeal]:
        """Deals changed after ``since`` (all when None), deletions included, lazily."""
        ...

    def read_deals_by_id(self, deal_ids: Collection[str]) -> Iterator[CrmDeal]:
        """These deals as the CRM holds them now, deleted ones included (``deleted``).

        An id the CRM does not know at all is simply not yielded.
        """
        ...

    def read_splits(self, deal_ids: Collection[str]) -> Iterator[CrmSplit] | None:
        """Splits of the given deals, or None when the CRM has no splits."""
        ...

    def read_quotas(self) -> list[CrmQuota]:
        """Every quota the CRM holds for its users (Salesforce ``ForecastingQuota``,
        HubSpot goal targets); raises CrmConfigError where the CRM has none to read."""
        ...

    def read_leads(self, since: date) -> list[Lead]:
        """Leads (Salesforce) or contacts (HubSpot) created from ``since``, with an owner."""
        ...

    def read_rates(self, *, refresh: bool = False) -> Rates | None:
        """The exchange rates the CRM keeps (cached like metadata; ``refresh`` reads them
        afresh), or None where it keeps none (a single-currency org or portal)."""
        ...

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
        """Create missing custom fields, grant the API user and ``assign_to`` access, and
        show the fields on record layouts (those named in ``layouts``, else the layouts the
        ``readers`` see, ``assign_to`` when not given), where the CRM has such things."""
        ...

    def write(self, record: RecordKind, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        """Write in as few calls as the CRM allows; one result per update, in order."""
        ...

    def as_written(self, key: str, value: str | None) -> str | None:
        """A field's canonical value as this CRM's field holds it (a dry run shows this):
        Salesforce percent fields hold 8.0 for 0.08."""
        ...

    def usage(self) -> ApiUsage: ...


class MetadataCache(Protocol):
    """Where an adapter keeps CRM metadata between runs (the store implements it)."""

    def metadata(self, name: str) -> tuple[Any, datetime] | None:
        """The value stored under ``name`` and when it was fetched, or None."""
        ...

    def set_metadata(self, name: str, value: Any, fetched_at: datetime) -> None: ...


class CallBudget(Protocol):
    """API calls shared by every process on one CRM account (the store keeps them)."""

    def take(
        self, account: str, api: str, want: int, limit: int, window_s: float, now: float
    ) -> tuple[int, float]:
        """Up to ``want`` calls of ``limit`` per rolling ``window_s`` (``now``: epoch
        seconds): (calls granted, the epoch second by which they must be made), or
        (0, seconds to wait before asking again)."""
        ...

    def pause(self, account: str, until: float) -> None:
        """No process calls the account's API before ``until`` (epoch seconds)."""
        ...


class NoCache:
    """A cache that remembers for the life of the adapter only (install, tests)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[Any, datetime]] = {}

    def metadata(self, name: str) -> tuple[Any, datetime] | None:
        return self._values.get(name)

    def set_metadata(self, name: str, value: Any, fetched_at: datetime) -> None:
        self._values[name] = (value, fetched_at)


# Metadata that changes only when an admin edits the CRM's setup (pipelines, field
# definitions, the owner list) is reused for this long, unless something we read
# shows it changed (an unknown stage or owner id), which refreshes it at once.
METADATA_MAX_AGE = timedelta(hours=24)


class Metadata:
    """Cached CRM metadata: ``get`` fetches on a miss, after ``max_age``, or when forced."""

    def __init__(
        self,
        cache: MetadataCache,
        account: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_age: timedelta = METADATA_MAX_AGE,
    ) -> None:
        self._cache = cache
        self._account = account
        self._clock = clock
        self._max_age = max_age
        self._fresh: set[str] = set()  # fetched by this adapter: never fetched twice a run

    def get(self, name: str, fetch: Callable[[], Any], *, refresh: bool = False) -> Any:
        key = f"{self._account}:{name}"
        if refresh and key in self._fresh:
            refresh = False
        found = None if refresh else self._cache.metadata(key)
        if found is not None and (key in self._fresh or self._clock() - found[1] < self._max_age):
            return found[0]
        value = fetch()
        self._cache.set_metadata(key, value, self._clock())
        self._fresh.add(key)
        return value

    def forget(self, name: str) -> None:
        """We changed it (install): the next ``get`` fetches it again."""
        key = f"{self._account}:{name}"
        self._fresh.discard(key)
        self._cache.set_metadata(key, None, datetime.min.replace(tzinfo=UTC))


T = TypeVar("T")


class Pager(Generic[T]):
    """The records of one paged listing, read lazily a page (one call) at a time.

    ``fetch(cursor)`` reads one page: the first when ``cursor`` is None, else the
    page the cursor (HubSpot's ``after``, Salesforce's ``nextRecordsUrl``) names.
    It answers the page's records and the next cursor, None on the last page. A
    cursor that comes back a second time would serve the same pages forever: that
    is an error naming the listing, not an endless loop.
    """

    def __init__(
        self, listing: str, fetch: Callable[[str | None], tuple[Iterable[T], str | None]]
    ) -> None:
        self.listing = listing
        self._fetch = fetch

    def __iter__(self) -> Iterator[T]:
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            records, cursor = self._fetch(cursor)
            yield from records
            if not cursor:
                return
            if cursor in seen:
                raise CrmUnavailableError(
                    f"{self.listing}: the CRM answered a page cursor it had answered before "
                    f"({cursor[:60]!r}); stopped reading rather than read the same pages "
                    "forever. The next sync reads the listing again"
                )
            seen.add(cursor)


NOT_SENT = "NOT_SENT"


class BatchWriter:
    """Writes updates in as few calls as the CRM allows, and accounts for every one.

    Updates go in batches of ``size`` (the CRM's limit per call), each through
    ``send``, which makes one call and answers a result per record it heard of. The
    records the CRM calls busy (a result whose code is in ``busy``: a row lock, a
    conflict) are sent again through the retry policy; those still busy after every
    attempt keep their busy result, and the next sync writes them. A record never
    attempted (its batch failed before it was sent) is reported ``NOT_SENT``.
    Failures of the call itself (the CRM down, bad credentials) are ``send``'s to
    raise and propagate from :meth:`write`.
    """

    def __init__(self, size: int, retry: RetryPolicy, busy: Collection[str]) -> None:
        self.size = size
        self.retry = retry
        self.busy = frozenset(busy)

    def write(
        self,
        updates: Sequence[RecordUpdate],
        send: Callable[[Sequence[RecordUpdate]], Mapping[str, WriteResult]],
    ) -> dict[str, WriteResult]:
        """A result per update, by record id."""
        results: dict[str, WriteResult] = {}
        for start in range(0, len(updates), self.size):
            results.update(self._batch(updates[start : start + self.size], send))
        return results

    def _batch(
        self,
        batch: Sequence[RecordUpdate],
        send: Callable[[Sequence[RecordUpdate]], Mapping[str, WriteResult]],
    ) -> dict[str, WriteResult]:
        results: dict[str, WriteResult] = {}
        remaining = list(batch)

        def attempt() -> None:
            nonlocal remaining
            answered = send(remaining)
            results.update(answered)
            busy = [
                update
                for update in remaining
                if update.record_id in answered
                and answered[update.record_id].code in self.busy
                and not answered[update.record_id].ok
            ]
            remaining = busy
            if busy:
                codes = ", ".join(sorted({answered[u.record_id].code for u in busy}))
                names = ", ".join(u.record_id for u in busy[:5])
                raise RetryableError(f"{len(busy)} record(s) busy ({codes}): {names}")

        with contextlib.suppress(RetryableError):
            self.retry.call(attempt)  # still busy after every attempt: reported as such
        for update in batch:
            results.setdefault(
                update.record_id,
                WriteResult(update.record_id, False, NOT_SENT, "the write was not attempted"),
            )
        return results


def missing_after_refresh(
    wanted: Sequence[str], known: Callable[[bool], Collection[str]]
) -> list[str]:
    """The names in ``wanted`` that the CRM's metadata lacks, asked of the cached copy and,
    for any it lacks, once more of a fresh read (``known(refresh)``): a field or property
    an admin added since the cache was filled is found, not refused."""
    missing = [name for name in wanted if name not in known(False)]
    if missing:
        fresh = known(True)
        missing = [name for name in missing if name not in fresh]
    return missing


def cached_rates(found: Mapping[str, Any] | None, *, source: str, inverse: bool,
                 hint: str) -> Rates | None:  # fmt: skip
    """Rates from their cached form: ``{"base": code, "rows": {code: [[from, rate], ...]}}``."""
    if not found or not found.get("rows"):
        return None
    by_currency = {
        code: tuple(sorted((date.fromisoformat(start), Decimal(rate)) for start, rate in rows))
        for code, rows in found["rows"].items()
    }
    return Rates(by_currency, source, base=found["base"], inverse=inverse, hint=hint)


DAILY_RESERVE = Decimal("0.1")  # the share of the daily allocation left to others by default


DAILY_FRESH_S = 60.0  # an answer older than this no longer stops a call: one probes


def keep_daily_reserve(usage: ApiUsage, reserve: Decimal, crm: str, age_s: float) -> None:
    """Refuse the next call while the account's daily allocation is down to ``reserve`` of
    it: what the CRM's last answer (``age_s`` ago) said the whole account (every process,
    every other integration) has used, so every worker stops at the same point.

    A CRM's daily allocation is the account's, not ours: spending it to the last call
    would stop the org's other integrations until it resets. The allocation comes back
    as the day rolls on, so an answer a minute old lets one call through to look again.
    """
    if usage.used is None or not usage.limit or reserve <= 0 or age_s > DAILY_FRESH_S:
        return
    kept = int((usage.limit * reserve).to_integral_value())
    left = usage.limit - usage.used
    if left <= kept:
        raise CrmLimitError(
            f"{crm}'s daily API limit is near: {left:,} of {usage.limit:,} calls are left, the "
            f"{reserve:.0%} kept for the account's other integrations (crm.daily_reserve); "
            "nothing is lost: the work waits until calls are free again"
        )
