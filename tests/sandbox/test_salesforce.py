"""The Salesforce emulator, driven by the real simple-salesforce over HTTPS."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)
from werkzeug.wrappers import Request, Response

from crm_sandbox.common import Faults, serving
from crm_sandbox.salesforce import SalesforceSandbox
from crm_sandbox.salesforce.outbound import acknowledged
from tests.fixtures.salesforce_sandbox import MakeSalesforceSandbox, client_for

COMMISSION = {
    "FullName": "Opportunity.SPM_Commission__c",
    "Metadata": {"type": "Currency", "label": "Commission", "precision": 16, "scale": 2},
}


def collection(sf: Salesforce, method: str, records: list[dict[str, Any]], **body: Any) -> Any:
    payload = json.dumps({"allOrNone": False, **body, "records": records}, default=str)
    return sf.restful("composite/sobjects", method=method, data=payload)


def error_code(error: Exception) -> str:
    content = getattr(error, "content", None)
    assert isinstance(content, list), content
    return str(content[0]["errorCode"])


# -- session, limits, discovery ----------------------------------------------------------------


def test_versions_limits_and_usage_header(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    versions = salesforce_sandbox.session().get(f"{salesforce_sandbox.url}/services/data").json()
    assert {"version": "62.0", "url": "/services/data/v62.0", "label": "Sandbox"} in versions
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100_000
    sf.query("SELECT Id FROM User")
    usage = sf.api_usage["api-usage"]
    assert (usage.used, usage.total) == (2, 100_000)


def test_wrong_token_is_invalid_session(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox, token="not-the-token")
    with pytest.raises(SalesforceExpiredSession) as raised:
        sf.query("SELECT Id FROM User")
    assert error_code(raised.value) == "INVALID_SESSION_ID"


def test_tls_is_real(salesforce_sandbox: SalesforceSandbox) -> None:
    untrusting = requests.Session()
    untrusting.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        untrusting.get(f"{salesforce_sandbox.url}/services/data", timeout=5)


def _seeded(rows: list[dict[str, Any]], started: datetime) -> list[dict[str, Any]]:
    """Rows without the stamps a seeded future change gets from the clock (the org's start)."""
    stamps = ("CreatedDate", "LastModifiedDate", "SystemModstamp")
    return [{k: v for k, v in row.items() if not (k in stamps and v >= started)} for row in rows]


def test_same_seed_same_org(make_salesforce_sandbox: MakeSalesforceSandbox) -> None:
    first = make_salesforce_sandbox(seed=11)
    second = make_salesforce_sandbox(seed=11)
    started = min(first.org.started, second.org.started)
    assert _seeded(first.opportunities(), started) == _seeded(second.opportunities(), started)
    assert first.users() == second.users()
    assert first.opportunities() != make_salesforce_sandbox(seed=12).opportunities()


# -- SOQL --------------------------------------------------------------------------------------


def ids(sf: Salesforce, soql: str) -> set[str]:
    return {row["Id"] for row in sf.query_all(soql)["records"]}


def test_soql_filters_match_a_python_filter(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    deals = salesforce_sandbox.opportunities()
    owner = deals[0]["OwnerId"]

    def where(test: Any) -> set[str]:
        return {d["Id"] for d in deals if test(d)}

    cases = {
        "IsWon = true": lambda d: d["IsWon"],
        "IsClosed = false": lambda d: not d["IsClosed"],
        f"OwnerId = '{owner}'": lambda d: d["OwnerId"] == owner,
        f"OwnerId = '{owner[:15]}'": lambda d: d["OwnerId"] == owner,  # 15-character ids too
        "Amount >= 50000 AND Amount < 60000": lambda d: 50000 <= d["Amount"] < 60000,
        "CloseDate <= 2026-03-31 AND (StageName = 'Closed Won' OR StageName = 'Closed Lost')": (
            lambda d: d["CloseDate"] <= date(2026, 3, 31) and d["IsClosed"]
        ),
        "StageName IN ('closed won', 'Prospecting')": (  # text compares ignore case
            lambda d: d["StageName"] in ("Closed Won", "Prospecting")
        ),
        "StageName NOT IN ('Closed Won')": lambda d: d["StageName"] != "Closed Won",
        "Name LIKE 'Acme%'": lambda d: d["Name"].startswith("Acme"),
        "Type != null": lambda d: d["Type"] is not None,
        "NOT (Amount > 10000)": lambda d: not d["Amount"] > 10000,
        "SystemModstamp > 2026-06-30T23:59:59Z": (
            lambda d: d["SystemModstamp"] > datetime.fromisoformat("2026-06-30T23:59:59+00:00")
        ),
        "SystemModstamp > 2026-07-01T01:59:59+02:00": (
            lambda d: d["SystemModstamp"] > datetime.fromisoformat("2026-06-30T23:59:59+00:00")
        ),
    }
    for condition, test in cases.items():
        assert ids(sf, f"SELECT Id FROM Opportunity WHERE {condition}") == where(test), condition


def test_soql_order_limit_offset_and_count(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    rows = sf.query(
        "SELECT Id, Amount FROM Opportunity ORDER BY Amount DESC NULLS LAST, Id LIMIT 5 OFFSET 2"
    )["records"]
    expected = sorted(salesforce_sandbox.opportunities(), key=lambda d: (-d["Amount"], d["Id"]))
    assert [r["Id"] for r in rows] == [d["Id"] for d in expected[2:7]]
    assert all(isinstance(r["Amount"], Decimal) for r in rows)
    count = sf.query("SELECT COUNT() FROM Opportunity WHERE IsWon = true")
    assert count["totalSize"] == sum(d["IsWon"] for d in salesforce_sandbox.opportunities())


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM Opportunity WHERE", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Opportunity WHERE IsWon = true AND IsClosed = true OR Amount > 1",
            "MALFORMED_QUERY",
        ),
        ("SELECT Id, Nope__c FROM Opportunity", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE CloseDate > '2026-01-01'", "INVALID_FIELD"),
        ("SELECT Id FROM Widget__c", "INVALID_TYPE"),
    ],
)
def test_bad_soql_is_refused_like_salesforce(
    salesforce_client: Salesforce, soql: str, code: str
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as raised:
        salesforce_client.query(soql)
    assert error_code(raised.value) == code
    if code == "INVALID_FIELD" and "Nope" in soql:
        assert "No such column 'Nope__c' on entity 'Opportunity'" in str(raised.value)


def test_paging_default_and_batch_size(make_salesforce_sandbox: MakeSalesforceSandbox) -> None:
    sandbox = make_salesforce_sandbox(deals=4500)
    sf = client_for(sandbox)
    first = sf.query("SELECT Id FROM Opportunity")
    assert (len(first["records"]), first["done"], first["totalSize"]) == (2000, False, 4500)
    assert first["nextRecordsUrl"].startswith("/services/data/v62.0/query/01g")
    sandbox.calls.reset()
    seen = [r["Id"] for r in sf.query_all_iter("SELECT Id FROM Opportunity ORDER BY Id")]
    assert len(seen) == len(set(seen)) == 4500 and seen == sorted(seen)
    assert sandbox.calls.counts() == {"query_page": 3}

    sandbox.calls.reset()
    small = sf.query(
        "SELECT Id FROM Opportunity", headers={"Sforce-Query-Options": "batchSize=500"}
    )
    assert len(small["records"]) == 500
    page = sf.query_more(small["nextRecordsUrl"], identifier_is_url=True)
    assert len(page["records"]) == 500
    assert [c.records for c in sandbox.calls.calls("query_page")] == [500, 500]


def test_query_all_includes_deleted(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    doomed = salesforce_sandbox.opportunities()[0]["Id"]
    sf.Opportunity.delete(doomed)
    assert doomed not in ids(sf, "SELECT Id FROM Opportunity")
    deleted = sf.query_all(
        "SELECT Id, IsDeleted FROM Opportunity WHERE IsDeleted = true", include_deleted=True
    )
    assert [(r["Id"], r["IsDeleted"]) for r in deleted["records"]] == [(doomed, True)]


# -- records, describe, custom fields ------------------------------------------------------------


def test_custom_fields_exist_only_after_tooling_create(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    sf = client_for(salesforce_sandbox)
    deal = salesforce_sandbox.opportunities()[0]["Id"]
    names = {f["name"] for f in sf.Opportunity.describe()["fields"]}
    assert {"Id", "OwnerId", "Amount", "CloseDate", "StageName", "IsWon", "SystemModstamp"} <= names
    assert "SPM_Commission__c" not in names
    with pytest.raises(SalesforceMalformedRequest) as raised:
        collection(
            sf,
            "PATCH",
            [{"attributes": {"type": "Opportunity"}, "id": deal, "SPM_Commission__c": 1}],
        )
    assert error_code(raised.value) == "INVALID_FIELD"

    created = sf.toolingexecute("sobjects/CustomField", method="POST", data=COMMISSION)
    assert created["success"] is True and created["id"].startswith("00N")
    grant(sf, salesforce_sandbox, "Opportunity.SPM_Commission__c", edit=True)
    described = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    field = described["SPM_Commission__c"]
    assert (field["type"], field["precision"], field["scale"], field["custom"]) == (
        "currency",
        16,
        2,
        True,
    )
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.toolingexecute("sobjects/CustomField", method="POST", data=COMMISSION)
    assert error_code(raised.value) == "DUPLICATE_DEVELOPER_NAME"
    found = sf.toolingexecute(
        "query/?q=SELECT+Id,DeveloperName,TableEnumOrId+FROM+CustomField+WHERE+DeveloperName='SPM_Commission'"
    )
    assert found["records"][0]["TableEnumOrId"] == "Opportunity"

    sf.Opportunity.update(deal, {"SPM_Commission__c": "1234.565"})
    # SFType.get parses numbers as float; query honours parse_float=Decimal.
    row = sf.query(f"SELECT SPM_Commission__c FROM Opportunity WHERE Id = '{deal}'")
    assert row["records"][0]["SPM_Commission__c"] == Decimal("1234.57")  # scale 2, half up


def grant(sf: Salesforce, sandbox: SalesforceSandbox, field: str, *, edit: bool) -> str:
    """A permission set granting ``field`` to the integration user; its FieldPermissions id."""
    permission_set = sf.PermissionSet.create(
        {"Name": f"Grant_{len(sandbox.org.records['PermissionSet'])}", "Label": "Grant"}
    )
    results = collection(
        sf,
        "POST",
        [
            {
                "attributes": {"type": "FieldPermissions"},
                "ParentId": permission_set["id"],
                "SobjectType": field.split(".")[0],
                "Field": field,
                "PermissionsRead": True,
                "PermissionsEdit": edit,
            },
            {
                "attributes": {"type": "PermissionSetAssignment"},
                "PermissionSetId": permission_set["id"],
                "AssigneeId": sandbox.integration_user_id,
            },
        ],
    )
    assert all(r["success"] for r in results), results
    return str(results[0]["id"])


def test_field_level_security_hides_and_locks_new_fields(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    """A field created through the API exists for nobody until a permission set grants it."""
    sf = client_for(salesforce_sandbox)
    deal = salesforce_sandbox.opportunities()[0]["Id"]
    sf.toolingexecute("sobjects/CustomField", method="POST", data=COMMISSION)
    assert "SPM_Commission__c" not in {f["name"] for f in sf.Opportunity.describe()["fields"]}
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Id, SPM_Commission__c FROM Opportunity")
    assert error_code(raised.value) == "INVALID_FIELD"
    assert "No such column 'SPM_Commission__c' on entity 'Opportunity'" in str(raised.value)
    update = [{"attributes": {"type": "Opportunity"}, "id": deal, "SPM_Commission__c": 1}]
    with pytest.raises(SalesforceMalformedRequest) as raised:
        collection(sf, "PATCH", update)
    assert error_code(raised.value) == "INVALID_FIELD"
    assert "SPM_Commission__c" not in sf.Opportunity.get(deal)

    # Read, not Edit: visible, not updateable, and a write fails per record.
    grant_id = grant(sf, salesforce_sandbox, "Opportunity.SPM_Commission__c", edit=False)
    described = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    assert described["SPM_Commission__c"]["updateable"] is False
    assert sf.query("SELECT Id, SPM_Commission__c FROM Opportunity LIMIT 1")["totalSize"] == 1
    results = collection(sf, "PATCH", update)
    assert results[0]["success"] is False
    assert results[0]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

    # Edit needs Read; with both, the write goes through.
    bad = collection(
        sf,
        "PATCH",
        [
            {
                "attributes": {"type": "FieldPermissions"},
                "id": grant_id,
                "PermissionsRead": False,
                "PermissionsEdit": True,
            }
        ],
    )
    assert bad[0]["errors"][0]["statusCode"] == "FIELD_INTEGRITY_EXCEPTION"
    collection(
        sf,
        "PATCH",
        [{"attributes": {"type": "FieldPermissions"}, "id": grant_id, "PermissionsEdit": True}],
    )
    assert collection(sf, "PATCH", update)[0]["success"] is True

    # Removing the grant hides the field again.
    sf.FieldPermissions.delete(grant_id)
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT SPM_Commission__c FROM Opportunity")


def test_modstamp_moves_and_stage_derives_outcome(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    deal = next(d for d in salesforce_sandbox.opportunities() if not d["IsClosed"])
    before = sf.Opportunity.get(deal["Id"])
    sf.Opportunity.update(deal["Id"], {"StageName": "Closed Won"})
    after = sf.Opportunity.get(deal["Id"])
    assert (after["IsWon"], after["IsClosed"]) == (True, True)
    assert after["SystemModstamp"] > before["SystemModstamp"]
    latest = max(d["SystemModstamp"] for d in salesforce_sandbox.opportunities())
    assert salesforce_sandbox.org.opportunity(deal["Id"]).values["SystemModstamp"] == latest
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Opportunity.update(deal["Id"], {"IsWon": False})
    assert error_code(raised.value) == "INVALID_FIELD_FOR_INSERT_UPDATE"
    stages = sf.query(
        "SELECT MasterLabel, IsWon, IsClosed FROM OpportunityStage WHERE IsClosed = true"
    )
    assert {(r["MasterLabel"], r["IsWon"]) for r in stages["records"]} == {
        ("Closed Won", True),
        ("Closed Lost", False),
    }


def test_splits_and_users(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    splits = sf.query_all(
        "SELECT OpportunityId, SplitOwnerId, SplitPercentage FROM OpportunitySplit"
    )
    assert splits["totalSize"] == len(salesforce_sandbox.splits()) > 0
    users = sf.query_all("SELECT Id, Name, Email, IsActive, ManagerId FROM User")["records"]
    # The seeded reps, and the integration user our writes are made as.
    assert len(users) == 8 + 1 and any(u["ManagerId"] for u in users)


def test_org_without_splits_refuses_the_object(
    make_salesforce_sandbox: MakeSalesforceSandbox,
) -> None:
    sf = client_for(make_salesforce_sandbox(splits=False))
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Id FROM OpportunitySplit")
    assert error_code(raised.value) == "INVALID_TYPE"


# -- sObject Collections -----------------------------------------------------------------------


def test_collection_partial_failure_and_limits(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    a, b = (d["Id"] for d in salesforce_sandbox.opportunities()[:2])
    results = collection(
        sf,
        "PATCH",
        [
            {"attributes": {"type": "Opportunity"}, "id": a, "Amount": 10.5},
            {"attributes": {"type": "Opportunity"}, "id": "0060700000009ZZAAA", "Amount": 1},
            {"attributes": {"type": "Opportunity"}, "id": b, "Name": "x" * 121},
        ],
    )
    assert [r["success"] for r in results] == [True, False, False]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert results[2]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert salesforce_sandbox.org.opportunity(a).values["Amount"] == Decimal("10.50")

    too_many = [{"attributes": {"type": "Opportunity"}, "id": a, "Amount": 1}] * 201
    with pytest.raises(SalesforceMalformedRequest) as raised:
        collection(sf, "PATCH", too_many)
    assert error_code(raised.value) == "EXCEEDED_ID_LIMIT"


def test_all_or_none_rolls_back(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    deal = salesforce_sandbox.opportunities()[0]
    results = collection(
        sf,
        "PATCH",
        [
            {"attributes": {"type": "Opportunity"}, "id": deal["Id"], "Amount": 1},
            {"attributes": {"type": "Opportunity"}, "id": "0060700000009ZZAAA", "Amount": 1},
        ],
        allOrNone=True,
    )
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert salesforce_sandbox.org.opportunity(deal["Id"]).values["Amount"] == deal["Amount"]


def test_permission_set_objects(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    sf.toolingexecute("sobjects/CustomField", method="POST", data=COMMISSION)
    created = sf.PermissionSet.create({"Name": "SPM_Payout_Fields", "Label": "SPM Payout Fields"})
    user = salesforce_sandbox.users()[0]["Id"]
    results = collection(
        sf,
        "POST",
        [
            {
                "attributes": {"type": "FieldPermissions"},
                "ParentId": created["id"],
                "SobjectType": "Opportunity",
                "Field": "Opportunity.SPM_Commission__c",
                "PermissionsRead": True,
                "PermissionsEdit": False,
            },
            {
                "attributes": {"type": "PermissionSetAssignment"},
                "PermissionSetId": created["id"],
                "AssigneeId": user,
            },
        ],
    )
    assert all(r["success"] for r in results)
    granted = sf.query(
        f"SELECT Field, PermissionsRead FROM FieldPermissions WHERE ParentId = '{created['id']}'"
    )
    assert [(r["Field"], r["PermissionsRead"]) for r in granted["records"]] == [
        ("Opportunity.SPM_Commission__c", True)
    ]
    again = sf.PermissionSet.create  # a second set with the same name is a duplicate
    with pytest.raises(SalesforceMalformedRequest) as raised:
        again({"Name": "SPM_Payout_Fields", "Label": "Again"})
    assert error_code(raised.value) == "DUPLICATE_VALUE"


# -- faults ------------------------------------------------------------------------------------


def test_daily_limit_is_request_limit_exceeded(
    make_salesforce_sandbox: MakeSalesforceSandbox,
) -> None:
    sandbox = make_salesforce_sandbox(faults=Faults(daily_limit=3))
    sf = client_for(sandbox)
    for _ in range(3):
        sf.query("SELECT Id FROM User LIMIT 1")
    with pytest.raises(SalesforceRefusedRequest) as raised:
        sf.query("SELECT Id FROM User LIMIT 1")
    assert error_code(raised.value) == "REQUEST_LIMIT_EXCEEDED"
    assert sf.api_usage["api-usage"].used == 3


def test_unavailable_and_locked_rows(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    salesforce_sandbox.faults.update({"error_rate": 1.0})
    with pytest.raises(SalesforceGeneralError) as raised:
        sf.query("SELECT Id FROM User")
    assert raised.value.status == 503
    salesforce_sandbox.faults.update({"error_rate": 0.0})

    deal = salesforce_sandbox.opportunities()[0]["Id"]
    salesforce_sandbox.faults.update({"locked_ids": [deal], "lock_failures": 2})
    record = [{"attributes": {"type": "Opportunity"}, "id": deal, "Amount": 5}]
    codes = [collection(sf, "PATCH", record)[0] for _ in range(3)]
    assert [c["success"] for c in codes] == [False, False, True]
    assert codes[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"


def test_latency_is_added(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    salesforce_sandbox.faults.update({"latency_ms": 150})
    started = time.monotonic()
    sf.query("SELECT Id FROM User LIMIT 1")
    assert time.monotonic() - started >= 0.15


# -- admin endpoint ----------------------------------------------------------------------------


def test_admin_endpoint_counts_faults_and_mutations(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    admin = f"{salesforce_sandbox.url}/_sandbox"
    http = salesforce_sandbox.session()
    http.headers["X-Sandbox-Token"] = salesforce_sandbox.admin_token
    assert http.get(f"{admin}/calls", headers={"X-Sandbox-Token": "no"}).status_code == 401
    sf.query("SELECT Id FROM User")
    assert http.get(f"{admin}/calls").json()["counts"] == {"query_page": 1}
    http.post(f"{admin}/calls/reset", json={})
    assert http.get(f"{admin}/calls").json()["total"] == 0

    assert http.post(f"{admin}/faults", json={"latency_ms": 5}).json()["latency_ms"] == 5
    refused = http.post(f"{admin}/faults", json={"explode": True})
    assert refused.status_code == 400 and "explode" in refused.json()["error"]

    deal = next(d for d in salesforce_sandbox.opportunities() if not d["IsClosed"])
    http.post(
        f"{admin}/mutate", json={"action": "close_deal", "id": deal["Id"], "on": "2026-04-02"}
    )
    http.post(
        f"{admin}/mutate", json={"action": "set_amount", "id": deal["Id"], "amount": "999.99"}
    )
    row = sf.Opportunity.get(deal["Id"])
    assert (row["IsWon"], row["CloseDate"]) == (True, "2026-04-02")
    assert salesforce_sandbox.org.opportunity(deal["Id"]).values["Amount"] == Decimal("999.99")
    http.post(f"{admin}/mutate", json={"action": "reverse_deal", "id": deal["Id"]})
    assert sf.Opportunity.get(deal["Id"])["StageName"] == "Closed Lost"
    bad = http.post(f"{admin}/mutate", json={"action": "reverse_deal", "id": deal["Id"]})
    assert bad.status_code == 400 and "not won" in bad.json()["error"]
    owner = salesforce_sandbox.users()[1]["Id"]
    created = http.post(
        f"{admin}/mutate",
        json={
            "action": "create_deal",
            "owner_id": owner,
            "amount": "500",
            "close_date": "2026-05-05",
        },
    ).json()
    assert sf.Opportunity.get(created["id"])["OwnerId"] == owner


# -- outbound messages -------------------------------------------------------------------------

ACK = (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
    "</notificationsResponse></soapenv:Body></soapenv:Envelope>"
)


class Listener:
    """A SOAP listener that refuses its first ``refuse`` deliveries, then acknowledges."""

    def __init__(self, refuse: int) -> None:
        self.refuse = refuse
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.bodies.append(request.get_data())
            refuse = len(self.bodies) <= self.refuse
        response = (
            Response("busy", status=503) if refuse else Response(ACK, content_type="text/xml")
        )
        return response(environ, start_response)


def test_outbound_messages_are_acknowledged_or_retried(
    make_salesforce_sandbox: MakeSalesforceSandbox,
) -> None:
    listener = Listener(refuse=2)
    with serving(listener) as server:
        sandbox = make_salesforce_sandbox(
            outbound_url=f"{server.url}/outbound", outbound_first_retry_s=0.05
        )
        deal = next(d for d in sandbox.opportunities() if not d["IsClosed"])
        sandbox.close_deal(deal["Id"], won=True)
        assert sandbox.wait_for_outbound(timeout=10)
    assert len(listener.bodies) == 3  # refused twice, acknowledged on the third attempt
    assert listener.bodies[0] == listener.bodies[2]  # the same notification id every time
    body = listener.bodies[0].decode()
    assert '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">' in body
    assert f"<sf:Id>{deal['Id']}</sf:Id>" in body and "<sf:IsWon>true</sf:IsWon>" in body
    # 18 characters, as the outbound-message WSDL types the ID and real deliveries carry it.
    assert f"<OrganizationId>{sandbox.org.organization_id}</OrganizationId>" in body
    assert len(sandbox.org.organization_id) == 18
    assert re.search(r"<ActionId>04k[0-9A-Za-z]{15}</ActionId>", body)
    deliveries = sandbox.outbound.status()["deliveries"] if sandbox.outbound else []
    assert [d["acknowledged"] for d in deliveries] == [False, False, True]
    assert [d["attempt"] for d in deliveries] == [1, 2, 3]


def test_ack_parsing() -> None:
    assert acknowledged(ACK.encode())
    assert not acknowledged(ACK.replace("true", "false").encode())
    assert not acknowledged(b"<html>oops</html>")
    assert not acknowledged(b"not xml")
