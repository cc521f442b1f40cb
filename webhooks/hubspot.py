"""``POST /webhooks/hubspot``: a HubSpot app's webhook deliveries.

HubSpot posts a JSON array of events, signed (v3) with the app's client
secret. The events are stored, then acknowledged; HubSpot retries anything
else but 400/401/403/404/405, so a store failure answers 503 and the batch
comes again. Our own write-backs come back as ``propertyChange`` events from
our app (``changeSource`` INTEGRATION, ``sourceId`` our app id) on our own
properties: those are acknowledged and dropped, or every write would cause
another read.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from connector.store.inbox import Event
from webhooks.receiver import Receiver, endpoint, json_refusal, receiver
from webhooks.signing import Rejected, verify_hubspot

SOURCE = "hubspot"
# The address a deployment's router was called at, for an account it hands a delivery to.
PUBLIC_BASE = "spm.public_base"
bp = Blueprint("hubspot", __name__)

_DEAL_TYPES = {
    "deal.creation",
    "deal.propertyChange",
    "deal.deletion",
    "deal.restore",
    "deal.privacyDeletion",
    "deal.merge",
}
_OBJECT_TYPES = {"0-3": "deal", "0-115": "user"}  # generic object.* subscriptions


# HubSpot's ids are positive 64-bit numbers; times are epoch milliseconds of this century.
Id = Annotated[int, Field(ge=1, lt=2**63)]
Millis = Annotated[int, Field(ge=946_684_800_000, lt=4_102_444_800_000)]  # 2000 to 2100
Name = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class HubSpotEvent(BaseModel):
    """One event of a delivery; HubSpot adds fields over time, so unknown ones are ignored.

    Every value that reaches the store is bounded here (the inbox's columns hold exactly
    these sizes): an event outside them is skipped and counted, not stored.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    eventId: Id
    # HubSpot's docs spell it eventType in one example; deliveries say subscriptionType.
    subscriptionType: Name = Field(validation_alias=AliasChoices("subscriptionType", "eventType"))
    portalId: Id
    occurredAt: Millis
    subscriptionId: Id | None = None
    appId: Id | None = None
    objectId: Id | None = None
    objectTypeId: Name | None = None
    propertyName: str | None = Field(default=None, max_length=255)
    changeSource: str | None = Field(default=None, max_length=64)
    sourceId: str | None = Field(default=None, max_length=255)
    mergedObjectIds: list[Id] = Field(default=[], max_length=100)
    primaryObjectId: Id | None = None
    newObjectId: Id | None = None


@bp.post("/webhooks/hubspot")
def deliveries() -> tuple[Response, int]:
    return endpoint(SOURCE, {"application/json"}, _store, json_refusal)


def _store(state: Receiver, body: bytes) -> tuple[Response, int]:
    verify_hubspot(
        secret=_secret(),
        signature=request.headers.get("X-HubSpot-Signature-v3"),
        timestamp=request.headers.get("X-HubSpot-Request-Timestamp"),
        method=request.method,
        uri=_public_uri(),
        body=body,
        now_s=state.clock().timestamp(),
    )
    events = _parse(body)
    stored = _events(events)
    fresh = state.store_events(SOURCE, stored)
    return jsonify({"received": len(events), "stored": len(stored), "new": fresh}), 200


def _secret() -> str | None:
    secret = receiver().secrets.hubspot_client_secret
    return secret.get_secret_value() if secret is not None else None


def _public_uri() -> str:
    """The URI HubSpot called, as it sent it: its escapes (``caf%C3%A9``) are signed as sent,
    so the path and query come from the raw request line, never werkzeug's decoded form.
    Behind a proxy, ``webhooks.public_url`` says the scheme and host it called; a
    deployment of many accounts says so for all of them (webhooks/deployment.py)."""
    public = request.environ.get(PUBLIC_BASE) or receiver().config.webhooks.public_url
    base = public.rstrip("/") if public is not None else request.host_url.rstrip("/")
    return base + _raw_request_uri()


def _raw_request_uri() -> str:
    """The path and query of the request line as the client sent them."""
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")  # werkzeug, gunicorn
    if raw:
        text = str(raw)
        if "://" in text:  # an absolute-form request line (a proxy's)
            text = "/" + text.split("://", 1)[1].partition("/")[2]
        return text
    # Servers that keep no raw line: PATH_INFO is decoded (WSGI's latin-1 bytes), so
    # quote it back; QUERY_STRING is passed on undecoded.
    decoded = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    path = quote(decoded.encode("latin-1"), safe="/:@!$&'()*+,;=-._~")
    query = environ.get("QUERY_STRING", "")
    return path + (f"?{query}" if query else "")


def _parse(body: bytes) -> list[HubSpotEvent]:
    """The delivery's valid events; each invalid one beside them is skipped, counted and
    logged, so one bad value never costs the valid events (a delivery with no valid event
    at all is refused as malformed)."""
    try:
        payload: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise Rejected(400, "malformed", "the body is not JSON") from None
    if not isinstance(payload, list):
        raise Rejected(400, "malformed", "expected a JSON array of events")
    events: list[HubSpotEvent] = []
    problems: list[str] = []
    for index, item in enumerate(payload):
        try:
            events.append(HubSpotEvent.model_validate(item))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "event"
            problems.append(f"event [{index}] {where}: {first['msg']}")
    if problems and not events:  # nothing in it is an event: the delivery is malformed
        raise Rejected(400, "malformed", problems[0])
    for problem in problems:
        receiver().invalid(SOURCE, problem)
    return events


def _events(events: list[HubSpotEvent]) -> list[Event]:
    """What to store: one row per record an event names; echoes and noise are counted."""
    state = receiver()
    ours = state.our_hubspot_properties
    account = state.account()
    stored: list[Event] = []
    for event in events:
        if account is not None and str(event.portalId) != account:
            state.ignore(SOURCE, "other_account")
            continue
        if (
            event.changeSource == "INTEGRATION"
            and event.appId is not None
            and event.sourceId == str(event.appId)
            and event.propertyName in ours
        ):
            state.ignore(SOURCE, "echo")
            continue
        record = _record_of(event)
        if record is None:
            state.ignore(SOURCE, "unused_kind")
            continue
        key = f"{event.portalId}:{event.subscriptionId}:{event.eventId}:{event.occurredAt}"
        ids: list[int | None] = [event.objectId]
        if event.subscriptionType.endswith(".merge"):
            ids = [*event.mergedObjectIds, event.primaryObjectId, event.newObjectId]
        for object_id in dict.fromkeys(i for i in ids if i is not None):
            stored.append(
                Event(
                    SOURCE,
                    f"{key}:{object_id}",
                    record,
                    str(object_id),
                    event.subscriptionType,
                    occurred_ms=event.occurredAt,
                )
            )
    return stored


def _record_of(event: HubSpotEvent) -> str | None:
    if event.subscriptionType in _DEAL_TYPES:
        return "deal"
    if event.subscriptionType.startswith("object.") and event.objectTypeId is not None:
        return _OBJECT_TYPES.get(event.objectTypeId)
    return None
