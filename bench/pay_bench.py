"""Benchmark what the pay cycle costs a recompute, and a close.

Builds a synthetic org in memory (default 2,000 reps, 200,000 deals over 12
months, a tiered plan with a recoverable draw, SPIFFs and clawbacks), closes
its first 11 months in a SQLite store, changes 1 % of the deals, and prints:

- the time to compute every statement with nothing closed, and with 11 months
  closed (closed statements returned as closed, late changes as adjustments),
  and their ratio;
- the time to close one month in the store (freeze its statements and deals,
  one transaction), and to load the closed months back (``Store.pay.books``).

Usage: python bench/pay_bench.py [--reps N] [--deals N] [--repeat N]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from connector.core.closing import Books
from connector.core.models import Deal, DealStatus, LineKind, Rep
from connector.core.periods import PeriodKind
from connector.core.plans import Plan
from connector.core.statements import calculate
from connector.store.state import Store

MONTH = PeriodKind.MONTH
AS_OF = date(2026, 12, 31)


def plan(reps: list[str]) -> Plan:
    return Plan.model_validate(
        {
            "id": "ae",
            "start": "2026-01-01",
            "members": reps,
            "quota": "100000",
            "commission": {
                "tiers": [
                    {"up_to": "1.0", "rate": "0.08"},
                    {"up_to": "1.5", "rate": "0.12"},
                    {"rate": "0.15"},
                ],
            },
            "draw": {"type": "recoverable", "amount": "2000", "periods": 3},
            "bonuses": [{"at": "1.0", "amount": "500"}],
            "spiffs": [{"name": "nb", "when": {"type": "New Business"}, "amount": "100"}],
            "clawback": {"window_days": 180},
        }
    )


def org(reps: int, deals: int, seed: int = 2026) -> tuple[list[Rep], list[Deal]]:
    rng = random.Random(seed)
    rep_list = [Rep(f"005B{i:014d}") for i in range(reps)]
    statuses = [DealStatus.WON] * 6 + [DealStatus.LOST] * 3 + [DealStatus.OPEN]
    result = []
    for index in range(deals):
        close = date(2026, 1, 1) + timedelta(days=rng.randrange(365))
        kind = rng.choice(["New Business", "Renewal"])
        result.append(
            Deal(
                f"006D{index:014d}",
                rng.choice(rep_list).id,
                Decimal(rng.randrange(1_000_00, 60_000_00)) / 100,
                close,
                rng.choice(statuses),
                type=kind,
                properties={"type": kind},
            )
        )
    return rep_list, result


def changed(deals: list[Deal], share: float, seed: int = 7) -> list[Deal]:
    rng = random.Random(seed)
    return [
        d._replace(amount=d.amount + Decimal(rng.randrange(-500_00, 500_00)) / 100)
        if rng.random() < share
        else d
        for d in deals
    ]


def best(repeat: int, run: object) -> float:
    assert callable(run)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--deals", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    reps, deals = org(args.reps, args.deals)
    plans = [plan([r.id for r in reps])]
    first = calculate(plans, reps, deals, period_kind=MONTH, as_of=AS_OF)
    closed = [s for s in first.statements if s.period <= "2026-11"]
    books = Books("2026-11", closed, {d.id: d for d in deals})
    later = changed(deals, 0.01)

    def plain() -> None:
        calculate(plans, reps, later, period_kind=MONTH, as_of=AS_OF)

    with_books_result = calculate(plans, reps, later, period_kind=MONTH, as_of=AS_OF, books=books)

    def with_books() -> None:
        calculate(plans, reps, later, period_kind=MONTH, as_of=AS_OF, books=books)

    adjustments = sum(
        1 for s in with_books_result.statements for line in s.lines
        if line.kind is LineKind.ADJUSTMENT
    )  # fmt: skip
    plain_s = best(args.repeat, plain)
    books_s = best(args.repeat, with_books)
    print(f"org: {args.reps:,} reps, {args.deals:,} deals, 11 of 12 months closed, 1 % changed")
    print(f"recompute, nothing closed:   {plain_s:7.2f} s")
    print(f"recompute, 11 months closed: {books_s:7.2f} s  ({books_s / plain_s:.2f}x), "
          f"{adjustments:,} adjustment lines")  # fmt: skip

    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(f"sqlite:///{Path(folder) / 'spm.db'}")
        now = datetime.now(UTC)
        month = [s for s in closed if s.period == "2026-01"]
        used = {line.deal_id for s in month for line in s.lines if line.deal_id}
        paid = [d for d in deals if d.id in used]
        started = time.perf_counter()
        store.pay.close("2026-01", month, paid, "bench", now, {})
        close_s = time.perf_counter() - started
        for period in [f"2026-{m:02d}" for m in range(2, 12)]:
            rows = [s for s in closed if s.period == period]
            used = {line.deal_id for s in rows for line in s.lines if line.deal_id}
            store.pay.close(period, rows, [d for d in deals if d.id in used], "bench", now, {})
        load_s = best(args.repeat, store.pay.books)
        store.close()
    print(f"close one month (SQLite):    {close_s:7.2f} s  ({len(month):,} statements)")
    print(f"load 11 closed months:       {load_s:7.2f} s  ({len(closed):,} statements)")


if __name__ == "__main__":
    main()
