"""Estimated commission on both sandboxes: written on open deals, and honoured at close."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crm_sandbox.hubspot import HubSpotSandbox
from crm_sandbox.salesforce import SalesforceSandbox
from tests.fixtures.crm_pair import Crm

pytestmark = pytest.mark.usefixtures("fast_retries")


def deal_fields(crm: Crm) -> dict[str, dict[str, object]]:
    """Each deal as the CRM holds it: owner, open or not, our commission and estimate."""
    found: dict[str, dict[str, object]] = {}
    if isinstance(crm.sandbox, SalesforceSandbox):
        for d in crm.sandbox.opportunities():
            found[d["Id"]] = {
                "owner": d["OwnerId"],
                "open": not d["IsClosed"],
                "commission": d["SPM_Commission__c"],
                "estimate": d["SPM_Estimated_Commission__c"],
            }
    else:
        assert isinstance(crm.sandbox, HubSpotSandbox)
        for d in crm.sandbox.deals():
            money = {k: Decimal(d[k]) if d.get(k) else None
                     for k in ("spm_commission", "spm_estimated_commission")}  # fmt: skip
            found[d["id"]] = {
                "owner": d.get("hubspot_owner_id"),
                "open": d["dealstage"] not in ("closedwon", "closedlost"),
                "commission": money["spm_commission"],
                "estimate": money["spm_estimated_commission"],
            }
    return found


def test_open_deals_carry_their_estimate_and_a_deal_closed_today_earns_it(crm: Crm) -> None:
    crm.ok("install")
    crm.ok("sync")
    deals = deal_fields(crm)
    estimated = {i: d for i, d in deals.items() if d["open"] and d["estimate"] is not None}
    assert len(estimated) >= 5
    assert all(d["estimate"] is None for d in deals.values() if not d["open"])
    # The reports page's figure: each rep's share of their open deals' estimates; over
    # all reps, every open deal's estimate once.
    today = datetime.now(UTC).strftime("%Y-%m")
    with crm.store() as store:
        shown = sum(
            (s.estimated_commission or Decimal(0) for s in store.statements.in_period(today)),
            Decimal(0),
        )
    assert shown == sum((Decimal(str(d["estimate"])) for d in estimated.values()), Decimal(0))

    # The largest estimate's deal closes today as it stands: it earns exactly that.
    chosen = max(estimated, key=lambda i: Decimal(str(estimated[i]["estimate"])))
    crm.sandbox.close_deal(chosen, won=True, on=datetime.now(UTC).date())
    crm.ok("sync")
    after = deal_fields(crm)[chosen]
    assert Decimal(str(after["commission"])) == Decimal(str(estimated[chosen]["estimate"]))
    assert after["estimate"] is None
