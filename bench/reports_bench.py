"""Benchmark the reports page: render time of /reports with a large team.

Builds a store with N reps (default 1,000), a year of deals for each, computes
their statements with the engine, then times GET /reports and one rep's
statement page through the Flask app (median of several runs), and prints the
page size.

Usage: python bench/reports_bench.py [--reps 1000] [--deals-per-rep 40] [--runs 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connector.config import load_config  # noqa: E402
from connector.core.models import CrmUser, Deal, DealStatus, PeriodKind, Rep  # noqa: E402
from connector.core.statements import calculate  # noqa: E402
from connector.store.cursors import AS_OF_PERIOD_CURSOR  # noqa: E402
from connector.store.state import Store  # noqa: E402
from webhooks.app import create_app  # noqa: E402

TOKEN = "bench-token"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--deals-per-rep", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="spm-reports-bench-"))
    rep_ids = [f"005BENCH{index:010d}" for index in range(args.reps)]
    config_path = directory / "spm.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "currency": "USD",
                "period": "month",
                "store": f"sqlite:///{directory / 'spm.db'}",
                "plans": [
                    {
                        "id": "ae",
                        "start": "2026-01-01",
                        "members": rep_ids,
                        "quota": "50000",
                        "commission": {
                            "tiers": [{"up_to": "1.0", "rate": "0.08"}, {"rate": "0.12"}]
                        },
                        "draw": {"type": "recoverable", "amount": "2000", "periods": 3},
                    }
                ],
            }
        )
    )
    config = load_config(config_path)
    rng = random.Random(3)
    deals = [
        Deal(
            f"006B{index:07d}{n:03d}",
            rep_id,
            Decimal(rng.randint(1_000, 40_000)),
            date(2026, rng.randint(1, 12), rng.randint(1, 28)),
            DealStatus.WON if rng.random() < 0.6 else DealStatus.OPEN,
        )
        for index, rep_id in enumerate(rep_ids)
        for n in range(args.deals_per_rep)
    ]
    reps = [
        Rep(rep_id, f"Rep {index:04d}", f"rep{index}@acme.example")
        for index, rep_id in enumerate(rep_ids)
    ]
    statements = calculate(
        config.plans, reps, deals, period_kind=PeriodKind.MONTH, as_of=date(2026, 12, 31)
    ).statements
    with Store.open(config.store) as store:
        store.users.upsert(
            [CrmUser(r.id, r.name, r.email, True) for r in reps], fetched_at=datetime.now(UTC)
        )
        store.statements.replace(rep_ids, statements)
        store.cursors.set(AS_OF_PERIOD_CURSOR, "2026-12")
    print(f"{args.reps:,} reps, {len(deals):,} deals, {len(statements):,} statements")

    app = create_app(config, environ={"SPM_ADMIN_TOKEN": TOKEN})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for label, path in (
        ("/reports", "/reports"),
        ("a statement page", f"/reports/statements/{rep_ids[0]}"),
    ):
        times, size = [], 0
        for _ in range(args.runs):
            started = time.perf_counter()
            reply = client.get(path, headers=headers)
            times.append(time.perf_counter() - started)
            assert reply.status_code == 200, reply.status_code
            size = len(reply.data)
        print(
            f"{label}: median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}) over {args.runs} runs; "
            f"{size / 1024:.0f} KiB"
        )


if __name__ == "__main__":
    main()
