"""Pydantic's validation errors as one line each, in the words of spm.yaml.

Every line names the file and the setting's path (``plans[0].commission.tiers[1].rate``)
and says what is wrong in plain words, without pydantic's own labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from pydantic_core import ErrorDetails

# A validator message that starts with a path (``tiers[1].up_to: …``) is about
# that sub-field: fold it into the location instead of repeating a colon.
_LEADING_PATH = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])*(?:\.[^\s:]+)*): (.+)$", re.DOTALL)
_CRM_TAGS = frozenset({"salesforce", "hubspot"})  # crm.type's values


# How pydantic names the member of a union it tried, in an error's location: users
# never wrote these (`teams.tuple[Team, ...][0].members[0].function-after[...]`).
_UNION_MEMBER = re.compile(r"^(?:[a-z-]+\[.*\]|str|int|Team|TeamMember)$")


def _union_member(loc: tuple[int | str, ...]) -> int | None:
    """Where in ``loc`` the first union member's name stands, if it has one."""
    for index, part in enumerate(loc):
        if isinstance(part, str) and _UNION_MEMBER.match(part):
            return index
    return None


def _chosen_members(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Of a union's errors, those of the member the input was meant for.

    A value that fails every member of a union gets an error per member, most of
    them only "not a string" or "not a list". When some member's errors are about
    the content instead, the input was written for that member: keep those.
    """
    by_union: dict[tuple[int | str, ...], list[ErrorDetails]] = {}
    for error in errors:
        index = _union_member(error["loc"])
        if index is not None:
            by_union.setdefault(error["loc"][:index], []).append(error)
    dropped: set[int] = set()
    for members in by_union.values():
        content = [e for e in members if not _wrong_kind(e)]
        if content:
            dropped.update(id(e) for e in members if _wrong_kind(e))
    kept = [e for e in errors if id(e) not in dropped]
    return [
        {
            **e,
            "loc": tuple(
                p for p in e["loc"] if not (isinstance(p, str) and _UNION_MEMBER.match(p))
            ),
        }
        for e in kept
    ]


def _wrong_kind(error: ErrorDetails) -> bool:
    """An error saying only that the value is not of a union member's kind."""
    kind = error["type"]
    return kind.endswith("_type") or kind in ("literal_error", "model_type", "dict_type")


def messages(name: str, errors: Iterable[ErrorDetails]) -> list[str]:
    errors = _chosen_members(list(errors))
    lines: list[str] = []
    for error in errors:
        if error["type"] == "too_short" and _has_inner_error(error, errors):
            continue  # "at least 1 item" only because that item was itself wrong
        path = _path(error["loc"])
        message = _message(error)
        match = _LEADING_PATH.match(message)
        if match:
            path = f"{path}.{match.group(1)}" if path else match.group(1)
            message = match.group(2)
        line = f"{name}: {path}: {message}" if path else f"{name}: {message}"
        if line not in lines:
            lines.append(line)
    return lines


def _has_inner_error(error: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    loc = error["loc"]
    return any(len(other["loc"]) > len(loc) and other["loc"][: len(loc)] == loc for other in errors)


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    previous: int | str | None = None
    for part in loc:
        if previous == "crm" and part in _CRM_TAGS:
            pass  # pydantic names the union member chosen by `type`; users never wrote it
        elif isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
        previous = part
    return text


_PATTERN_HINTS = {
    "currency": "must be a three-letter ISO currency code like USD",
    "store": "must be a SQLAlchemy URL like sqlite:///spm.db",
    "instance_url": "must be an https:// URL like https://acme.my.salesforce.com",
    "base_url": "must be a URL like https://api.hubapi.com",
    "public_url": "must be a URL like https://spm.example.com",
    "api_version": 'must be an API version like "62.0"',
}


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "is required"
    if kind == "union_tag_not_found":
        return "type: is required (salesforce or hubspot)"
    if kind == "union_tag_invalid":
        return f"type: must be salesforce or hubspot, not {context.get('tag')!r}"
    if kind == "string_pattern_mismatch":
        field = error["loc"][-1] if error["loc"] else ""
        hint = _PATTERN_HINTS.get(str(field), "is not in the expected form")
        return f"{hint}, not {error['input']!r}"
    if kind == "string_type" and isinstance(error["input"], int | Decimal):
        # HubSpot ids are digits, which YAML reads as a number.
        return f"must be text; put the number in quotes: '{error['input']}'"
    if kind == "too_short":
        return f"needs at least {context.get('min_length', 1)} item(s)"
    message = error["msg"]
    if kind in ("value_error", "assertion_error"):
        # Our validators' own words, minus pydantic's label.
        return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    # pydantic's messages are capitalised sentences; ours read "field: what is wrong".
    message = message.replace("Input should be", "must be", 1)
    return message[:1].lower() + message[1:]
