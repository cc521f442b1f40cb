"""The HubSpot emulator, driven by the real hubspot-api-client, and checked against HubSpot's OpenAPI."""
# ruff: noqa: E501  (the conformance table reads best one call per line)

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
)
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.utils.signature import Signature
from openapi_schema_validator import OAS30Validator
from werkzeug.wrappers import Request, Response

from crm_sandbox.common import Faults, serving
from crm_sandbox.hubspot import HubSpotSandbox
from tests.fixtures.hubspot_sandbox import MakeHubSpotSandbox

SPECS = Path(__file__).resolve().parents[1] / "specs" / "hubspot"


def client(sandbox: HubSpotSandbox, token: str | None = None) -> HubSpot:
    return HubSpot(access_token=token or sandbox.token, host=sandbox.url)


def modified_filter(since_ms: int) -> dict[str, Any]:
    return {
        "filters": [
            {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(since_ms)}
        ]
    }


# -- reading --------------------------------------------------------------------------------------


def test_owners_are_paged(hubspot_sandbox: HubSpotSandbox) -> None:
    api = client(hubspot_sandbox).crm.owners.owners_api
    first = api.get_page(limit=5)
    assert len(first.results) == 5 and first.paging.next.after
    rest = api.get_page(limit=5, after=first.paging.next.after)
    emails = [o.email for o in first.results + rest.results]
    live = [o for o in hubspot_sandbox.owners() if not o["archived"]]
    assert emails == [o["email"] for o in live] and rest.paging is None
    assert all(o.user_id for o in first.results)


def test_deal_listing_pages_through_everything(hubspot_sandbox: HubSpotSandbox) -> None:
    api = client(hubspot_sandbox).crm.deals.basic_api
    seen: list[str] = []
    after = None
    while True:
        page = api.get_page(limit=50, after=after, properties=["amount", "dealstage"])
        seen += [d.id for d in page.results]
        assert all(set(d.properties) >= {"amount", "dealstage"} for d in page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen == [d["id"] for d in hubspot_sandbox.deals()]
    assert hubspot_sandbox.calls.counts()["deal_list_page"] == 3


def test_search_filters_sorts_and_the_cap(make_hubspot_sandbox: MakeHubSpotSandbox) -> None:
    sandbox = make_hubspot_sandbox(deals=10_300)
    api = client(sandbox).crm.deals.search_api
    # The larger half of the won deals: more than one page of 200.
    won = sorted(Decimal(d["amount"]) for d in sandbox.deals() if d["dealstage"] == "closedwon")
    floor = won[len(won) // 2]
    request = PublicObjectSearchRequest(
        filter_groups=[
            {
                "filters": [
                    {"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"},
                    {"propertyName": "amount", "operator": "GTE", "value": str(floor)},
                ]
            }
        ],
        sorts=[{"propertyName": "amount", "direction": "DESCENDING"}],
        properties=["amount", "dealstage"],
        limit=200,
    )
    page = api.do_search(public_object_search_request=request)
    expected = [
        d
        for d in sandbox.deals()
        if d["dealstage"] == "closedwon" and Decimal(d["amount"]) >= floor
    ]
    assert page.total == len(expected) > 200
    amounts = [Decimal(d.properties["amount"]) for d in page.results]
    assert amounts == sorted(amounts, reverse=True) and len(amounts) == 200

    everything = PublicObjectSearchRequest(
        filter_groups=[modified_filter(0)],
        sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        limit=200,
        after="9800",
    )
    last = api.do_search(public_object_search_request=everything)
    assert last.total == 10_300 and len(last.results) == 200 and last.paging is None
    with pytest.raises(DealsApiException) as raised:
        everything.after = "10000"
        api.do_search(public_object_search_request=everything)
    assert raised.value.status == 400


def test_batch_read_and_207(hubspot_sandbox: HubSpotSandbox) -> None:
    api = client(hubspot_sandbox).crm.deals.batch_api
    ids = [d["id"] for d in hubspot_sandbox.deals()[:3]]
    answer = api.read(
        batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in [*ids, "1"]],
            properties=["amount"],
            properties_with_history=[],
        )
    )
    assert sorted(r.id for r in answer.results) == sorted(ids)
    assert answer.num_errors == 1 and answer.errors[0].context["ids"] == ["1"]


def test_batch_update_limits_partial_errors_and_unknown_properties(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    api = client(hubspot_sandbox).crm.deals.batch_api
    first, second = (d["id"] for d in hubspot_sandbox.deals()[:2])

    def update(inputs: list[SimplePublicObjectBatchInput]) -> Any:
        return api.update(
            batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
                inputs=inputs
            )
        )

    ok = update([SimplePublicObjectBatchInput(id=first, properties={"amount": "1234.56"})])
    assert ok.status == "COMPLETE" and ok.results[0].properties["amount"] == "1234.56"
    partial = update(
        [
            SimplePublicObjectBatchInput(id=second, properties={"amount": "10"}),
            SimplePublicObjectBatchInput(id="999", properties={"amount": "10"}),
        ]
    )
    assert partial.num_errors == 1 and partial.errors[0].category == "OBJECT_NOT_FOUND"
    with pytest.raises(DealsApiException) as unknown:
        update([SimplePublicObjectBatchInput(id=first, properties={"spm_commission": "1"})])
    assert unknown.value.status == 400
    assert "PROPERTY_DOESNT_EXIST" in unknown.value.body
    with pytest.raises(DealsApiException) as too_many:
        update([SimplePublicObjectBatchInput(id=first, properties={"amount": "1"})] * 101)
    assert too_many.value.status == 400

    hubspot_sandbox.faults.update({"locked_ids": [first], "lock_failures": 1})
    locked = update([SimplePublicObjectBatchInput(id=first, properties={"amount": "2"})])
    assert locked.num_errors == 1 and locked.errors[0].context["ids"] == [first]
    again = update([SimplePublicObjectBatchInput(id=first, properties={"amount": "2"})])
    assert again.status == "COMPLETE"


def test_users_object_pipelines_and_splits(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot = client(hubspot_sandbox)
    users = hubspot.crm.objects.basic_api.get_page(
        "users", limit=100, properties=["hs_email", "hs_internal_user_id"]
    )
    owners = {o["userId"]: o["email"] for o in hubspot_sandbox.owners()}
    assert {
        int(u.properties["hs_internal_user_id"]): u.properties["hs_email"] for u in users.results
    } == owners
    stages = hubspot.crm.pipelines.pipelines_api.get_all("deals").results[0].stages
    metadata = {s.id: s.metadata for s in stages}
    assert metadata["closedwon"] == {"isClosed": "true", "probability": "1.0"}
    assert metadata["closedlost"] == {"isClosed": "true", "probability": "0.0"}
    split_deals = list(hubspot_sandbox.portal.splits)
    assert split_deals
    body = {"inputs": [{"id": split_deals[0]}]}
    answer = requests.post(
        f"{hubspot_sandbox.url}/crm/objects/v3/deals/splits/batch/read",
        json=body,
        headers={"Authorization": f"Bearer {hubspot_sandbox.token}"},
        timeout=5,
    ).json()
    shares = [
        Decimal(s["properties"]["hs_deal_split_percentage"]) for s in answer["results"][0]["splits"]
    ]
    assert sum(shares) == 1


def test_properties_groups_and_conflicts(make_hubspot_sandbox: MakeHubSpotSandbox) -> None:
    sandbox = make_hubspot_sandbox(users_custom_properties=False)
    properties = client(sandbox).crm.properties
    properties.groups_api.create(
        "deals", property_group_create={"name": "spm_compensation", "label": "Compensation"}
    )
    spec = {
        "name": "spm_commission",
        "label": "Commission",
        "type": "number",
        "fieldType": "number",
        "groupName": "spm_compensation",
        "numberDisplayHint": "currency",
    }
    created = properties.core_api.create("deals", property_create=spec)
    assert created.name == "spm_commission"
    with pytest.raises(Exception) as duplicate:
        properties.core_api.create("deals", property_create=spec)
    assert getattr(duplicate.value, "status", None) == 409
    with pytest.raises(Exception) as refused:
        properties.core_api.create(
            "users", property_create={**spec, "groupName": "userinformation"}
        )
    assert getattr(refused.value, "status", None) == 400
    assert "not supported for object type users" in str(getattr(refused.value, "body", ""))
    # Once it exists, the property can be written.
    deal = sandbox.deals()[0]["id"]
    client(sandbox).crm.deals.basic_api.update(
        deal, simple_public_object_input={"properties": {"spm_commission": "12.50"}}
    )
    assert sandbox.portal.deal(deal).properties["spm_commission"] == "12.50"


# -- faults ------------------------------------------------------------------------------------------


def test_wrong_token(hubspot_sandbox: HubSpotSandbox) -> None:
    with pytest.raises(Exception) as raised:
        client(hubspot_sandbox, token="nope").crm.deals.basic_api.get_page()
    assert getattr(raised.value, "status", None) == 401


def test_rate_limit_429_with_headers(make_hubspot_sandbox: MakeHubSpotSandbox) -> None:
    sandbox = make_hubspot_sandbox(faults=Faults(rate_limit=3, rate_window_s=1.0))
    api = client(sandbox).crm.deals.batch_api
    request = BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=sandbox.deals()[0]["id"])],
        properties=["amount"],
        properties_with_history=[],
    )
    for _ in range(3):
        api.read(batch_read_input_simple_public_object_id=request)
    # A POST, so urllib3's own retry (GETs with Retry-After only) does not hide the 429.
    with pytest.raises(DealsApiException) as raised:
        api.read(batch_read_input_simple_public_object_id=request)
    error = raised.value
    assert error.status == 429
    assert json.loads(error.body)["policyName"] == "TEN_SECONDLY_ROLLING"
    assert json.loads(error.body)["errorType"] == "RATE_LIMIT"
    assert int(error.headers["Retry-After"]) >= 1
    assert error.headers["X-HubSpot-RateLimit-Max"] == "3"
    assert error.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    time.sleep(1.05)
    api.read(batch_read_input_simple_public_object_id=request)  # the window rolled on


def test_search_has_its_own_per_second_limit(make_hubspot_sandbox: MakeHubSpotSandbox) -> None:
    sandbox = make_hubspot_sandbox(faults=Faults(search_rate_limit=2))
    api = client(sandbox).crm.deals.search_api
    request = PublicObjectSearchRequest(filter_groups=[modified_filter(0)], limit=1)
    api.do_search(public_object_search_request=request)
    api.do_search(public_object_search_request=request)
    with pytest.raises(DealsApiException) as raised:
        api.do_search(public_object_search_request=request)
    assert json.loads(raised.value.body)["policyName"] == "SECONDLY"
    client(sandbox).crm.deals.basic_api.get_page(limit=1)  # other calls are not held back


def test_unavailable(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.faults.update({"error_rate": 1.0})
    with pytest.raises(DealsApiException) as raised:
        client(hubspot_sandbox).crm.deals.basic_api.get_page()
    assert raised.value.status == 503


def test_admin_endpoint(hubspot_sandbox: HubSpotSandbox) -> None:
    admin = f"{hubspot_sandbox.url}/_sandbox"
    http = requests.Session()
    http.headers["X-Sandbox-Token"] = hubspot_sandbox.admin_token
    client(hubspot_sandbox).crm.deals.basic_api.get_page()
    assert http.get(f"{admin}/calls", timeout=5).json()["counts"] == {"deal_list_page": 1}
    http.post(f"{admin}/calls/reset", json={}, timeout=5)
    assert http.get(f"{admin}/calls", timeout=5).json()["total"] == 0
    assert http.post(f"{admin}/faults", json={"latency_ms": 1}, timeout=5).json()["latency_ms"] == 1
    deal = next(d for d in hubspot_sandbox.deals() if d["dealstage"] == "appointmentscheduled")
    http.post(f"{admin}/mutate", json={"action": "close_deal", "id": deal["id"]}, timeout=5)
    assert hubspot_sandbox.portal.deal(deal["id"]).properties["hs_is_closed_won"] == "true"
    refused = http.post(f"{admin}/mutate", json={"action": "explode"}, timeout=5)
    assert refused.status_code == 400 and "unknown action" in refused.json()["error"]


def test_admin_endpoint_refuses_what_a_web_page_could_send(hubspot_sandbox: HubSpotSandbox) -> None:
    admin = f"{hubspot_sandbox.url}/_sandbox"
    token = {"X-Sandbox-Token": hubspot_sandbox.admin_token}
    body = b'{"error_rate": 1}'
    cases = [
        ({}, "application/json", 401),  # no token
        ({"X-Sandbox-Token": "guess"}, "application/json", 401),
        (token, "text/plain", 415),  # what a cross-site form can send without a preflight
        ({**token, "Host": "evil.example"}, "application/json", 403),  # DNS rebinding
        ({**token, "Origin": "https://evil.example"}, "application/json", 403),
    ]
    for headers, content_type, status in cases:
        answer = requests.post(
            f"{admin}/faults",
            data=body,
            headers={**headers, "Content-Type": content_type},
            timeout=5,
        )
        assert answer.status_code == status, (headers, content_type, answer.text)
    assert hubspot_sandbox.faults.error_rate == 0
    for bad in ({"latency_ms": "abc"}, {"error_rate": 2}, {"rate_limit": -1}, {"locked_ids": 5}):
        answer = requests.post(f"{admin}/faults", json=bad, headers=token, timeout=5)
        assert answer.status_code == 400, bad
    assert hubspot_sandbox.faults.latency_ms == 0


# -- webhooks -------------------------------------------------------------------------------------------


class Receiver:
    """A webhook endpoint that fails its first ``refuse`` deliveries, then accepts."""

    def __init__(self, refuse: int, status: int = 500) -> None:
        self.refuse = refuse
        self.status = status
        self.received: list[tuple[dict[str, str], bytes, str]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.received.append((dict(request.headers), request.get_data(), request.url))
            refuse = len(self.received) <= self.refuse
        return Response(status=self.status if refuse else 204)(environ, start_response)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    target = Receiver(refuse=1)
    with serving(target) as server:
        yield target, f"{server.url}/hooks/hubspot?portal=1"


def test_webhooks_are_signed_and_retried(
    make_hubspot_sandbox: MakeHubSpotSandbox, receiver: tuple[Receiver, str]
) -> None:
    target, url = receiver
    sandbox = make_hubspot_sandbox(webhook_url=url)
    deal = next(d for d in sandbox.deals() if d["dealstage"] == "appointmentscheduled")
    sandbox.close_deal(deal["id"], won=True)
    assert sandbox.wait_for_webhooks(timeout=10)
    assert len(target.received) == 2  # refused once, delivered on the retry
    for headers, body, full_url in target.received:
        assert Signature.is_valid(
            signature=headers["X-Hubspot-Signature-V3"],
            client_secret=sandbox.client_secret,
            request_body=body.decode(),
            http_uri=full_url,
            http_method="POST",
            signature_version="v3",
            timestamp=int(headers["X-Hubspot-Request-Timestamp"]),
        )
    first = json.loads(target.received[0][1])
    retry = json.loads(target.received[1][1])
    assert [e["eventId"] for e in first] == [e["eventId"] for e in retry]
    assert retry[0]["attemptNumber"] == first[0]["attemptNumber"] + 1
    change = next(e for e in first if e.get("propertyName") == "dealstage")
    assert change["objectId"] == int(deal["id"]) and change["propertyValue"] == "closedwon"
    assert change["subscriptionType"] == "deal.propertyChange"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429])
def test_webhooks_answered_with_any_4xx_are_retried_as_hubspot_documents(
    make_hubspot_sandbox: MakeHubSpotSandbox, status: int
) -> None:
    target = Receiver(refuse=1, status=status)
    with serving(target) as server:
        sandbox = make_hubspot_sandbox(webhook_url=f"{server.url}/hooks/hubspot")
        deal = next(d for d in sandbox.deals() if d["dealstage"] == "appointmentscheduled")
        sandbox.close_deal(deal["id"], won=True)
        assert sandbox.wait_for_webhooks(timeout=10)
    assert len(target.received) == 2


# -- OpenAPI conformance ------------------------------------------------------------------------------------


def _spec(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SPECS / f"{name}.json").read_text())
    return loaded


def _schema(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any] | None:
    responses = spec["paths"][path][method]["responses"]
    response = responses.get(str(status)) or responses["default"]
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    content = response.get("content") or {}
    if not content:
        return None
    media = next(iter(content.values()))
    return {**media["schema"], "components": spec["components"]}


# GET /account-info/v3/details as HubSpot documents it (account information API).
ACCOUNT_DETAILS: dict[str, Any] = {
    "type": "object",
    "required": ["portalId", "accountType", "timeZone", "companyCurrency", "uiDomain"],
    "properties": {
        "portalId": {"type": "integer"},
        "accountType": {"type": "string"},
        "timeZone": {"type": "string"},
        "companyCurrency": {"type": "string"},
        "additionalCurrencies": {"type": "array", "items": {"type": "string"}},
        "utcOffset": {"type": "string"},
        "utcOffsetMilliseconds": {"type": "integer"},
        "uiDomain": {"type": "string"},
        "dataHostingLocation": {"type": "string"},
    },
}


# The currencies API as documented (settings/multicurrency; no OpenAPI file vendored).
COMPANY_CURRENCY: dict[str, Any] = {
    "type": "object",
    "required": ["currencyCode"],
    "properties": {"currencyCode": {"type": "string"}, "currencyName": {"type": "string"}},
}
EXCHANGE_RATES: dict[str, Any] = {
    "type": "object",
    "required": ["results"],
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "fromCurrencyCode", "toCurrencyCode", "conversionRate",
                             "effectiveAt", "createdAt", "updatedAt", "visibleInUI"],
                "properties": {
                    "id": {"type": "string"},
                    "fromCurrencyCode": {"type": "string"},
                    "toCurrencyCode": {"type": "string"},
                    "conversionRate": {"type": "number"},
                    "effectiveAt": {"type": "string", "format": "date-time"},
                    "createdAt": {"type": "string", "format": "date-time"},
                    "updatedAt": {"type": "string", "format": "date-time"},
                    "visibleInUI": {"type": "boolean"},
                },
            },
        },
        "paging": {"type": "object"},
    },
}  # fmt: skip


def test_every_endpoint_answers_per_the_openapi_schemas(
    make_hubspot_sandbox: MakeHubSpotSandbox,
) -> None:
    sandbox = make_hubspot_sandbox(multicurrency=True)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {sandbox.token}"
    base = sandbox.url
    deal = sandbox.deals()[0]["id"]
    user = sandbox.portal.user_ids[0]
    owner = sandbox.portal.owner_ids[0]
    split_deal = next(iter(sandbox.portal.splits))
    search_body = {"filterGroups": [modified_filter(0)], "limit": 5, "properties": ["amount"]}
    calls: list[tuple[str, str, str, str, int, Any]] = [
        # (spec, spec path, method, url path, expected status, json body)
        ("owners", "/crm/v3/owners", "get", "/crm/v3/owners?limit=3", 200, None),
        ("owners", "/crm/v3/owners/{ownerId}", "get", f"/crm/v3/owners/{owner}", 200, None),
        ("deals", "/crm/v3/objects/0-3", "get", "/crm/v3/objects/deals?limit=3&properties=amount", 200, None),
        ("deals", "/crm/v3/objects/0-3", "get", "/crm/v3/objects/0-3?limit=3", 200, None),
        ("deals", "/crm/v3/objects/0-3/{dealId}", "get", f"/crm/v3/objects/deals/{deal}", 200, None),
        ("deals", "/crm/v3/objects/0-3/{dealId}", "patch", f"/crm/v3/objects/deals/{deal}", 200, {"properties": {"amount": "5"}}),
        ("deals", "/crm/v3/objects/0-3", "post", "/crm/v3/objects/deals", 201, {"properties": {"dealname": "x", "amount": "1"}}),
        ("deals", "/crm/v3/objects/0-3/search", "post", "/crm/v3/objects/deals/search", 200, search_body),
        ("deals", "/crm/v3/objects/0-3/batch/read", "post", "/crm/v3/objects/deals/batch/read", 200, {"inputs": [{"id": deal}], "properties": ["amount"], "propertiesWithHistory": []}),
        ("deals", "/crm/v3/objects/0-3/batch/read", "post", "/crm/v3/objects/deals/batch/read", 207, {"inputs": [{"id": deal}, {"id": "1"}], "properties": [], "propertiesWithHistory": []}),
        ("deals", "/crm/v3/objects/0-3/batch/update", "post", "/crm/v3/objects/deals/batch/update", 200, {"inputs": [{"id": deal, "properties": {"amount": "7"}}]}),
        ("deals", "/crm/v3/objects/0-3/batch/update", "post", "/crm/v3/objects/deals/batch/update", 207, {"inputs": [{"id": "1", "properties": {"amount": "7"}}]}),
        ("deals", "/crm/v3/objects/0-3/batch/update", "post", "/crm/v3/objects/deals/batch/update", 400, {"inputs": [{"id": deal, "properties": {"nope": "7"}}]}),
        ("deals", "/crm/v3/objects/0-3/{dealId}", "get", "/crm/v3/objects/deals/1", 404, None),
        ("users", "/crm/v3/objects/users", "get", "/crm/v3/objects/users?limit=2", 200, None),
        ("users", "/crm/v3/objects/users/{userId}", "get", f"/crm/v3/objects/users/{user}", 200, None),
        ("users", "/crm/v3/objects/users/search", "post", "/crm/v3/objects/users/search", 200, {"filterGroups": [], "limit": 2}),
        ("users", "/crm/v3/objects/users/batch/read", "post", "/crm/v3/objects/users/batch/read", 200, {"inputs": [{"id": user}], "properties": ["hs_email"], "propertiesWithHistory": []}),
        ("users", "/crm/v3/objects/users/batch/update", "post", "/crm/v3/objects/users/batch/update", 400, {"inputs": [{"id": user, "properties": {"spm_payout": "1"}}]}),
        ("pipelines", "/crm/v3/pipelines/{objectType}", "get", "/crm/v3/pipelines/deals", 200, None),
        ("pipelines", "/crm/v3/pipelines/{objectType}/{pipelineId}", "get", "/crm/v3/pipelines/deals/default", 200, None),
        ("pipelines", "/crm/v3/pipelines/{objectType}/{pipelineId}/stages", "get", "/crm/v3/pipelines/deals/default/stages", 200, None),
        ("properties", "/crm/v3/properties/{objectType}", "get", "/crm/v3/properties/deals", 200, None),
        ("properties", "/crm/v3/properties/{objectType}/{propertyName}", "get", "/crm/v3/properties/deals/amount", 200, None),
        ("properties", "/crm/v3/properties/{objectType}/groups", "post", "/crm/v3/properties/users/groups", 201, {"name": "spm_compensation", "label": "Compensation"}),
        ("properties", "/crm/v3/properties/{objectType}/groups", "get", "/crm/v3/properties/users/groups", 200, None),
        ("properties", "/crm/v3/properties/{objectType}/groups/{groupName}", "get", "/crm/v3/properties/users/groups/spm_compensation", 200, None),
        ("properties", "/crm/v3/properties/{objectType}", "post", "/crm/v3/properties/users", 201, {"name": "spm_payout", "label": "Payout", "type": "number", "fieldType": "number", "groupName": "spm_compensation"}),
        ("properties", "/crm/v3/properties/{objectType}", "post", "/crm/v3/properties/users", 409, {"name": "spm_payout", "label": "Payout", "type": "number", "fieldType": "number", "groupName": "spm_compensation"}),
        ("users", "/crm/v3/objects/users/batch/update", "post", "/crm/v3/objects/users/batch/update", 200, {"inputs": [{"id": user, "properties": {"spm_payout": "1"}}]}),
        ("deal-splits", "/crm/objects/v3/deals/splits/batch/read", "post", "/crm/objects/v3/deals/splits/batch/read", 200, {"inputs": [{"id": split_deal}]}),
        ("deals", "/crm/v3/objects/0-3/{dealId}", "delete", f"/crm/v3/objects/deals/{deal}", 204, None),
    ]  # fmt: skip
    served = set()
    for spec_name, spec_path, method, url, status, body in calls:
        answer = http.request(method.upper(), base + url, json=body, timeout=10)
        assert answer.status_code == status, (url, answer.status_code, answer.text[:300])
        served.add((spec_name, spec_path, method))
        schema = _schema(_spec(spec_name), spec_path, method, status)
        if schema is None:
            assert answer.content == b""
            continue
        OAS30Validator(schema).validate(answer.json())
    # The account information API (no OpenAPI file vendored): the documented fields.
    details = http.get(f"{base}/account-info/v3/details", timeout=10)
    assert details.status_code == 200
    OAS30Validator(ACCOUNT_DETAILS).validate(details.json())
    calls.append(("", "", "get", "/account-info/v3/details", 200, None))
    for path, schema in (("company-currency", COMPANY_CURRENCY), ("exchange-rates?limit=2",
                                                                  EXCHANGE_RATES)):  # fmt: skip
        answer = http.get(f"{base}/settings/v3/currencies/{path}", timeout=10)
        assert answer.status_code == 200, answer.text
        OAS30Validator(schema).validate(answer.json())
        calls.append(("", "", "get", f"/settings/v3/currencies/{path}", 200, None))
    # Errors (401, 429) follow the Error schema too.
    for fault, expected in (({}, 401), ({"rate_limit": 0}, 429)):
        sandbox.faults.update(fault)
        headers = {} if expected == 401 else {"Authorization": f"Bearer {sandbox.token}"}
        answer = requests.get(f"{base}/crm/v3/objects/deals", headers=headers, timeout=5)
        assert answer.status_code == expected
        schema = _schema(_spec("deals"), "/crm/v3/objects/0-3", "get", expected)
        assert schema is not None
        OAS30Validator(schema).validate(answer.json())
    # Every route the app serves (admin aside) was exercised above.
    routes = sandbox.app.urls.bind("127.0.0.1")
    exercised = {
        routes.match(url.split("?")[0], method=method.upper())[0]
        for _, _, method, url, _, _ in calls
    }
    served_endpoints = {
        rule.endpoint for rule in sandbox.app.urls.iter_rules() if not rule.rule.startswith("/_")
    }
    assert exercised == served_endpoints
