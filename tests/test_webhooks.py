"""The webhook receiver on its own: verification, every rejection, duplicates, the inbox.

Signatures here are computed with hmac/hashlib directly from the vendors'
documented recipes, never with the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from connector.config import load_config
from connector.store.cursors import ACCOUNT_CURSOR
from connector.store.inbox import Event, Inbox
from connector.store.state import Store
from tests.crm_sync_helpers import write_config
from webhooks.app import create_app
from webhooks.signing import Rejected, verify_hubspot

HUBSPOT_SECRET = "hs-client-secret-0123456789"
EVENTS_SECRET = "generic-secret-abcdef"
ORG_ID = "00D5g000001AbCdEAK"
PORTAL_ID = 40123456
APP_ID = 777001
URL = "http://localhost/webhooks/hubspot"
ENV = {
    "SPM_HUBSPOT_CLIENT_SECRET": HUBSPOT_SECRET,
    "SPM_WEBHOOK_SECRET": EVENTS_SECRET,
    "SPM_SALESFORCE_ORG_ID": ORG_ID,
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'spm.db'}") as opened:
        yield opened


def _app(tmp_path: Path, store: Store, crm: str, **webhooks: Any) -> Flask:
    section = (
        {"type": "hubspot", "base_url": "http://127.0.0.1:9"}
        if crm == "hubspot"
        else {"type": "salesforce", "instance_url": "https://127.0.0.1:9"}
    )
    path = write_config(tmp_path, section, ["someone@acme.example"])
    if webhooks:
        text = (
            path.read_text()
            + "webhooks:\n"
            + "".join(f"  {key}: {value}\n" for key, value in webhooks.items())
        )
        path.write_text(text)
    app = create_app(load_config(path), environ=ENV, store=store)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def hubspot(tmp_path: Path, store: Store) -> FlaskClient:
    return _app(tmp_path, store, "hubspot").test_client()


@pytest.fixture
def salesforce(tmp_path: Path, store: Store) -> FlaskClient:
    return _app(tmp_path, store, "salesforce").test_client()


# -- independent signing ---------------------------------------------------------------------


def hubspot_headers(
    body: bytes,
    *,
    uri: str = URL,
    secret: str = HUBSPOT_SECRET,
    at_ms: int | None = None,
    offset_s: float = 0,
) -> dict[str, str]:
    timestamp = str(at_ms if at_ms is not None else int((time.time() + offset_s) * 1000))
    source = b"POST" + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), source, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


def events_headers(
    body: bytes, *, secret: str = EVENTS_SECRET, at_s: int | None = None
) -> dict[str, str]:
    timestamp = at_s if at_s is not None else int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-SPM-Signature": f"t={timestamp},v1={digest}"}


def hubspot_event(event_id: int, object_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 2101002,
        "portalId": PORTAL_ID,
        "appId": APP_ID,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "deal.propertyChange",
        "attemptNumber": 0,
        "objectId": object_id,
        "propertyName": "dealstage",
        "propertyValue": "closedwon",
        "changeSource": "CRM_UI",
        **extra,
    }


def envelope(
    org_id: str = ORG_ID, notifications: list[tuple[str, str, str]] | None = None
) -> bytes:
    items = notifications or [("04l5g00000AbCdEAAA", "Opportunity", "0065g00000XyZ12AAA")]
    parts = "".join(
        f"<Notification><Id>{nid}</Id>"
        f'<sObject xsi:type="sf:{kind}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        + (
            f"<sf:OpportunityId>{rid}</sf:OpportunityId>"
            if kind == "OpportunitySplit"
            else f"<sf:Id>{rid}</sf:Id>"
        )
        + "<sf:LastModifiedById>005000000000001AAA</sf:LastModifiedById>"
        "</sObject></Notification>"
        for nid, kind, rid in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org_id[:15]}</OrganizationId><ActionId>04k5g000000AbCd</ActionId>"
        f"{parts}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def post_hubspot(client: FlaskClient, events: list[dict[str, Any]], **options: Any) -> Any:
    body = json.dumps(events).encode()
    return client.post("/webhooks/hubspot", data=body, headers=hubspot_headers(body, **options))


def waiting(store: Store) -> int:
    return Inbox(store).depth().queued


def rejections(client: FlaskClient) -> str:
    text: str = client.get("/metrics").get_data(as_text=True)
    return text


# -- HubSpot -----------------------------------------------------------------------------------


def test_hubspot_batch_is_stored_then_acknowledged_and_retries_are_recognised(
    hubspot: FlaskClient, store: Store
) -> None:
    events = [hubspot_event(1, 9001), hubspot_event(2, 9002)]
    first = post_hubspot(hubspot, events)
    assert first.status_code == 200 and first.json == {"received": 2, "stored": 2, "new": 2}
    assert waiting(store) == 2
    # HubSpot retries the same batch (attemptNumber grows): stored once.
    again = post_hubspot(hubspot, [{**e, "attemptNumber": 1} for e in events])
    assert again.status_code == 200 and again.json["new"] == 0
    assert waiting(store) == 2
    metrics = rejections(hubspot)
    assert 'spm_webhook_events_received_total{source="hubspot"} 2.0' in metrics
    assert 'spm_webhook_events_duplicate_total{source="hubspot"} 2.0' in metrics


def test_hubspot_echoes_of_our_own_writes_are_dropped(hubspot: FlaskClient, store: Store) -> None:
    ours = hubspot_event(
        3, 9003, propertyName="spm_commission", changeSource="INTEGRATION", sourceId=str(APP_ID)
    )
    # The same property changed by a person, and another app's write, are real changes.
    by_person = hubspot_event(4, 9004, propertyName="spm_commission")
    other_app = hubspot_event(
        5, 9005, propertyName="spm_commission", changeSource="INTEGRATION", sourceId="123"
    )
    reply = post_hubspot(hubspot, [ours, by_person, other_app])
    assert reply.status_code == 200 and reply.json["stored"] == 2
    assert 'spm_webhook_events_ignored_total{reason="echo",source="hubspot"} 1.0' in rejections(
        hubspot
    )


def test_hubspot_merge_names_every_deal_and_other_kinds_are_ignored(
    hubspot: FlaskClient, store: Store
) -> None:
    merge = hubspot_event(
        6,
        9010,
        subscriptionType="deal.merge",
        mergedObjectIds=[9010, 9011],
        primaryObjectId=9010,
        newObjectId=9012,
    )
    contact = hubspot_event(7, 55, subscriptionType="contact.creation")
    users = hubspot_event(8, 42, subscriptionType="object.propertyChange", objectTypeId="0-115")
    reply = post_hubspot(hubspot, [merge, contact, users])
    assert reply.json["stored"] == 4  # three deals and one user
    _, claimed = Inbox(store).claim(datetime.now(UTC))
    assert sorted((c.event.record, c.event.record_id) for c in claimed) == [
        ("deal", "9010"),
        ("deal", "9011"),
        ("deal", "9012"),
        ("user", "42"),
    ]


def test_hubspot_events_for_another_portal_are_not_stored(
    hubspot: FlaskClient, store: Store
) -> None:
    store.cursors.set(ACCOUNT_CURSOR, str(PORTAL_ID))
    reply = post_hubspot(hubspot, [hubspot_event(9, 1), hubspot_event(10, 2, portalId=999)])
    assert reply.json["stored"] == 1


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"secret": "wrong-secret"}, 401, "bad_signature"),
        ({"uri": "http://localhost/webhooks/other"}, 401, "bad_signature"),
        ({"offset_s": -301}, 401, "stale_timestamp"),
        ({"offset_s": 301}, 401, "stale_timestamp"),
    ],
)
def test_hubspot_bad_signatures_are_refused_and_nothing_is_stored(
    hubspot: FlaskClient, store: Store, change: dict[str, Any], status: int, reason: str
) -> None:
    reply = post_hubspot(hubspot, [hubspot_event(11, 1)], **change)
    assert reply.status_code == status and reply.json["error"] == reason
    assert waiting(store) == 0
    assert f'spm_webhook_requests_rejected_total{{reason="{reason}",source="hubspot"}} 1.0' in (
        rejections(hubspot)
    )


def test_hubspot_missing_headers_wrong_type_bad_json_and_a_changed_body(
    hubspot: FlaskClient, store: Store
) -> None:
    body = json.dumps([hubspot_event(12, 1)]).encode()
    headers = hubspot_headers(body)
    missing = hubspot.post("/webhooks/hubspot", data=body, content_type="application/json")
    assert missing.status_code == 401 and missing.json["error"] == "missing_signature"
    tampered = hubspot.post("/webhooks/hubspot", data=body.replace(b"9", b"8"), headers=headers)
    assert tampered.status_code == 401
    text = {**headers, "Content-Type": "text/plain"}
    assert hubspot.post("/webhooks/hubspot", data=body, headers=text).status_code == 415
    for bad in (b"{not json", b'{"an": "object"}', b'[{"eventId": "x"}]'):
        reply = hubspot.post("/webhooks/hubspot", data=bad, headers=hubspot_headers(bad))
        assert reply.status_code == 400, bad
        assert reply.json["error"] == "malformed"
    assert waiting(store) == 0


def test_hubspot_signature_uses_the_public_url_behind_a_proxy(tmp_path: Path, store: Store) -> None:
    client = _app(tmp_path, store, "hubspot", public_url="https://spm.example.com").test_client()
    public = "https://spm.example.com/webhooks/hubspot?portal=1"
    body = json.dumps([hubspot_event(13, 1)]).encode()
    ok = client.post(
        "/webhooks/hubspot?portal=1", data=body, headers=hubspot_headers(body, uri=public)
    )
    assert ok.status_code == 200
    internal = client.post(
        "/webhooks/hubspot?portal=1",
        data=body,
        headers=hubspot_headers(body, uri="http://localhost/webhooks/hubspot?portal=1"),
    )
    assert internal.status_code == 401


def test_hubspot_signature_over_a_utf8_escaped_query_verifies(
    hubspot: FlaskClient, store: Store
) -> None:
    """HubSpot signs the URI as it sent it: ``caf%C3%A9`` stays escaped (not ``café``)."""
    body = json.dumps([hubspot_event(21, 4021)]).encode()
    sent = "/webhooks/hubspot?team=caf%C3%A9&x=a%2Fb"
    # HubSpot decodes only its listed escapes (%2F among them) before signing.
    signed = "http://localhost/webhooks/hubspot?team=caf%C3%A9&x=a/b"
    reply = hubspot.post(sent, data=body, headers=hubspot_headers(body, uri=signed))
    assert reply.status_code == 200, reply.json
    decoded = hubspot.post(
        sent,
        data=body,
        headers=hubspot_headers(body, uri="http://localhost/webhooks/hubspot?team=café&x=a/b"),
    )
    assert decoded.status_code == 401

    # Over a real socket, as HubSpot's request line reaches werkzeug's server.
    server = make_server("127.0.0.1", 0, hubspot.application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        body = json.dumps([hubspot_event(22, 4022)]).encode()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        uri = f"http://127.0.0.1:{server.port}/webhooks/hubspot?team=caf%C3%A9"
        connection.request("POST", "/webhooks/hubspot?team=caf%C3%A9", body=body,
                           headers=hubspot_headers(body, uri=uri))  # fmt: skip
        assert connection.getresponse().status == 200
    finally:
        server.shutdown()
        thread.join()
    assert waiting(store) == 2


def test_hubspot_event_type_is_read_as_the_docs_example_spells_it(
    hubspot: FlaskClient, store: Store
) -> None:
    event = hubspot_event(31, 4031)
    event["eventType"] = event.pop("subscriptionType")
    reply = post_hubspot(hubspot, [event])
    assert reply.status_code == 200 and reply.json["stored"] == 1
    missing = hubspot_event(32, 4032)
    del missing["subscriptionType"]
    assert post_hubspot(hubspot, [missing]).status_code == 400


def test_hubspot_published_signature_vector_verifies_through_our_verifier() -> None:
    """The v3 test vector of HubSpot's own client library (tests/spec/utils/test_signature.py)."""
    secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
    body = b"{'example_field':'example_value'}"
    vector = {
        "secret": secret,
        "signature": "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=",
        "timestamp": "15000000",
        "method": "POST",
        "uri": "https://www.example.com/webhook_uri",
        "body": body,
    }
    verify_hubspot(**vector, now_s=15_000.0)  # the vector's own moment: inside the window
    with pytest.raises(Rejected) as wrong:
        verify_hubspot(**{**vector, "body": body + b" "}, now_s=15_000.0)
    assert wrong.value.reason == "bad_signature"
    with pytest.raises(Rejected) as stale:
        verify_hubspot(**vector, now_s=15_000.0 + 301)
    assert stale.value.reason == "stale_timestamp"


@pytest.mark.parametrize(
    ("crm", "missing"),
    [("hubspot", "SPM_HUBSPOT_CLIENT_SECRET"), ("salesforce", "SPM_SALESFORCE_ORG_ID")],
)
def test_healthz_is_not_ready_without_the_crm_secret(
    tmp_path: Path, store: Store, crm: str, missing: str
) -> None:
    section = (
        {"type": "hubspot", "base_url": "http://127.0.0.1:9"}
        if crm == "hubspot"
        else {"type": "salesforce", "instance_url": "https://127.0.0.1:9"}
    )
    path = write_config(tmp_path, section, ["x@y.z"])
    environ = {k: v for k, v in ENV.items() if k != missing}
    health = (
        create_app(load_config(path), environ=environ, store=store).test_client().get("/healthz")
    )
    assert health.status_code == 503
    assert health.json["status"] == "not_ready" and health.json["missing"] == [missing]
    ready = create_app(load_config(path), environ=ENV, store=store).test_client().get("/healthz")
    assert ready.status_code == 200 and ready.json["status"] == "ok"


def test_bodies_over_the_limit_are_refused_before_they_are_read(
    tmp_path: Path, store: Store
) -> None:
    client = _app(tmp_path, store, "hubspot", max_body_bytes=2048).test_client()
    body = json.dumps([hubspot_event(i, i) for i in range(100)]).encode()
    assert len(body) > 2048
    reply = client.post("/webhooks/hubspot", data=body, headers=hubspot_headers(body))
    assert reply.status_code == 413

    # Chunked over a real socket, without a Content-Length: stopped while reading.
    server = make_server("127.0.0.1", 0, client.application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        uri = f"http://127.0.0.1:{server.port}/webhooks/hubspot"
        headers = hubspot_headers(body, uri=uri)
        connection.request(
            "POST", "/webhooks/hubspot", body=iter([body[:1000], body[1000:]]),
            headers=headers, encode_chunked=True,
        )  # fmt: skip
        assert connection.getresponse().status == 413
    finally:
        server.shutdown()
        thread.join()
    assert waiting(store) == 0


def test_no_client_secret_means_every_delivery_is_refused(tmp_path: Path, store: Store) -> None:
    path = write_config(tmp_path, {"type": "hubspot", "base_url": "http://127.0.0.1:9"}, ["x@y.z"])
    client = create_app(load_config(path), environ={}, store=store).test_client()
    reply = post_hubspot(client, [hubspot_event(1, 1)])
    assert reply.status_code == 401 and reply.json["error"] == "not_configured"


# -- Salesforce ----------------------------------------------------------------------------


def test_outbound_message_is_stored_then_acked_and_retries_are_recognised(
    salesforce: FlaskClient, store: Store
) -> None:
    body = envelope(
        notifications=[
            ("04l5g00000AbCdEAAA", "Opportunity", "0065g00000XyZ12AAA"),
            ("04l5g00000AbCdFAAA", "OpportunitySplit", "0065g00000XyZ12AAA"),
            ("04l5g00000AbCdGAAA", "Account", "0015g00000XyZ12AAA"),
        ]
    )
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
    reply = salesforce.post("/webhooks/salesforce", data=body, headers=headers)
    assert reply.status_code == 200
    assert b"<Ack>true</Ack>" in reply.data and reply.mimetype == "text/xml"
    assert waiting(store) == 2
    again = salesforce.post("/webhooks/salesforce", data=body, headers=headers)
    assert b"<Ack>true</Ack>" in again.data and waiting(store) == 2
    _, claimed = Inbox(store).claim(datetime.now(UTC))
    assert {(c.event.record, c.event.actor) for c in claimed} == {
        ("deal", "005000000000001AAA"),
        ("split", "005000000000001AAA"),
    }


def test_outbound_message_from_another_org_is_refused_and_nothing_is_stored(
    salesforce: FlaskClient, store: Store
) -> None:
    reply = salesforce.post(
        "/webhooks/salesforce", data=envelope("00D000000000999AAA"), content_type="text/xml"
    )
    assert reply.status_code == 403 and b"Ack" not in reply.data and b"Fault" in reply.data
    assert waiting(store) == 0


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>&lol3;</OrganizationId>
</notifications></soapenv:Body></soapenv:Envelope>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>&xxe;</OrganizationId>
</notifications></soapenv:Body></soapenv:Envelope>"""


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (BOMB, "text/xml", 400, "xml_refused"),
        (EXTERNAL, "text/xml", 400, "xml_refused"),
        (b"<notifications><unclosed>", "text/xml", 400, "malformed"),
        (b"<a>not soap</a>", "text/xml", 400, "malformed"),
        (envelope(), "application/json", 415, "content_type"),
    ],
)
def test_outbound_message_bad_xml_is_refused(
    salesforce: FlaskClient, store: Store, body: bytes, content_type: str, status: int, reason: str
) -> None:
    reply = salesforce.post("/webhooks/salesforce", data=body, content_type=content_type)
    assert reply.status_code == status
    assert b"root:" not in reply.data and b"Traceback" not in reply.data
    assert f'reason="{reason}",source="salesforce"' in rejections(salesforce)
    assert waiting(store) == 0


# -- the generic endpoint -------------------------------------------------------------------


def test_generic_events_signed_stripe_style(salesforce: FlaskClient, store: Store) -> None:
    body = json.dumps(
        [
            {"crm": "salesforce", "object": "Opportunity", "id": "0065g00000XyZ12"},
            {"crm": "salesforce", "object": "user", "id": "0055g00000XyZ12AAA", "event_id": "e1"},
        ]
    ).encode()
    reply = salesforce.post("/webhooks/events", data=body, headers=events_headers(body))
    assert reply.status_code == 200 and reply.json == {"stored": 2, "new": 2}
    # The very same signed request again is a retry; the same body signed later is news.
    same = salesforce.post("/webhooks/events", data=body, headers=events_headers(body))
    assert same.json["new"] in (0, 1)  # 0 within the same second
    later = salesforce.post(
        "/webhooks/events", data=body, headers=events_headers(body, at_s=int(time.time()) + 2)
    )
    assert later.json["new"] == 1  # only the event without its own id
    rotating = events_headers(body)
    stamp, good = rotating["X-SPM-Signature"].split(",")
    rotating["X-SPM-Signature"] = f"{stamp},v1={'0' * 64},{good}"
    assert salesforce.post("/webhooks/events", data=body, headers=rotating).status_code == 200


DEAL = {"crm": "salesforce", "object": "deal", "id": "0065g00000XyZ12AAA"}


@pytest.mark.parametrize(
    ("payload", "headers", "status", "reason"),
    [
        (DEAL, {"secret": "nope"}, 401, "bad_signature"),
        (DEAL, {"at_s": int(time.time()) - 400}, 401, "stale_timestamp"),
        ({"crm": "hubspot", "object": "deal", "id": "1"}, {}, 400, "wrong_crm"),
        ({"crm": "salesforce", "object": "invoice", "id": "1"}, {}, 400, "malformed"),
        ({"crm": "salesforce", "object": "deal", "id": "1", "extra": 1}, {}, 400, "malformed"),
        ({"crm": "salesforce", "object": "deal", "id": "'; drop"}, {}, 400, "malformed"),
        ({"crm": "salesforce", "object": "deal", "id": "006-not-an-id"}, {}, 400, "malformed"),
    ],
)  # fmt: skip
def test_generic_events_rejections(
    salesforce: FlaskClient,
    store: Store,
    payload: dict[str, Any],
    headers: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    body = json.dumps(payload).encode()
    reply = salesforce.post("/webhooks/events", data=body, headers=events_headers(body, **headers))
    assert reply.status_code == status and reply.json["error"] == reason
    assert waiting(store) == 0


def test_generic_events_without_a_signature_header(salesforce: FlaskClient) -> None:
    reply = salesforce.post("/webhooks/events", data=b"{}", content_type="application/json")
    assert reply.status_code == 401 and reply.json["error"] == "missing_signature"


# -- operations --------------------------------------------------------------------------------


def test_healthz_shows_depth_and_parked_events(salesforce: FlaskClient, store: Store) -> None:
    inbox = Inbox(store, max_attempts=1)
    now = datetime.now(UTC)
    inbox.add(
        [
            Event("events", "a", "deal", "006A", "test"),
            Event("events", "b", "deal", "006B", "test"),
        ],
        now,
    )
    token, claimed = inbox.claim(now)
    inbox.failed(token, [claimed[0].id], "CRM said no", now, timedelta(seconds=1))
    inbox.done(token, [claimed[1].id], now)
    health = salesforce.get("/healthz")
    assert health.status_code == 200
    body = health.json
    assert body["status"] == "degraded" and body["store"] == "ok"
    assert body["inbox"]["parked"] == 1 and body["inbox"]["waiting"] == 0
    assert body["parked"][0]["record_id"] == "006A" and body["parked"][0]["error"] == "CRM said no"
    metrics = salesforce.get("/metrics")
    assert metrics.mimetype == "text/plain" and b"spm_inbox_parked 1.0" in metrics.data


def test_logs_never_hold_secrets_or_signatures(
    hubspot: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="spm")
    body = json.dumps([hubspot_event(20, 1)]).encode()
    headers = hubspot_headers(body)
    hubspot.post("/webhooks/hubspot", data=body, headers=headers)
    hubspot.post("/webhooks/hubspot", data=body, headers=hubspot_headers(body, secret="bad"))
    logged = caplog.text
    assert "stored" in logged and "bad_signature" in logged
    for secret in (HUBSPOT_SECRET, headers["X-HubSpot-Signature-v3"], EVENTS_SECRET):
        assert secret not in logged


# -- hostile values: one bad event never sinks a delivery ---------------------------------------


def test_hubspot_invalid_events_are_skipped_and_the_valid_ones_stored(
    tmp_path: Path, any_store: Store
) -> None:
    client = _app(tmp_path, any_store, "hubspot").test_client()
    biggest = 2**63 - 1
    events = [
        hubspot_event(1, 9001),
        hubspot_event(2, 10**70),  # an objectId no column holds
        hubspot_event(10**400, 9003),  # an eventId of 401 digits
        hubspot_event(4, 9004, occurredAt=10**30),  # a time past any plausible one
        hubspot_event(5, -5),  # no HubSpot id is negative
        hubspot_event(6, 9006, subscriptionType="deal." + "x" * 500),
        # The largest values the model admits are stored on every database.
        hubspot_event(biggest, biggest, subscriptionId=biggest, portalId=PORTAL_ID),
    ]
    reply = post_hubspot(client, events)
    assert reply.status_code == 200, reply.json
    assert reply.json["received"] == 2 and reply.json["new"] == 2
    assert waiting(any_store) == 2
    stored = {c.event.record_id for c in Inbox(any_store).claim(datetime.now(UTC))[1]}
    assert stored == {"9001", str(biggest)}
    assert 'spm_webhook_events_ignored_total{reason="invalid",source="hubspot"} 5.0' in (
        rejections(client)
    )


def test_salesforce_invalid_notifications_are_skipped_and_the_valid_ones_stored(
    tmp_path: Path, any_store: Store
) -> None:
    client = _app(tmp_path, any_store, "salesforce").test_client()
    body = envelope(
        notifications=[
            ("04l5g00000AbCdEAAA", "Opportunity", "0065g00000XyZ12AAA"),
            ("x" * 10_000, "Opportunity", "0065g00000XyZ13AAA"),
            ("04l5g00000AbCdFAAA", "Opportunity", "006' OR Id != '"),
            ("04l5g00000AbCdGAAA", "Opportunity", "0065g00000XyZ14AAA"),
        ]
    )
    reply = client.post("/webhooks/salesforce", data=body, content_type="text/xml")
    assert reply.status_code == 200 and b"<Ack>true</Ack>" in reply.data
    stored = {c.event.record_id for c in Inbox(any_store).claim(datetime.now(UTC))[1]}
    assert stored == {"0065g00000XyZ12AAA", "0065g00000XyZ14AAA"}
    assert 'reason="invalid",source="salesforce"} 2.0' in rejections(client)
