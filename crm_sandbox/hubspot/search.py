"""The CRM search endpoint's query language: filter groups, sorts, free text, paging rules."""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from crm_sandbox.hubspot.records import ApiError, CrmRecord, PropertyDef, coerce

MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
MAX_LIMIT = 200
MAX_RESULTS = 10_000
OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)

Test = Callable[[CrmRecord], bool]


def _invalid(message: str) -> ApiError:
    return ApiError(400, message, "VALIDATION_ERROR")


@dataclass(frozen=True)
class SearchRequest:
    filter_groups: list[list[Test]]
    sorts: list[tuple[str, str, bool]]  # (property, type, descending)
    query: str
    properties: list[str]
    limit: int
    after: int
    cache_key: str


def parse(body: dict[str, Any], defs: dict[str, PropertyDef]) -> SearchRequest:
    """Validate a search body as HubSpot does and compile its filters into tests."""
    groups_in = body.get("filterGroups") or []
    if not isinstance(groups_in, list):
        raise _invalid("Invalid input JSON: filterGroups must be a list")
    if len(groups_in) > MAX_GROUPS:
        raise _invalid(
            f"Too many filter groups: {len(groups_in)}; at most {MAX_GROUPS} are allowed."
        )
    total = 0
    groups: list[list[Test]] = []
    for group in groups_in:
        filters = group.get("filters") or [] if isinstance(group, dict) else []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise _invalid(
                f"Too many filters in a filter group: {len(filters)}; "
                f"at most {MAX_FILTERS_PER_GROUP} are allowed."
            )
        total += len(filters)
        groups.append([_compile(f, defs) for f in filters])
    if total > MAX_FILTERS:
        raise _invalid(f"Too many filters: {total}; at most {MAX_FILTERS} are allowed in total.")
    sorts = [_sort(s, defs) for s in body.get("sorts") or []]
    try:
        limit = int(body.get("limit", 10) if body.get("limit") is not None else 10)
        after = int(body.get("after") or 0)
    except (TypeError, ValueError):
        raise _invalid("Invalid input JSON: limit and after must be integers") from None
    if limit < 0 or limit > MAX_LIMIT:
        raise _invalid(f"limit must be between 0 and {MAX_LIMIT}; it was {limit}.")
    if after < 0:
        raise _invalid("after must not be negative")
    if after >= MAX_RESULTS:
        raise _invalid(
            f"Paging past {MAX_RESULTS} results is not supported by the search API "
            f"(after={after}); narrow the query instead."
        )
    properties = [str(p) for p in body.get("properties") or []]
    query = str(body.get("query") or "").strip().lower()
    key = json.dumps([groups_in, body.get("sorts") or [], query], sort_keys=True, default=str)
    return SearchRequest(groups, sorts, query, properties, limit, after, key)


def _kind(name: str, defs: dict[str, PropertyDef]) -> str:
    prop = defs.get(name)
    return prop.type if prop else "string"


def _sort(spec: Any, defs: dict[str, PropertyDef]) -> tuple[str, str, bool]:
    if isinstance(spec, str):
        # The spec types a sort as a string: "name" ascending, "-name" descending.
        name, descending = spec.lstrip("-"), spec.startswith("-")
    elif isinstance(spec, dict) and spec.get("propertyName"):
        name = str(spec["propertyName"])
        descending = str(spec.get("direction", "ASCENDING")).upper() == "DESCENDING"
    else:
        raise _invalid("Invalid sort: give propertyName and direction")
    return name, _kind(name, defs), descending


def _compile(spec: Any, defs: dict[str, PropertyDef]) -> Test:
    if not isinstance(spec, dict) or not spec.get("propertyName") or not spec.get("operator"):
        raise _invalid("Invalid filter: propertyName and operator are required")
    name, op = str(spec["propertyName"]), str(spec["operator"]).upper()
    if op not in OPERATORS:
        raise _invalid(f"Unknown filter operator {op!r}")
    kind = _kind(name, defs)

    def value_of(key: str) -> Any:
        raw = spec.get(key)
        if raw is None:
            raise _invalid(f"Filter on {name} with {op} needs {key}")
        value = coerce(kind, str(raw))
        if value is None:
            raise _invalid(f"{raw} is not a valid value for {name}")
        return value

    if op == "HAS_PROPERTY":
        return lambda r: r.typed(name, kind) is not None
    if op == "NOT_HAS_PROPERTY":
        return lambda r: r.typed(name, kind) is None
    if op in ("IN", "NOT_IN"):
        raw_values = spec.get("values")
        if not isinstance(raw_values, list):
            raise _invalid(f"Filter on {name} with {op} needs values")
        members = {coerce(kind, str(v)) for v in raw_values}
        if op == "IN":
            return lambda r: r.typed(name, kind) in members
        return lambda r: r.typed(name, kind) not in members
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(spec.get("value") or "").lower()
        negate = op == "NOT_CONTAINS_TOKEN"

        def has_token(r: CrmRecord) -> bool:
            text = r.properties.get(name) or ""
            found = any(fnmatchcase(token, pattern) for token in _TOKEN.findall(text.lower()))
            return found != negate

        return has_token
    if op == "BETWEEN":
        low, high = value_of("value"), value_of("highValue")
        return lambda r: _between(r.typed(name, kind), low, high)
    value = value_of("value")
    if op == "EQ":
        return lambda r: r.typed(name, kind) == value
    if op == "NEQ":
        return lambda r: r.typed(name, kind) != value
    compare: Callable[[Any], bool] = {
        "LT": lambda a: a < value,
        "LTE": lambda a: a <= value,
        "GT": lambda a: a > value,
        "GTE": lambda a: a >= value,
    }[op]

    def ordered(r: CrmRecord) -> bool:
        current = r.typed(name, kind)
        return current is not None and compare(current)

    return ordered


def _between(current: Any, low: Any, high: Any) -> bool:
    return current is not None and low <= current <= high


def _matches_query(record: CrmRecord, query: str, searchable: tuple[str, ...]) -> bool:
    for name in searchable:
        text = (record.properties.get(name) or "").lower()
        if any(token.startswith(query) for token in _TOKEN.findall(text)) or query in text:
            return True
    return False


def run(
    request: SearchRequest, records: Iterable[CrmRecord], searchable: tuple[str, ...]
) -> list[CrmRecord]:
    """Every match, in the requested order (default: id, that is creation order)."""
    groups = request.filter_groups
    found = [
        r
        for r in records
        if (not groups or any(all(test(r) for test in group) for group in groups))
        and (not request.query or _matches_query(r, request.query, searchable))
    ]
    for name, kind, descending in reversed(request.sorts):
        present = [r for r in found if r.typed(name, kind) is not None]
        missing = [r for r in found if r.typed(name, kind) is None]
        present.sort(key=lambda r: r.typed(name, kind), reverse=descending)
        found = present + missing
    return found


class ResultCache:
    """Matches of recent queries, so paging one query costs one scan until the data changes."""

    def __init__(self, size: int = 32) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[int, list[CrmRecord]]] = OrderedDict()
        self._size = size

    def get(self, object_type: str, key: str, revision: int) -> list[CrmRecord] | None:
        entry = self._entries.get((object_type, key))
        if entry is None or entry[0] != revision:
            return None
        self._entries.move_to_end((object_type, key))
        return entry[1]

    def put(self, object_type: str, key: str, revision: int, found: list[CrmRecord]) -> None:
        self._entries[(object_type, key)] = (revision, found)
        self._entries.move_to_end((object_type, key))
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
