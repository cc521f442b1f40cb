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


def generate(seed: int = 7, reps: int = 12, deals: int = 400, year: int = 2026) -> SeedOrg:
    """Build a plausible organisation: managers over teams of reps, a year of deals.

    About 1 rep in 6 is a manager; deals are spread over the year with amounts
    between 1,000 and 120,000 in whole dollars or cents, ~45 % won, ~30 % lost,
    the rest open; about 2 % of won deals are reversed 10-120 days later, and
    about 5 % of won deals are split between two reps.
    """
    if reps < 1:
        raise ValueError("a seeded org needs at least one rep")
    rng = random.Random(seed)
    managers = max(1, reps // 6)
    seed_reps: list[SeedRep] = []
    for i in range(reps):
        first = FIRST_NAMES[i % len(FIRST_NAMES)]
        last = LAST_NAMES[(i * 7 + i // len(FIRST_NAMES)) % len(LAST_NAMES)]
        email = f"{first.lower()}.{last.lower()}{i}@acme.example"
        manager = None if i < managers else i % managers
        created = datetime(year - 1, 1 + i % 12, 1 + i % 28, 9, 0, tzinfo=UTC)
        seed_reps.append(SeedRep(i, first, last, email, manager, i % 17 != 16, created))

    sellers = [r.index for r in seed_reps if r.index >= managers] or [0]
    start = date(year, 1, 1)
    days_in_year = (date(year + 1, 1, 1) - start).days
    seed_deals: list[SeedDeal] = []
    for i in range(deals):
        owner = sellers[rng.randrange(len(sellers))]
        close = start + timedelta(days=rng.randrange(days_in_year))
        created = _at(close - timedelta(days=rng.randrange(10, 90)), rng)
        cents = rng.randrange(100) if rng.random() < 0.3 else 0
        amount = Decimal(rng.randrange(1_000, 120_000)) + Decimal(cents) / 100
        roll = rng.random()
        stage = "won" if roll < 0.45 else "lost" if roll < 0.75 else OPEN_STAGES[rng.randrange(4)]
        modified = _at(close, rng) if stage in ("won", "lost") else created
        reversed_on: date | None = None
        splits: tuple[SeedSplit, ...] = ()
        if stage == "won":
            if rng.random() < 0.02:
                reversed_on = close + timedelta(days=rng.randrange(10, 120))
                stage = "lost"
                modified = _at(reversed_on, rng)
            elif rng.random() < 0.05 and len(sellers) > 1:
                partner = sellers[(sellers.index(owner) + 1) % len(sellers)]
                share = Decimal(rng.choice((30, 40, 50)))
                splits = (SeedSplit(owner, Decimal(100) - share), SeedSplit(partner, share))
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
    quotas, leads = _quotas_and_leads(seed, year, sellers, deals)
    return SeedOrg(
        seed=seed,
        year=year,
        reps=tuple(seed_reps),
        deals=tuple(seed_deals),
        quotas=quotas,
        leads=leads,
    )


def _quotas_and_leads(
    seed: int, year: int, sellers: list[int], deals: int
) -> tuple[tuple[SeedQuota, ...], tuple[SeedLead, ...]]:
    """Monthly quotas for every seller (30,000-80,000, 2-6 deals) and about a lead per deal.

    Drawn from a generator of their own, so the users and deals of a seed stay
    what they were before quotas and leads were seeded.
    """
    rng = random.Random(seed * 7919 + 1)
    quotas = tuple(
        SeedQuota(
            rep, date(year, month, 1), Decimal(rng.randrange(6, 17) * 5000), rng.randrange(2, 7)
        )
        for rep in sellers
        for month in range(1, 13)
    )
    start = date(year, 1, 1)
    days_in_year = (date(year + 1, 1, 1) - start).days
    leads = tuple(
        SeedLead(
            i,
            sellers[rng.randrange(len(sellers))],
            _at(start + timedelta(days=rng.randrange(days_in_year)), rng),
            rng.random() < 0.3,
        )
        for i in range(deals)
    )
    return quotas, leads
