"""HubSpot's real batch semantics, held by the sandbox and met by the adapter.

- A batch naming one record twice is refused whole (400 "Duplicate IDs found").
- A 207 names a failed input by its ``objectWriteTraceId`` alone; a write counts
  as done only when the answer lists it.
- 423 Locked is waited out (about 2 s) and retried like a 429.
- ``PROPERTY_DOESNT_EXIST`` in an older body without ``errors[]`` still says "run install".
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import requests
from hubspot.crm.deals import ApiException
from pydantic import SecretStr

from connector.adapters.hubspot import HubSpotAdapter, HubSpotSettings
from connector.adapters.hubspot.api import mapped as _mapped
from connector.adapters.retry import RetryPolicy
from connector.core.fields import CATALOGUE, RecordKind
from connector.core.models import RecordUpdate
from connector.errors import CrmConfigError, RetryableError
from crm_sandbox.hubspot import HubSpotSandbox
from crm_sandbox.hubspot.records import USERS
from tests.fixtures.hubspot_sandbox import MakeHubSpotSandbox
from tests.test_hubspot_sync import AS_OF, assert_crm_matches, installed, oracle, portal_for


def adapter_for(sandbox: HubSpotSandbox, waits: list[float] | None = None) -> HubSpotAdapter:
    sleep = waits.append if waits is not None else (lambda _s: None)
    return HubSpotAdapter(
        HubSpotSettings(base_url=sandbox.url),
        SecretStr(sandbox.token),
        retry=RetryPolicy(attempts=4, initial_s=0.01, maximum_s=5.0, sleep=sleep),
    )


def post(sandbox: HubSpotSandbox, path: str, body: object) -> requests.Response:
    return requests.post(
        sandbox.url + path,
        json=body,
        headers={"Authorization": f"Bearer {sandbox.token}"},
        timeout=10,
    )


def test_sandbox_refuses_a_batch_that_repeats_an_id(hubspot_sandbox: HubSpotSandbox) -> None:
    deal = hubspot_sandbox.deals()[0]["id"]
    inputs = [{"id": deal, "properties": {"dealname": n}} for n in ("a", "b")]
    answer = post(hubspot_sandbox, "/crm/v3/objects/deals/batch/update", {"inputs": inputs})
    assert answer.status_code == 400
    body = answer.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith(f"Duplicate IDs found in batch input: [{deal}]")
    assert hubspot_sandbox.portal.deal(deal).properties["dealname"] not in ("a", "b")
    read = post(
        hubspot_sandbox,
        "/crm/v3/objects/deals/batch/read",
        {"inputs": [{"id": deal}, {"id": deal}], "properties": ["dealname"]},
    )
    assert read.status_code == 400


def test_sandbox_names_failed_inputs_by_trace_id(hubspot_sandbox: HubSpotSandbox) -> None:
    deals = [d["id"] for d in hubspot_sandbox.deals()[:2]]
    hubspot_sandbox.faults.update({"locked_ids": [deals[0]], "lock_failures": 1})
    inputs = [
        {"id": d, "objectWriteTraceId": f"t{i}", "properties": {"dealname": f"n{i}"}}
        for i, d in enumerate(deals)
    ]
    answer = post(hubspot_sandbox, "/crm/v3/objects/deals/batch/update", {"inputs": inputs})
    assert answer.status_code == 207
    body = answer.json()
    assert body["numErrors"] == 1
    assert body["errors"][0]["context"] == {"objectWriteTraceId": ["t0"]}
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["t1"]


def test_repeated_and_shared_records_never_go_in_one_batch(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    adapter = adapter_for(hubspot_sandbox)
    adapter.ensure_fields(CATALOGUE, dry_run=False)
    deal = hubspot_sandbox.deals()[0]["id"]
    record = next(iter(hubspot_sandbox.portal.stores[USERS].by_id))
    hubspot_sandbox.calls.reset()
    deal_results = adapter.write(
        RecordKind.DEAL,
        [
            RecordUpdate(deal, {"commission": "10.00"}),
            RecordUpdate(deal, {"commission_period": "2026-03"}),
        ],
    )
    # Two owners whose values land on one user record (matched by the same email).
    rep_results = adapter.write(
        RecordKind.REP,
        [
            RecordUpdate("1001", {"payout": "5.00"}, target_id=record),
            RecordUpdate("1002", {"payout": "7.00"}, target_id=record),
        ],
    )
    assert all(r.ok for r in deal_results + rep_results)
    statuses = [c.status for c in hubspot_sandbox.calls.calls()]
    assert 400 not in statuses
    assert len(hubspot_sandbox.calls.calls("deal_batch_update")) == 1  # merged into one input
    assert len(hubspot_sandbox.calls.calls("user_batch_update")) == 2  # one round each
    props = hubspot_sandbox.portal.deal(deal).properties
    assert props["spm_commission"] == "10.00" and props["spm_commission_period"] == "2026-03"
    assert hubspot_sandbox.portal.stores[USERS].by_id[record].properties["spm_payout"] == "7.00"


def test_a_failure_named_by_trace_id_is_not_counted_as_written(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    adapter = adapter_for(hubspot_sandbox)
    adapter.ensure_fields(CATALOGUE, dry_run=False)
    first, second = (d["id"] for d in hubspot_sandbox.deals()[:2])
    hubspot_sandbox.faults.update({"locked_ids": [first], "lock_failures": 100})
    results = adapter.write(
        RecordKind.DEAL,
        [RecordUpdate(first, {"commission": "1.00"}), RecordUpdate(second, {"commission": "2.00"})],
    )
    assert [(r.ok, r.code) for r in results] == [(False, "CONFLICT"), (True, "")]
    assert "spm_commission" not in hubspot_sandbox.portal.deal(first).properties
    assert hubspot_sandbox.portal.deal(second).properties["spm_commission"] == "2.00"


def test_a_trace_id_failure_stays_owed_and_the_next_sync_repairs_it(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts, _initial, _maximum, sleep, seed, on_wait = RetryPolicy.__init__.__defaults__ or ()
    monkeypatch.setattr(  # the CLI's own policy, with short waits
        RetryPolicy.__init__, "__defaults__", (attempts, 0.01, 0.05, sleep, seed, on_wait)
    )
    portal = portal_for(make_hubspot_sandbox(reps=6, deals=120), tmp_path)
    installed(portal)
    won = [d["id"] for d in portal.sandbox.deals() if d["dealstage"] == "closedwon"][:3]
    portal.sandbox.faults.update({"locked_ids": won, "lock_failures": 1_000})
    first = portal.cli("sync", "--as-of", AS_OF.isoformat())
    assert first.exit_code == 1, first.output
    assert "CONFLICT" in first.output
    for deal in won:
        assert "spm_commission" not in portal.sandbox.portal.deal(deal).properties
    portal.sandbox.faults.update({"locked_ids": []})
    again = portal.cli("sync", "--as-of", AS_OF.isoformat())
    assert again.exit_code == 0, again.output
    assert_crm_matches(portal, oracle(portal, AS_OF), AS_OF)


def test_423_locked_is_waited_out_and_retried(hubspot_sandbox: HubSpotSandbox) -> None:
    waits: list[float] = []
    adapter = adapter_for(hubspot_sandbox, waits)
    adapter.ensure_fields(CATALOGUE, dry_run=False)
    deal = hubspot_sandbox.deals()[0]["id"]
    hubspot_sandbox.faults.update({"locked_writes": 2})
    results = adapter.write(RecordKind.DEAL, [RecordUpdate(deal, {"commission": "3.00"})])
    assert results[0].ok
    assert waits == [2.0, 2.0]
    assert [c.status for c in hubspot_sandbox.calls.calls("deal_batch_update")][-1] == 200
    assert hubspot_sandbox.portal.deal(deal).properties["spm_commission"] == "3.00"


def test_423_locked_converges_in_a_sync(
    make_hubspot_sandbox: MakeHubSpotSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    attempts, initial, maximum, _sleep, seed, on_wait = RetryPolicy.__init__.__defaults__ or ()
    monkeypatch.setattr(  # the CLI's own policy: record the 2-second lock waits, do not sleep
        RetryPolicy.__init__,
        "__defaults__",
        (attempts, initial, maximum, waits.append, seed, on_wait),
    )
    portal = portal_for(make_hubspot_sandbox(reps=6, deals=120), tmp_path)
    installed(portal)
    portal.sandbox.faults.update({"locked_writes": 3})
    result = portal.cli("sync", "--as-of", date(2026, 12, 31).isoformat())
    assert result.exit_code == 0, result.output
    assert portal.sandbox.faults.locked_writes == 0
    assert waits.count(2.0) == 3
    assert_crm_matches(portal, oracle(portal, AS_OF), AS_OF)


def test_property_doesnt_exist_without_errors_array_says_run_install() -> None:
    older = ApiException(status=400, reason="Bad Request")
    older.body = json.dumps(
        {
            "status": "error",
            "message": 'Property values were not valid: [{"isValid":false,"message":"Property '
            '\\"spm_commission\\" does not exist","error":"PROPERTY_DOESNT_EXIST",'
            '"name":"spm_commission"}]',
            "correlationId": "4d6f2e0a-0000-4000-8000-000000000000",
            "category": "VALIDATION_ERROR",
        }
    )
    mapped = _mapped(older, "https://api.hubapi.com", "/crm/v3/objects/deals/batch/update")
    assert isinstance(mapped, CrmConfigError)
    assert "spm-connector install" in str(mapped)


def test_423_maps_to_a_wait_of_at_least_two_seconds() -> None:
    locked = ApiException(status=423, reason="Locked")
    locked.body = json.dumps({"status": "error", "message": "locked", "category": "LOCKED"})
    mapped = _mapped(locked, "https://api.hubapi.com")
    assert isinstance(mapped, RetryableError)
    assert mapped.retry_after == 2.0 and mapped.status == 423
