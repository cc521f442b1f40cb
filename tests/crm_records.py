"""The sandboxes' records as `calc`'s CSV inputs: the oracle's side of the end-to-end tests.

Each returns (deals, splits, reps) for :func:`tests.crm_sync_helpers.calc_document`:
deals with their currency and the named extra ``columns``, split percents, and reps
with their manager (Salesforce) or primary team (HubSpot).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from crm_sandbox.hubspot import HubSpotSandbox
from crm_sandbox.hubspot.portal import DEAL_TYPE_VALUES
from crm_sandbox.salesforce import SalesforceSandbox
from tests.crm_sync_helpers import OracleDeal, OracleRep

Records = tuple[list[OracleDeal], list[tuple[str, str, Decimal]], list[OracleRep]]
TYPE_LABELS = {value: label for label, value in DEAL_TYPE_VALUES.items()}


def salesforce_records(sandbox: SalesforceSandbox, columns: Sequence[str] = ()) -> Records:
    deals = [
        OracleDeal(
            d["Id"],
            d["OwnerId"],
            d["Amount"],
            d["CloseDate"],
            "won" if d["IsWon"] else "lost" if d["IsClosed"] else "open",
            d["Type"] or "",
            None,
            d["CreatedDate"].date(),
            d.get("CurrencyIsoCode") or "",
            tuple((name, str(d[name])) for name in columns if d.get(name)),
        )
        for d in sandbox.opportunities()
    ]
    splits = [
        (s["OpportunityId"], s["SplitOwnerId"], s["SplitPercentage"]) for s in sandbox.splits()
    ]
    reps: list[OracleRep] = [
        (u["Id"], u["Name"], u["Email"], u["IsActive"], u["ManagerId"], None)
        for u in sandbox.users()
    ]
    return deals, splits, reps


def portal_day(text: str) -> date:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).date()


def hubspot_records(sandbox: HubSpotSandbox, columns: Sequence[str] = ()) -> Records:
    deals = []
    for d in sandbox.deals():
        stage = d["dealstage"]
        status = "won" if stage == "closedwon" else "lost" if stage == "closedlost" else "open"
        deals.append(
            OracleDeal(
                d["id"],
                d["hubspot_owner_id"],
                Decimal(d["amount"]),
                portal_day(d["closedate"]),
                status,
                TYPE_LABELS.get(d.get("dealtype", ""), ""),
                None,
                portal_day(d["createdate"]),
                d.get("deal_currency_code") or "",
                tuple((name, str(d[name])) for name in columns if d.get(name)),
            )
        )
    splits = [
        (deal_id, s.owner_id, s.fraction * 100)
        for deal_id, shares in sandbox.portal.splits.items()
        for s in shares
    ]
    reps: list[OracleRep] = [
        (
            o["id"],
            f"{o['firstName']} {o['lastName']}",
            o["email"],
            not o["archived"],
            None,
            next((str(t["id"]) for t in o["teams"] if t.get("primary")), None),
        )
        for o in sandbox.owners()
    ]
    return deals, splits, reps
