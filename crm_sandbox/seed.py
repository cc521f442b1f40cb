"""Deterministic, CRM-neutral sample organisations for the sandbox emulators.

Both emulators turn the same :class:`SeedOrg` into their own records, so a
Salesforce sandbox and a HubSpot sandbox seeded alike hold the same business:
the same reps, managers, deals, amounts, stages, reversals and splits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

FIRST_NAMES = (
    "Dana",
    "Lee",
    "Priya",
    "Marco",
    "Aiko",
    "Sam",
    "Noor",
    "Jonas",
    "Ines",
    "Tariq",
    "Olivia",
    "Chen",
    "Mateo",
    "Freya",
    "Kwame",
    "Sofia",
    "Ravi",
    "Elena",
    "Yusuf",
    "Hana",
)
LAST_NAMES = (
    "Reyes",
    "Okafor",
    "Lindqvist",
    "Nakamura",
    "Patel",
    "Moreau",
    "Schmidt",
    "Haddad",
    "Kowalski",
    "Silva",
    "Brennan",
    "Ito",
    "Adeyemi",
    "Novak",
    "Garcia",
    "Larsen",
)
COMPANIES = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Aperture",
    "Vandelay",
    "Gringotts",
    "Oscorp",
    "Nakatomi",
)
PRODUCTS = ("Platform", "Analytics", "Support Plus", "Seats", "Onboarding", "API Tier")
DEAL_TYPES = ("New Business", "Existing Business", "Renewal")

# Open stages in pipeline order; closed outcomes are "won" and "lost".
OPEN_STAGES = ("prospecting", "qualification", "proposal", "negotiation")
OPEN_STAGE_PROBABILITY = {
    "prospecting": Decimal("0.1"),
    "qualification": Decimal("0.2"),
    "proposal": Decimal("0.6"),
    "negotiation": Decimal("0.8"),
}


@dataclass(frozen=True)
class SeedRep:
    index: int
    first_name: str
    last_name: str
    email: str
    manager_index: int | None
    active: bool
    created_at: datetime

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class SeedSplit:
    rep_index: int
    percent: Decimal


@dataclass(frozen=True)
class SeedDeal:
    index: int
    name: str
    owner_index: int
    amount: Decimal
    close_date: date
    stage: str  # one of OPEN_STAGES, "won" or "lost" (a reversed deal is "lost")
    type: str
    created_at: datetime
    modified_at: datetime
    # The day a won deal was reversed (it was "won" until then, "lost" after).
    reversed_on: date | None = None
    splits: tuple[SeedSplit, ...] = ()

    @property
    def is_closed(self) -> bool:
        return self.stage in ("won", "lost")

    @property
    def is_won(self) -> bool:
        return self.stage == "won"


@dataclass(frozen=True)
class SeedQuota:
    """A rep's monthly quota as the CRM's forecasting / goals keep it."""

    rep_index: int
    month: date  # the first day of the month
    amount: Decimal
    quantity: int  # deals to win


@dataclass(frozen=True)
class SeedLead:
    index: int
    owner_index: int
    created_at: datetime
    converted: bool


@dataclass(frozen=True)
class SeedOrg:
    seed: int
    year: int
    reps: tuple[SeedRep, ...]
    deals: tuple[SeedDeal, ...] = field(default=())
    quotas: tuple[SeedQuota, ...] = field(default=())
    leads: tuple[SeedLead, ...] = field(default=())


def _at(day: date, rng: random.Random) -> datetime:
    moment = time(hour=rng.randrange(8, 19), minute=rng.randrange(60), second=rng.randrange(60))
    return datetime.combine(day, moment, tzinfo=UTC)


# How each seller performs against quota over the year: most near it, one star, one
# struggler, so a leaderboard looks like a sales team's (roughly 40-160 % attainment).
STAR, STRUGGLER = Decimal("1.55"), Decimal("0.45")
WIN_RATE = 0.6  # of closed deals; about 2 % of won deals are reversed later
PIPELINE_DAYS = 90  # open deals close within this many days after today


def generate(
    seed: int = 7,
    reps: int = 12,
    deals: int = 400,
    year: int = 2026,
    today: date | None = None,
) -> SeedOrg:
    """Build a plausible organisation: managers over teams of reps, a year of deals.

    About 1 rep in 6 is a manager. Deals closed from the start of ``year`` to the
    day before ``today`` (default: the year's last day) are won or lost, and every
    seeded stamp is before today; open deals, at every stage, close in the
    ``PIPELINE_DAYS`` after today (a quarter of them slipped: still open up to 30
    days past their close date). Won amounts are drawn
    around each seller's monthly quota (the CRM quotas of :func:`_quotas_and_leads`)
    times the seller's performance, so attainment spreads as a real team's does;
    the last seller joined as the year began, with quotas ramping over its first
    quarter. About 2 % of won deals are reversed 10-120 days later (if that is
    not after today), and about 5 % are split between two reps.
    """
    if reps < 1:
        raise ValueError("a seeded org needs at least one rep")
    rng = random.Random(seed)
    today = today or date(year, 12, 31)
    start = date(year, 1, 1)
    managers = max(1, reps // 6)
    # The newest seller joined as the year began and ramps up over its first quarter.
    newcomer = reps - 1 if reps - managers >= 3 else None
    joined = date(year, 1, 1)
    seed_reps: list[SeedRep] = []
    for i in range(reps):
        first = FIRST_NAMES[i % len(FIRST_NAMES)]
        last = LAST_NAMES[(i * 7 + i // len(FIRST_NAMES)) % len(LAST_NAMES)]
        email = f"{first.lower()}.{last.lower()}{i}@acme.example"
        manager = None if i < managers else i % managers
        created = datetime(year - 1, 1 + i % 12, 1 + i % 28, 9, 0, tzinfo=UTC)
        if i == newcomer:
            created = datetime.combine(joined, time(9), tzinfo=UTC)
        seed_reps.append(SeedRep(i, first, last, email, manager, i % 17 != 16, created))

    sellers = [r.index for r in seed_reps if r.index >= managers] or [0]
    quotas, leads = _quotas_and_leads(seed, year, sellers, deals, newcomer, joined, today)
    quota_of = {(q.rep_index, q.month.month): q.amount for q in quotas}
    performance = {rep: Decimal(rng.randrange(70, 121)) / 100 for rep in sellers}
    if len(sellers) >= 4:
        performance[sellers[1]], performance[sellers[2]] = STAR, STRUGGLER
    # Closed deals fill the seller-months up to today, evenly; the rest are open pipeline.
    last_month = today.month if today.year == year else 12 if today > start else 0
    if today.year == year and today.day == 1:
        last_month -= 1  # nothing has closed yet this month: closings are before today
    cells = [
        (rep, month)
        for rep in sellers
        for month in range(1, last_month + 1)
        if rep != newcomer or month >= joined.month
    ]
    rng.shuffle(cells)
    closed = round(deals * 0.8) if cells else 0
    planned: list[tuple[int, date | None]] = [
        (cells[n % len(cells)][0], date(year, cells[n % len(cells)][1], 1)) for n in range(closed)
    ] + [(sellers[rng.randrange(len(sellers))], None) for _ in range(deals - closed)]
    by_cell: dict[tuple[int, date], list[int]] = {}
    for number, (owner, month_start) in enumerate(planned):
        if month_start is not None:
            by_cell.setdefault((owner, month_start), []).append(number)
    won: dict[int, Decimal] = {}  # deal number -> its amount, for the won ones
    for (owner, month_start), numbers in sorted(by_cell.items()):
        winners = [n for n in numbers if rng.random() < WIN_RATE] or numbers[:1]
        share = _elapsed_share(month_start, today)
        target = quota_of.get((owner, month_start.month), Decimal(50_000)) * performance[owner]
        target *= Decimal(rng.randrange(75, 126)) / 100 * share
        weights = [rng.uniform(0.5, 1.5) for _ in winners]
        for n, weight in zip(winners, weights, strict=True):
            won[n] = _amount(target * Decimal(weight / sum(weights)), rng)
    typical = {rep: quota_of.get((rep, 6), Decimal(50_000)) * performance[rep] for rep in sellers}
    seed_deals: list[SeedDeal] = []
    for i, (owner, month_start) in enumerate(planned):
        if month_start is None:
            close = today + timedelta(days=1 + rng.randrange(PIPELINE_DAYS))
            if rng.random() < 0.25:  # slipped: still open past its close date, as in every CRM
                close = today - timedelta(days=1 + rng.randrange(30))
            stage = OPEN_STAGES[rng.randrange(4)]
            amount = _amount(typical[owner] * Decimal(rng.uniform(0.3, 1.2)), rng)
        else:
            days = _days_in_month(month_start)
            if (month_start.year, month_start.month) == (today.year, today.month):
                days = max(today.day - 1, 1)  # closed before today: its stamps are past
            close = month_start + timedelta(days=rng.randrange(days))
            stage = "won" if i in won else "lost"
            amount = won.get(i) or _amount(typical[owner] * Decimal(rng.uniform(0.3, 1.2)), rng)
        yesterday = today - timedelta(days=1)
        created = _at(min(close - timedelta(days=rng.randrange(10, 90)), yesterday), rng)
        modified = _at(close, rng) if stage in ("won", "lost") else created
        reversed_on: date | None = None
        splits: tuple[SeedSplit, ...] = ()
        if stage == "won":
            reverse_on = close + timedelta(days=rng.randrange(10, 120))
            if rng.random() < 0.02 and reverse_on < today:
                reversed_on = reverse_on
                stage = "lost"
                modified = _at(reversed_on, rng)
            elif rng.random() < 0.05 and len(sellers) > 1:
                partner = sellers[(sellers.index(owner) + 1) % len(sellers)]
                share_pct = Decimal(rng.choice((30, 40, 50)))
                splits = (SeedSplit(owner, Decimal(100) - share_pct), SeedSplit(partner, share_pct))
        company = COMPANIES[rng.randrange(len(COMPANIES))]
        product = PRODUCTS[rng.randrange(len(PRODUCTS))]
        seed_deals.append(
            SeedDeal(
                index=i,
                name=f"{company} - {product} #{i + 1}",
                owner_index=owner,
                amount=amount,
                close_date=close,
                stage=stage,
                type=DEAL_TYPES[rng.randrange(len(DEAL_TYPES))],
                created_at=created,
                modified_at=modified,
                reversed_on=reversed_on,
                splits=splits,
            )
        )
    return SeedOrg(
        seed=seed,
        year=year,
        reps=tuple(seed_reps),
        deals=tuple(seed_deals),
        quotas=quotas,
        leads=leads,
    )


def _days_in_month(first: date) -> int:
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return (following - first).days


def _elapsed_share(first: date, today: date) -> Decimal:
    """How much of the month starting ``first`` has gone by on ``today`` (1 once it is over)."""
    if (first.year, first.month) != (today.year, today.month):
        return Decimal(1)
    return Decimal(today.day) / _days_in_month(first)


def _amount(mean: Decimal, rng: random.Random) -> Decimal:
    """A deal amount near ``mean``: whole dollars, or dollars and cents one time in three."""
    dollars = max(int(mean), 500)
    cents = rng.randrange(100) if rng.random() < 0.3 else 0
    return Decimal(dollars) + Decimal(cents) / 100


def _quotas_and_leads(
    seed: int,
    year: int,
    sellers: list[int],
    deals: int,
    newcomer: int | None = None,
    joined: date | None = None,
    today: date | None = None,
) -> tuple[tuple[SeedQuota, ...], tuple[SeedLead, ...]]:
    """Monthly quotas for every seller (30,000-80,000, 2-6 deals) and about a lead per deal.

    The newcomer has none before joining and ramps over three months (25 %, 50 %,
    75 % of a full quota). Drawn from a generator of their own.
    """
    rng = random.Random(seed * 7919 + 1)
    ramp = (Decimal("0.25"), Decimal("0.5"), Decimal("0.75"))
    quotas: list[SeedQuota] = []
    for rep in sellers:
        for month in range(1, 13):
            amount = Decimal(rng.randrange(6, 17) * 5000)
            quantity = rng.randrange(2, 7)
            if rep == newcomer and joined is not None:
                months_in = month - joined.month
                if months_in < 0:
                    continue
                if months_in < len(ramp):
                    amount = amount * ramp[months_in]
            quotas.append(SeedQuota(rep, date(year, month, 1), amount, quantity))
    start = date(year, 1, 1)
    days_in_year = (date(year + 1, 1, 1) - start).days
    if today is not None:  # every lead was created before today
        days_in_year = max(min(days_in_year, (today - start).days), 1)
    leads = tuple(
        SeedLead(
            i,
            sellers[rng.randrange(len(sellers))],
            _at(start + timedelta(days=rng.randrange(days_in_year)), rng),
            rng.random() < 0.3,
        )
        for i in range(deals)
    )
    return tuple(quotas), leads
