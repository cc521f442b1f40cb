"""Benchmark `spm-connector sync` against the local sandbox.

For each org size: start a seeded sandbox, run `install`, then time a full
sync and a 1 % incremental sync (amounts changed on 1 % of the deals) through
the real CLI in this process, and print for each:

- wall time;
- API calls the sandbox served, against the lower bound
  ``ceil(records read / page) + ceil(records written / batch)`` and against a
  naive loop that writes one record per call;
- records read and written.

After the 1 % step, one open deal's amount changes: the sync rewrites that
deal's estimated commission (and its owner's figures), and other open deals'
estimates only where the owner's tier position moved. About a fifth of the
seeded deals are open: 50,000 deals give 10,000 open deals, each with an
estimate written by the full sync.

Usage: python bench/sync_bench.py [--crm salesforce|hubspot] [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.cli import cli

AS_OF = "2026-12-31"


@dataclass
class Figures:
    label: str
    seconds: float
    calls: int
    read: int
    written: int
    page: int
    batch: int
    waited: str = ""
    search_read: int = 0  # HubSpot: records read by search, 200 a page
    split_reads: int = 0  # HubSpot: split batch reads, one per 100 deals that are or were won

    @property
    def lower_bound(self) -> int:
        listed = self.read - self.search_read
        return (
            math.ceil(listed / self.page)
            + math.ceil(self.search_read / 200)
            + math.ceil(self.written / self.batch)
            + self.split_reads
        )

    @property
    def naive(self) -> int:
        return math.ceil(self.read / self.page) + self.written

    def row(self) -> str:
        verdict = "ok" if self.calls <= self.lower_bound + 5 else "OVER"
        return (
            f"{self.label:<28} {self.seconds:>8.1f} s {self.calls:>7} calls "
            f"(bound {self.lower_bound}+5 {verdict}, naive {self.naive}) "
            f"read {self.read:>7} written {self.written:>7}{self.waited}"
        )


def config_for(directory: Path, crm: dict[str, Any], members: list[str]) -> Path:
    config = {
        "currency": "USD",
        "period": "month",
        "timezone": "UTC",
        "crm": crm,
        "store": f"sqlite:///{directory / 'spm.db'}",
        "plans": [
            {
                "id": "ae",
                "name": "AEs",
                "start": "2026-01-01",
                "end": "2026-12-31",
                "members": members,
                "quota": "150000",
                "commission": {
                    "method": "marginal",
                    "tiers_on": "attainment",
                    "tiers": [{"up_to": "1.0", "rate": "0.08"}, {"rate": "0.12"}],
                },
                "draw": {"type": "recoverable", "amount": "2000", "periods": 3},
                "spiffs": [{"name": "new", "when": {"type": "New Business"}, "amount": "100"}],
                "clawback": {"window_days": 90},
            }
        ],
    }
    path = directory / "spm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cli_run(config: Path, env: dict[str, str], *args: str) -> None:
    result = CliRunner().invoke(cli, ["--config", str(config), *args], env=env)
    if result.exit_code != 0:
        raise SystemExit(f"{' '.join(args)} failed ({result.exit_code}):\n{result.output}")


def salesforce(size: int, reps: int, directory: Path) -> list[Figures]:
    from crm_sandbox.salesforce import SalesforceSandbox

    figures = []
    with SalesforceSandbox(reps=reps, deals=size, ca_path=directory / "ca.pem") as sandbox:
        settings = sandbox.settings()
        members = [u["Id"] for u in sandbox.users()]
        config = config_for(directory, settings["crm"], members)
        env = dict(settings["env"])
        cli_run(config, env, "install")

        def measured(label: str) -> Figures:
            sandbox.calls.reset()
            started = time.perf_counter()
            cli_run(config, env, "sync", "--as-of", AS_OF)
            seconds = time.perf_counter() - started
            calls = sandbox.calls.calls()
            return Figures(
                label,
                seconds,
                len(calls),
                sum(c.records for c in calls if c.kind == "query_page"),
                sum(c.records for c in calls if c.kind == "composite_update"),
                page=2000,
                batch=200,
            )

        figures.append(measured(f"salesforce full {size:,}"))
        rng = random.Random(size)
        deals = [d for d in sandbox.opportunities() if d["IsWon"]]
        for deal in rng.sample(deals, max(1, size // 100)):
            sandbox.set_amount(deal["Id"], deal["Amount"] + Decimal(rng.randrange(100, 5000)))
        figures.append(measured(f"salesforce 1% incr {size:,}"))
        figures.append(measured(f"salesforce idle {size:,}"))
        opened = next(d for d in sandbox.opportunities() if not d["IsClosed"])
        sandbox.set_amount(opened["Id"], opened["Amount"] + Decimal(1000))
        figures.append(measured(f"salesforce 1 open deal {size:,}"))
    return figures


def hubspot(size: int, reps: int, directory: Path) -> list[Figures]:
    from crm_sandbox.hubspot import HubSpotSandbox

    figures = []
    with HubSpotSandbox(reps=reps, deals=size) as sandbox:
        settings = sandbox.settings()
        members = [str(o["id"]) for o in sandbox.portal.owners.values()]
        config = config_for(directory, settings["crm"], members)
        env = dict(settings["env"])
        cli_run(config, env, "install")

        def measured(label: str) -> Figures:
            sandbox.calls.reset()
            started = time.perf_counter()
            cli_run(config, env, "sync", "--as-of", AS_OF)
            seconds = time.perf_counter() - started
            calls = sandbox.calls.calls()
            read_kinds = ("owners_page", "deal_list_page", "deal_search", "user_list_page")
            rate_limited = sum(1 for c in calls if c.status == 429)
            return Figures(
                label,
                seconds,
                len(calls),
                sum(c.records for c in calls if c.kind in read_kinds),
                sum(c.records for c in calls if c.kind.endswith("batch_update")),
                page=100,
                batch=100,
                waited=f" 429s {rate_limited}",
                search_read=sum(c.records for c in calls if c.kind == "deal_search"),
                split_reads=sum(1 for c in calls if c.kind == "split_batch_read"),
            )

        figures.append(measured(f"hubspot full {size:,}"))
        rng = random.Random(size)
        ids = list(sandbox.portal.deal_ids)
        for deal_id in rng.sample(ids, max(1, size // 100)):
            sandbox.set_amount(deal_id, Decimal(rng.randrange(1000, 90000)))
        figures.append(measured(f"hubspot 1% incr {size:,}"))
        figures.append(measured(f"hubspot idle {size:,}"))
        opened = next(
            d for d in sandbox.deals() if d["dealstage"] not in ("closedwon", "closedlost")
        )
        sandbox.set_amount(opened["id"], Decimal(opened["amount"]) + 1000)
        figures.append(measured(f"hubspot 1 open deal {size:,}"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", choices=["salesforce", "hubspot", "both"], default="both")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    crms = ["salesforce", "hubspot"] if args.crm == "both" else [args.crm]
    for crm in crms:
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix="spm-sync-bench-") as tmp:
                run = salesforce if crm == "salesforce" else hubspot
                for figures in run(size, args.reps, Path(tmp)):
                    print(figures.row(), flush=True)


if __name__ == "__main__":
    main()
