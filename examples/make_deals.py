"""Regenerate examples/deals.csv and examples/splits.csv (deterministic: same output every run).

    python examples/make_deals.py

A year (2026) of about 300 deals for the reps in examples/reps.csv: mostly
random won, lost and open deals, plus hand-placed ones that exercise every
rule of the example plans — cancellations inside and outside the clawback
window and within the same month, a credit note, a clawback that lands after
a rep has left (calc warns and drops it), a deal owned by someone on no plan.
"""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
YEAR_START = date(2026, 1, 1)

# owner id → (weight, first day they can close a deal, last day)
OWNERS = {
    "005070000000003AAA": (5, date(2026, 1, 1), date(2026, 12, 31)),
    "005070000000004AAA": (5, date(2026, 1, 1), date(2026, 12, 31)),
    "005070000000005AAA": (6, date(2026, 1, 1), date(2026, 12, 31)),
    "005070000000006AAA": (4, date(2026, 6, 15), date(2026, 12, 31)),
    "005070000000007AAA": (5, date(2026, 1, 1), date(2026, 8, 31)),
    "005070000000008AAA": (2, date(2026, 1, 1), date(2026, 12, 31)),
    "005070000000009AAA": (2, date(2026, 3, 2), date(2026, 12, 31)),
    "005070000000001AAA": (1, date(2026, 1, 1), date(2026, 12, 31)),  # on no plan: ignored
}
# The sandbox's default seed users (`spm-connector sandbox`): the same ids and emails.
AES = tuple(f"00507000000000{n}AAA" for n in range(3, 8))
SES = ("005070000000008AAA", "005070000000009AAA")
TYPES = ("New Business", "New Business", "Upsell", "Renewal")
SOURCES = ("Inbound", "Outbound", "Partner")
HEADER = ("id", "owner_id", "amount", "currency", "close_date", "status", "cancel_date", "type")


def deal_id(number: int) -> str:
    return f"006Dk{number:010d}"  # shaped like a 15-character Salesforce Opportunity id


def money(rng: random.Random, low: int, high: int) -> str:
    dollars = rng.randrange(low, high) // 50 * 50
    cents = rng.choice((0, 0, 0, 50, rng.randrange(100)))
    return f"{dollars}.{cents:02d}"


def random_deals(rng: random.Random, count: int) -> list[dict[str, str]]:
    owners = list(OWNERS)
    weights = [OWNERS[owner][0] for owner in owners]
    deals: list[dict[str, str]] = []
    for number in range(1, count + 1):
        owner = rng.choices(owners, weights)[0]
        _, first, last = OWNERS[owner]
        close = first + timedelta(days=rng.randrange((last - first).days + 1))
        status = rng.choices(("won", "lost", "open"), (55, 25, 20))[0]
        if status == "open":  # open deals are mostly expected late in the year
            close = max(close, date(2026, 10, 1) + timedelta(days=rng.randrange(92)))
            close = min(close, last)
        low, high = (3_000, 15_000) if owner in SES else (4_000, 42_000)
        deals.append(
            {
                "id": deal_id(number),
                "owner_id": owner,
                "amount": money(rng, low, high),
                "currency": "USD",
                "close_date": close.isoformat(),
                "status": status,
                "cancel_date": "",
                "type": rng.choice(TYPES),
                "source": rng.choice(SOURCES),
            }
        )
    return deals


def cancel(deal: dict[str, str], days: int) -> None:
    """A won deal reversed ``days`` after it closed."""
    closed = date.fromisoformat(deal["close_date"])
    deal["status"] = "cancelled"
    deal["cancel_date"] = (closed + timedelta(days=days)).isoformat()


def special_deals(start: int) -> list[dict[str, str]]:
    """Hand-placed deals, one per rule worth seeing in the output."""

    def deal(
        owner: str, amount: str, close: str, status: str, kind: str, cancel: str = ""
    ) -> dict[str, str]:
        nonlocal start
        start += 1
        return {
            "id": deal_id(start),
            "owner_id": owner,
            "amount": amount,
            "currency": "USD",
            "close_date": close,
            "status": status,
            "cancel_date": cancel,
            "type": kind,
            "source": "Outbound",
        }

    ae1, ae2, dana, _, farah = AES
    return [
        # cancelled 51 days later, inside the 90-day window: clawed back in April
        deal(ae1, "24000.00", "2026-02-10", "cancelled", "New Business", "2026-04-02"),
        # cancelled 146 days later, outside the window: no clawback
        deal(ae2, "18500.00", "2026-01-20", "cancelled", "Upsell", "2026-06-15"),
        # cancelled in the month it closed: counts as lost
        deal(dana, "31000.00", "2026-05-05", "cancelled", "New Business", "2026-05-20"),
        # a credit note on a renewal: negative bookings
        deal(dana, "-2500.00", "2026-07-14", "won", "Renewal"),
        # closed before Noor left, cancelled after: no statement to claw back in (a warning)
        deal(farah, "15000.00", "2026-08-10", "cancelled", "New Business", "2026-09-20"),
    ]


def splits(rng: random.Random, deals: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    """A few AE deals shared with a sales engineer (70/30) or another AE (50/50)."""
    won = [
        d
        for d in deals
        if d["status"] == "won"
        and d["owner_id"] in AES
        and d["close_date"] >= "2026-03-02"
        and not d["amount"].startswith("-")
    ]
    rows: list[tuple[str, str, str]] = []
    for d in rng.sample(won, 10):
        rows.append((d["id"], d["owner_id"], "70"))
        rows.append((d["id"], rng.choice(SES), "30"))
    pair = [d for d in won if d["owner_id"] == "005070000000003AAA"][:2]
    for d in pair:
        rows.append((d["id"], "005070000000003AAA", "50"))
        rows.append((d["id"], "005070000000004AAA", "50"))
    return rows


def main() -> None:
    rng = random.Random(2026)
    deals = random_deals(rng, 295)
    # A handful of random won deals are reversed later, at various distances.
    distances = (12, 35, 70, 88, 120, 200)
    for d, days in zip(
        rng.sample([d for d in deals if d["status"] == "won"], len(distances)),
        distances,
        strict=True,
    ):
        cancel(d, days)
    deals += special_deals(len(deals))
    split_rows = splits(rng, [d for d in deals if d["status"] == "won"])
    deals.sort(key=lambda d: (d["close_date"], d["id"]))

    with (HERE / "deals.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, (*HEADER, "source"), lineterminator="\n")
        writer.writeheader()
        writer.writerows(deals)
    with (HERE / "splits.csv").open("w", encoding="utf-8", newline="") as handle:
        writer_ = csv.writer(handle, lineterminator="\n")
        writer_.writerow(("deal_id", "rep_id", "percent"))
        writer_.writerows(sorted(split_rows))


if __name__ == "__main__":
    main()
