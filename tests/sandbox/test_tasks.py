"""Both sandboxes' tasks, through the real client libraries, refused where the CRMs refuse."""

from __future__ import annotations

import pytest
from hubspot.crm.objects.tasks import (
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects.tasks.exceptions import ApiException as TasksApiException
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crm_sandbox.hubspot import HubSpotSandbox
from crm_sandbox.salesforce import SalesforceSandbox
from tests.fixtures.salesforce_sandbox import client_for
from tests.sandbox.test_hubspot import client


def test_salesforce_task_create_update_query(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    users = sf.query_all("SELECT Id, IsActive FROM User")["records"]
    owner = next(u["Id"] for u in users if u["IsActive"])
    created = sf.Task.create(
        {"OwnerId": owner, "Subject": "Coaching: behind pace", "Description": "pace 61%",
         "ActivityDate": "2026-03-20"}
    )  # fmt: skip
    task_id = created["id"]
    assert task_id.startswith("00T")
    row = sf.query(f"SELECT Status, Priority, IsClosed, Subject FROM Task WHERE Id = '{task_id}'")
    (found,) = row["records"]
    # Status and Priority are required, and defaulted on create; IsClosed follows Status.
    assert (found["Status"], found["Priority"], found["IsClosed"]) == (
        "Not Started",
        "Normal",
        False,
    )
    sf.Task.update(task_id, {"Status": "Completed"})
    (found,) = sf.query(f"SELECT IsClosed FROM Task WHERE Id = '{task_id}'")["records"]
    assert found["IsClosed"] is True
    # A subject is matched the way SOQL matches text: whole, ignoring case; quotes escaped.
    sf.Task.create({"OwnerId": owner, "Subject": "Ana's plan"})
    named = sf.query("SELECT Id FROM Task WHERE Subject = 'ana\\'s plan'")["records"]
    assert len(named) == 1


def test_salesforce_task_refusals(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = client_for(salesforce_sandbox)
    owner = sf.query("SELECT Id FROM User LIMIT 1")["records"][0]["Id"]
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"):
        sf.Task.create({"OwnerId": owner, "Subject": "x", "Status": "Done"})
    with pytest.raises(SalesforceMalformedRequest, match="can not be filtered"):
        sf.query("SELECT Id FROM Task WHERE Description = 'x'")
    with pytest.raises(SalesforceMalformedRequest, match="STRING_TOO_LONG"):
        sf.Task.create({"OwnerId": owner, "Subject": "x" * 256})
    inactive = salesforce_sandbox.org.records["User"][owner]
    inactive.values["IsActive"] = False
    with pytest.raises(SalesforceMalformedRequest, match="INACTIVE_OWNER_OR_USER"):
        sf.Task.create({"OwnerId": owner, "Subject": "x"})


def test_hubspot_task_create_read_search_update(hubspot_sandbox: HubSpotSandbox) -> None:
    tasks = client(hubspot_sandbox).crm.objects.tasks
    owner = hubspot_sandbox.owners()[0]["id"]
    deal = hubspot_sandbox.deals()[0]["id"]
    created = tasks.basic_api.create(
        SimplePublicObjectInputForCreate(
            properties={"hs_task_subject": "Coaching: behind pace", "hs_task_body": "pace 61%",
                        "hubspot_owner_id": owner, "hs_timestamp": "2026-03-20T00:00:00Z"},
            associations=[{"to": {"id": deal}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 216}]}],
        )
    )  # fmt: skip
    assert created.properties["hs_task_status"] == "NOT_STARTED"
    assert hubspot_sandbox.portal.associations[created.id] == [(216, deal)]
    tasks.basic_api.update(
        created.id, SimplePublicObjectInput(properties={"hs_task_status": "COMPLETED"})
    )
    read = tasks.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": created.id}], properties=["hs_task_status", "hs_task_body"]
        )
    )
    assert read.results[0].properties["hs_task_status"] == "COMPLETED"
    found = tasks.search_api.do_search(
        PublicObjectSearchRequest(filter_groups=[{"filters": [
            {"propertyName": "hubspot_owner_id", "operator": "EQ", "value": owner},
            {"propertyName": "hs_task_subject", "operator": "EQ", "value": "Coaching: behind pace"},
        ]}])
    )  # fmt: skip
    assert [r.id for r in found.results] == [created.id]


def test_hubspot_task_refusals_and_search_lag(hubspot_sandbox: HubSpotSandbox) -> None:
    tasks = client(hubspot_sandbox).crm.objects.tasks
    owner = hubspot_sandbox.owners()[0]["id"]

    def create(**properties: str) -> object:
        return tasks.basic_api.create(SimplePublicObjectInputForCreate(properties=properties))

    with pytest.raises(TasksApiException, match="hs_timestamp is required"):
        create(hs_task_subject="x", hubspot_owner_id=owner)
    with pytest.raises(TasksApiException, match="INVALID_OPTION"):
        create(hs_task_subject="x", hs_timestamp="2026-03-20T00:00:00Z", hs_task_status="DONE")
    with pytest.raises(TasksApiException, match="INVALID_OWNER_ID"):
        create(hs_task_subject="x", hs_timestamp="2026-03-20T00:00:00Z", hubspot_owner_id="1")
    # A new task reaches search a moment after the create answers, as in HubSpot.
    hubspot_sandbox.portal.search_lag_ms = 60_000
    create(hs_task_subject="lagging", hs_timestamp="2026-03-20T00:00:00Z")
    request = PublicObjectSearchRequest(filter_groups=[{"filters": [
        {"propertyName": "hs_task_subject", "operator": "EQ", "value": "lagging"}]}])  # fmt: skip
    assert tasks.search_api.do_search(request).total == 0
    hubspot_sandbox.portal.search_lag_ms = 0
    assert tasks.search_api.do_search(request).total == 1
    # Tasks need the contacts scope.
    hubspot_sandbox.portal.scopes.discard("crm.objects.contacts.write")
    with pytest.raises(TasksApiException, match="MISSING_SCOPES"):
        create(hs_task_subject="x", hs_timestamp="2026-03-20T00:00:00Z")
