"""``POST /webhooks/salesforce``: Salesforce outbound messages (SOAP).

A record-triggered Flow's "Send outbound message" action (or a workflow rule)
posts a ``notifications`` envelope of up to 100 notifications. It carries no
signature: what proves it is ours is the ``OrganizationId``, checked against
``SPM_SALESFORCE_ORG_ID`` (run the endpoint over TLS). The answer is
``<Ack>true</Ack>`` only once the notifications are stored; anything else
makes Salesforce send the envelope again, for up to 24 hours. The XML parser
refuses DTDs outright, so entity expansion ("billion laughs") and external
entities never run.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from flask import Blueprint, Response

from connector.store.inbox import Event
from webhooks.receiver import Receiver, endpoint, receiver
from webhooks.signing import Rejected

SOURCE = "salesforce"
bp = Blueprint("salesforce", __name__)

_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
_OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
# A Salesforce id: 15 or 18 letters and digits. Anything else (a 10,000-character
# notification id, ``006' OR Id != '``) is no record of the org's and is never stored.
_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{_SOAP}"><soapenv:Body>'
    f'<notificationsResponse xmlns="{_OUTBOUND}"><Ack>{{ack}}</Ack></notificationsResponse>'
    "</soapenv:Body></soapenv:Envelope>"
)
_FAULT = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{_SOAP}"><soapenv:Body><soapenv:Fault>'
    "<faultcode>soapenv:{code}</faultcode><faultstring>{text}</faultstring>"
    "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
)


@bp.post("/webhooks/salesforce")
def notifications() -> Response:
    return endpoint(SOURCE, {"text/xml", "application/xml", "application/soap+xml"}, _store, fault)


def _store(state: Receiver, body: bytes) -> Response:
    org_id, events = _notifications(_parse(body))
    _check_org(org_id)
    state.store_events(SOURCE, events)
    return _xml(_ACK.format(ack="true"), 200)


def fault(error: Rejected) -> Response:
    """A refusal as Salesforce reads one: a SOAP fault."""
    code = "Client" if error.status < 500 else "Server"
    return _xml(_FAULT.format(code=code, text=escape(error.detail)), error.status)


def _xml(text: str, status: int) -> Response:
    return Response(text, status=status, content_type="text/xml; charset=utf-8")


def _parse(body: bytes) -> Element:
    try:
        return fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise Rejected(400, "xml_refused", "DTDs and entities are not accepted") from None
    except (ParseError, ValueError):
        raise Rejected(400, "malformed", "the body is not well-formed XML") from None


def _check_org(org_id: str) -> None:
    expected = receiver().secrets.salesforce_org_id
    if not expected:
        raise Rejected(403, "not_configured", "SPM_SALESFORCE_ORG_ID is not set")
    # Salesforce sends the 15-character form; an admin may configure either.
    if org_id[:15] != expected.strip()[:15]:
        raise Rejected(403, "unknown_org", "the message is from another organization")


def organization_of(body: bytes) -> str:
    """The org id an envelope says it is from (15 characters), for routing it to its
    account: it proves nothing yet, the account's receiver checks it."""
    return _organization(_message(_parse(body)))[:15]


def _local(element: Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _child(element: Element, name: str) -> Element | None:
    return next((c for c in element if _local(c) == name), None)


def _text(element: Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _message(root: Element) -> Element:
    """The envelope's ``notifications`` element."""
    body = _child(root, "Body") if _local(root) == "Envelope" else None
    message = _child(body, "notifications") if body is not None else None
    if message is None:
        raise Rejected(400, "malformed", "expected a SOAP envelope holding notifications")
    return message


def _organization(message: Element) -> str:
    org_id = _text(_child(message, "OrganizationId"))
    if not org_id:
        raise Rejected(400, "malformed", "the message has no OrganizationId")
    if not _ID.fullmatch(org_id):
        raise Rejected(400, "malformed", "OrganizationId is not a Salesforce id")
    return org_id


def _notifications(root: Element) -> tuple[str, list[Event]]:
    message = _message(root)
    org_id = _organization(message)
    state = receiver()
    events: list[Event] = []
    for notification in message:
        if _local(notification) != "Notification":
            continue
        notification_id = _text(_child(notification, "Id"))
        sobject = _child(notification, "sObject")
        if not notification_id or sobject is None:
            raise Rejected(400, "malformed", "a Notification lacks its Id or sObject")
        if not _ID.fullmatch(notification_id):
            state.invalid(SOURCE, f"Notification Id {notification_id[:40]!r} is not an id")
            continue
        kind = sobject.get(_XSI_TYPE, "").rsplit(":", 1)[-1]
        values = {_local(c): _text(c) for c in sobject}
        target = _target(kind, values)
        if target is None:
            state.ignore(SOURCE, "unused_kind")
            continue
        record, record_id = target
        if not _ID.fullmatch(record_id):
            state.invalid(SOURCE, f"{kind} Id {record_id[:40]!r} is not a Salesforce id")
            continue
        actor = values.get("LastModifiedById") or None
        events.append(
            Event(
                SOURCE,
                f"{org_id[:15]}:{notification_id}",
                record,
                record_id,
                kind,
                actor=actor if actor is not None and _ID.fullmatch(actor) else None,
                occurred_ms=_ms(values.get("SystemModstamp") or values.get("LastModifiedDate")),
            )
        )
    return org_id, events


def _target(kind: str, values: dict[str, str]) -> tuple[str, str] | None:
    if kind == "Opportunity" and values.get("Id"):
        return "deal", values["Id"]
    if kind == "OpportunitySplit" and values.get("OpportunityId"):
        return "split", values["OpportunityId"]  # the deal whose splits changed
    if kind == "User" and values.get("Id"):
        return "user", values["Id"]
    return None


def _ms(text: str | None) -> int | None:
    """A stamp as epoch milliseconds, when it is one this century (else None: unknown)."""
    if not text or len(text) > 40:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not 2000 <= moment.year < 2100:
        return None
    return int(moment.timestamp() * 1000)
