"""``POST /webhooks/events``: a generic, signed JSON endpoint.

For a Salesforce Flow's HTTP callout, Apex, a HubSpot workflow's webhook
action or any other tool::

    POST /webhooks/events
    Content-Type: application/json
    X-SPM-Signature: t=1767225600,v1=<hex HMAC-SHA256 of "1767225600." + body>

    {"crm": "salesforce", "object": "opportunity", "id": "006…"}

The body is one event or an array of them. ``event_id`` is optional: without
it, a request is recognised as a retry only when it is the very same signed
request (same timestamp and body).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.store.inbox import Event
from webhooks.receiver import Receiver, endpoint, json_refusal, receiver
from webhooks.signing import SIGNATURE_HEADER, Rejected, verify_event_body

SOURCE = "events"
bp = Blueprint("events", __name__)

# What a record id looks like in each CRM: anything else is refused before it is stored.
_IDS = {
    "salesforce": re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$"),
    "hubspot": re.compile(r"^[0-9]{1,20}$"),
}
_RECORDS = {
    "deal": "deal",
    "deals": "deal",
    "opportunity": "deal",
    "user": "user",
    "users": "user",
    "owner": "user",
    "opportunitysplit": "split",
    "split": "split",
}


class GenericEvent(BaseModel):
    """Our own format: unknown fields are mistakes, and refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crm: Literal["salesforce", "hubspot"]
    object: str
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    event_id: str | None = Field(default=None, min_length=1, max_length=120)


@bp.post("/webhooks/events")
def events() -> tuple[Response, int]:
    return endpoint(SOURCE, {"application/json"}, _store, json_refusal)


def _store(state: Receiver, body: bytes) -> tuple[Response, int]:
    timestamp = verify_event_body(
        secret=_secret(),
        header=request.headers.get(SIGNATURE_HEADER),
        body=body,
        now_s=state.clock().timestamp(),
    )
    stored = _events(body, timestamp)
    fresh = state.store_events(SOURCE, stored)
    return jsonify({"stored": len(stored), "new": fresh}), 200


def _secret() -> str | None:
    secret = receiver().secrets.webhook_secret
    return secret.get_secret_value() if secret is not None else None


def _events(body: bytes, timestamp: int) -> list[Event]:
    try:
        payload: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise Rejected(400, "malformed", "the body is not JSON") from None
    items = payload if isinstance(payload, list) else [payload]
    crm = receiver().config.crm
    configured = crm.type.value if crm is not None else None
    digest = hashlib.sha256(body).hexdigest()[:32]
    stored: list[Event] = []
    for index, item in enumerate(items):
        try:
            event = GenericEvent.model_validate(item)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "event"
            raise Rejected(400, "malformed", f"event [{index}] {where}: {first['msg']}") from None
        if event.crm != configured:
            raise Rejected(
                400, "wrong_crm", f"event [{index}] crm: this connector syncs {configured}"
            )
        record = _RECORDS.get(event.object.lower())
        if record is None:
            known = ", ".join(sorted(_RECORDS))
            raise Rejected(400, "malformed", f"event [{index}] object: one of {known}")
        if not _IDS[event.crm].match(event.id):
            raise Rejected(
                400, "malformed", f"event [{index}] id: {event.id!r} is not a {event.crm} id"
            )
        event_id = event.event_id or f"{timestamp}:{digest}:{index}"
        stored.append(Event(SOURCE, event_id, record, event.id, f"{event.crm}.{record}"))
    return stored
