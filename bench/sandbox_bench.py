"""Benchmark the CRM sandbox: seed a large org and pull every deal through the real clients.

- Salesforce: a full ``query_all_iter`` of the opportunities through simple-salesforce
  over HTTPS (2,000 per page).
- HubSpot: a full deal listing through hubspot-api-client (100 per page).

Prints seeding time, pull time and records per second for each. Target: each
pull of 100,000 records under 15 s on a 2-core machine.

Usage: python bench/sandbox_bench.py [--deals 100000] [--reps 200] [--crm both]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SOQL = (
    "SELECT Id, Name, OwnerId, Amount, CloseDate, StageName, IsWon, IsClosed, Type, "
    "SystemModstamp, IsDeleted FROM Opportunity ORDER BY SystemModstamp, Id"
)
HUBSPOT_PROPERTIES = [
    "dealname",
    "amount",
    "closedate",
    "dealstage",
    "pipeline",
    "hubspot_owner_id",
    "hs_lastmodifieddate",
]


def report(crm: str, seeded_s: float, pulled_s: float, records: int) -> None:
    verdict = "met" if pulled_s < 15 else "NOT met"
    print(
        f"{crm:<11} seed {seeded_s:6.1f} s   pull {records:,} records in {pulled_s:6.2f} s   "
        f"{records / pulled_s:9,.0f} records/s   (target < 15 s: {verdict})",
        flush=True,
    )


def salesforce(deals: int, reps: int) -> None:
    from simple_salesforce import Salesforce

    from crm_sandbox.salesforce import SalesforceSandbox

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        sandbox = SalesforceSandbox(deals=deals, reps=reps, ca_path=Path(tmp) / "ca.pem").start()
        seeded = time.perf_counter() - started
        try:
            sf = Salesforce(
                instance_url=sandbox.url,
                session_id=sandbox.token,
                session=sandbox.session(),
                parse_float=Decimal,
            )
            started = time.perf_counter()
            records = sum(1 for _ in sf.query_all_iter(SOQL, include_deleted=True))
            report("salesforce", seeded, time.perf_counter() - started, records)
        finally:
            sandbox.stop()


def hubspot(deals: int, reps: int) -> None:
    from hubspot import HubSpot

    from crm_sandbox.hubspot import HubSpotSandbox

    started = time.perf_counter()
    sandbox = HubSpotSandbox(deals=deals, reps=reps).start()
    seeded = time.perf_counter() - started
    try:
        client = HubSpot(access_token=sandbox.token, host=sandbox.url)
        started = time.perf_counter()
        records, after = 0, None
        while True:
            page = client.crm.deals.basic_api.get_page(
                limit=100, after=after, properties=HUBSPOT_PROPERTIES
            )
            records += len(page.results)
            if page.paging is None or page.paging.next is None:
                break
            after = page.paging.next.after
        report("hubspot", seeded, time.perf_counter() - started, records)
    finally:
        sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--crm", choices=["salesforce", "hubspot", "both"], default="both")
    args = parser.parse_args()
    if args.crm in ("salesforce", "both"):
        salesforce(args.deals, args.reps)
    if args.crm in ("hubspot", "both"):
        hubspot(args.deals, args.reps)


if __name__ == "__main__":
    main()
