"""The compensation plan schema (``plans:`` in spm.yaml), as the engine reads it.

Plans are pydantic models so that every mistake in spm.yaml is reported with
the path to the field; they are frozen, so the engine can share them freely.
Money and rates are ``Decimal`` read from text: the config loader keeps YAML
numbers as text, and :func:`connector.core.money.parse_decimal` refuses floats.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator

from connector.core.money import ONE, ZERO, is_whole_cents, parse_decimal

# Past these a figure is a typo, not a plan (and would overflow exact arithmetic).
MAX_MONEY = Decimal(10) ** 14  # Salesforce's Currency(16,2) holds under this
MAX_NUMBER = MAX_MONEY  # tier bounds may be money (tiers_on: amount)
FIRST_YEAR, LAST_YEAR = 1990, 2100


def _decimal(value: object) -> Decimal:
    number = parse_decimal(value)
    if abs(number) >= MAX_NUMBER:
        raise ValueError(f"{value} is out of range (under {MAX_NUMBER:,})")
    return number


Number = Annotated[Decimal, BeforeValidator(_decimal)]


def _money(value: object) -> Decimal:
    amount = parse_decimal(value)
    if abs(amount) >= MAX_MONEY:
        raise ValueError(f"{value} is beyond any plausible amount (under {MAX_MONEY:,})")
    if not is_whole_cents(amount):
        raise ValueError(f"{value} has more than two decimal places; give whole cents")
    return amount


Money = Annotated[Decimal, BeforeValidator(_money)]


def _rate(value: object) -> Decimal:
    rate = parse_decimal(value)
    if not ZERO <= rate <= ONE:
        raise ValueError("must be between 0 and 1")
    return rate


Rate = Annotated[Decimal, BeforeValidator(_rate)]


def _plan_date(value: object) -> date:
    """A calendar date written as one (YAML date or ``YYYY-MM-DD``), in a plausible year."""
    if isinstance(value, datetime):
        raise ValueError(f"{value} is a moment; give a date (YYYY-MM-DD)")
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = date.fromisoformat(value.strip()) if len(value.strip()) == 10 else value
    if not isinstance(value, date):
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"{value} is not a plausible plan date ({FIRST_YEAR}-{LAST_YEAR})")
    return value


PlanDate = Annotated[date, BeforeValidator(_plan_date)]


def member_key(member: str) -> str:
    """How a plan names a member, compared: emails are case-insensitive; CRM ids are
    not (Salesforce's 15-character ids differ only in case)."""
    return member.lower() if "@" in member else member


class _Model(BaseModel):
    # Numbers become text where text is expected: HubSpot owner ids are digits,
    # and `members: [12345]` must not be refused for want of quotes.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class Method(StrEnum):
    MARGINAL = "marginal"
    RETROACTIVE = "retroactive"


class TiersOn(StrEnum):
    ATTAINMENT = "attainment"
    AMOUNT = "amount"


class DrawType(StrEnum):
    RECOVERABLE = "recoverable"
    NON_RECOVERABLE = "non_recoverable"


class Forgive(StrEnum):
    NEVER = "never"
    ON_TERMINATION = "on_termination"
    AT_PLAN_END = "at_plan_end"


class Tier(_Model):
    up_to: Number | None = None
    rate: Rate


class Release(StrEnum):
    QUARTER_END = "quarter_end"
    YEAR_END = "year_end"
    PAYMENT = "payment"  # each deal's share, when the customer pays (a deal date column)


class Holdback(_Model):
    """Hold ``share`` of each period's commission until the end of the quarter or year
    (or the rep's last period on the plan), then release it all; or, with ``release:
    payment``, each deal's share until the deal's ``paid_on`` date column is set."""

    share: Rate = Field(gt=0)
    release: Release = Release.YEAR_END
    paid_on: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _paid_on_with_payment(self) -> Self:
        if self.release is Release.PAYMENT and self.paid_on is None:
            raise ValueError(
                "paid_on: name the deal column holding the day the customer paid (release: payment)"
            )
        if self.release is not Release.PAYMENT and self.paid_on is not None:
            raise ValueError("paid_on: only a payment holdback (release: payment) has one")
        return self


class Multiplier(_Model):
    """A deal whose columns match ``when`` earns ``factor`` times its commission."""

    when: dict[str, str] = Field(min_length=1)
    factor: Number = Field(gt=0)


class Decelerator(_Model):
    """Below ``below`` attainment in the period, every deal earns ``factor`` times."""

    below: Number = Field(gt=0)
    factor: Number = Field(ge=0, lt=1)


class Level(StrEnum):
    """Over what a figure is measured: the period alone, or the quarter or year to date."""

    PERIOD = "period"
    QUARTER = "quarter"
    YEAR = "year"


class Gate(_Model):
    """The tiers from ``above`` on pay their rate only while the plan's goal ``goal``
    stands at ``at`` attainment or more (in the period, or over the quarter or year to
    date); otherwise the rate of the tier below."""

    goal: str = Field(min_length=1)
    at: Number = Field(gt=0)
    above: Number = Field(gt=0)  # a tier bound: a fraction for attainment tiers, else money
    level: Level = Level.PERIOD


class Commission(_Model):
    method: Method = Method.MARGINAL
    tiers_on: TiersOn = TiersOn.ATTAINMENT
    tiers: tuple[Tier, ...] = Field(min_length=1)
    cap: Money | None = None
    multipliers: tuple[Multiplier, ...] = ()
    decelerator: Decelerator | None = None
    gate: Gate | None = None
    # Attainment over the quarter or year to date, paid monthly: the difference is trued
    # up in the window's closing period (the cumulative-quota design).
    true_up: Level | None = None

    @model_validator(mode="after")
    def _tiers_increase(self) -> Self:
        *bounded, last = self.tiers
        if last.up_to is not None:
            raise ValueError("the last tier must have no up_to (it covers everything above)")
        previous: Decimal | None = None
        for index, tier in enumerate(bounded):
            if tier.up_to is None:
                raise ValueError(f"tiers[{index}]: only the last tier may omit up_to")
            if tier.up_to <= 0:
                raise ValueError(f"tiers[{index}].up_to: must be greater than 0")
            if previous is not None and tier.up_to <= previous:
                raise ValueError(
                    f"tiers[{index}].up_to: tier bounds must strictly increase "
                    f"({tier.up_to} follows {previous})"
                )
            previous = tier.up_to
        if self.cap is not None and self.cap < 0:
            raise ValueError("cap: must not be negative")
        if self.true_up is Level.PERIOD:
            raise ValueError("true_up: give quarter or year (a period needs no true-up)")
        if self.true_up is not None and self.tiers_on is not TiersOn.ATTAINMENT:
            raise ValueError(
                "true_up: compares the quarter's or year's bookings with its quota; it needs "
                "attainment tiers (tiers_on: attainment)"
            )
        if self.gate is not None:
            bounds = [tier.up_to for tier in bounded]
            if self.gate.above not in bounds:
                listed = ", ".join(str(b) for b in bounds) or "none"
                raise ValueError(
                    f"gate.above: {self.gate.above} is not a tier bound (up_to: {listed}): the "
                    "gate holds back the tiers from that bound on"
                )
        return self


def _depth(value: object) -> int | None:
    """``all`` (None: every level below) or a number of levels, 1 being direct reports."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return None
    try:
        levels = int(str(value).strip())
    except ValueError:
        raise ValueError(
            f"{value!r}: give 1 (direct reports), a number of levels, or all"
        ) from None
    if levels < 1:
        raise ValueError(f"{value!r}: give 1 (direct reports), a number of levels, or all")
    return levels


Depth = Annotated[int | None, BeforeValidator(_depth)]


class Override(_Model):
    """A manager's share of the credited bookings of the reps below them.

    One ``rate`` on every credit, or ``tiers`` on the period's team bookings
    (marginal, in money or in attainment of the manager's own quota).
    ``depth`` counts reporting levels: 1 is direct reports, ``all`` the whole
    hierarchy below.
    """

    rate: Rate | None = None
    tiers: tuple[Tier, ...] | None = None
    tiers_on: TiersOn = TiersOn.AMOUNT
    depth: Depth = 1

    @model_validator(mode="after")
    def _rate_or_tiers(self) -> Self:
        if (self.rate is None) == (self.tiers is None):
            raise ValueError("give exactly one of rate (one rate on every credit) or tiers")
        self.commission()  # the tiers' own rules (increasing bounds, an open last tier)
        return self

    def commission(self) -> Commission:
        """The override's tiers as a commission schedule (marginal, no cap)."""
        tiers = self.tiers if self.tiers is not None else (Tier(rate=self.rate or ZERO),)
        return _override_commission(tiers, self.tiers_on)

    @property
    def top_rate(self) -> Decimal:
        return max(tier.rate for tier in self.commission().tiers)


@functools.cache
def _override_commission(tiers: tuple[Tier, ...], on: TiersOn) -> Commission:
    return Commission(tiers=tiers, tiers_on=on)


class Draw(_Model):
    type: DrawType
    amount: Money = Field(ge=0)
    periods: int | None = Field(default=None, ge=1)
    recovery_cap: Rate = ONE
    forgive: Forgive = Forgive.NEVER


class GoalMetric(StrEnum):
    REVENUE = "revenue"  # credited amount
    DEALS_WON = "deals_won"  # credited won deals, a split deal by the rep's share
    NEW_CUSTOMERS = "new_customers"  # won deals that bring a new customer


class TargetSource(StrEnum):
    PLAN = "plan"  # the numbers in spm.yaml
    CRM = "crm"  # Salesforce ForecastingQuota / HubSpot goal targets, read by sync


class Payee(StrEnum):
    MEMBERS = "members"  # every member of the team (on this plan)
    MANAGER = "manager"  # the team's manager alone


# A goal id names CRM-facing output and bonus references: short, lower-case.
_GOAL_ID = r"^[a-z][a-z0-9_]{0,39}$"


class Goal(_Model):
    """A target beyond the plan's revenue quota, for each member or for each team."""

    id: str | None = Field(default=None, pattern=_GOAL_ID)
    metric: GoalMetric
    team: bool = False
    target: Number | None = None
    target_source: TargetSource = TargetSource.PLAN
    # By member (an individual goal) or by team id (a team goal).
    target_overrides: dict[str, Number] = Field(default_factory=dict)
    ramp: tuple[Number, ...] | None = None  # None: the plan's ramp (individual goals only)
    when: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.metric is GoalMetric.REVENUE and not self.team:
            raise ValueError(
                "metric: an individual revenue goal is the plan's quota; set `quota` "
                "(or give this goal `team: true`)"
            )
        if self.target is None and self.target_source is TargetSource.PLAN:
            raise ValueError("target: is required (or set target_source: crm)")
        if self.target is not None and self.target <= 0:
            raise ValueError("target: must be greater than 0")
        for key, target in self.target_overrides.items():
            if target <= 0:
                raise ValueError(f"target_overrides.{key}: must be greater than 0")
        if self.team and self.ramp:
            raise ValueError("ramp: a team goal has no ramp (the team's target is per period)")
        for index, factor in enumerate(self.ramp or ()):
            if factor <= 0:
                raise ValueError(f"ramp[{index}]: must be greater than 0")
        if self.target_source is TargetSource.CRM and (
            self.team or self.metric is GoalMetric.REVENUE
        ):
            raise ValueError(
                "target_source: crm quotas are per rep; a team goal's target is set in spm.yaml"
            )
        return self

    @property
    def key(self) -> str:
        """The goal's id: as written, else its metric (``team_`` first for a team goal)."""
        if self.id is not None:
            return self.id
        return f"team_{self.metric.value}" if self.team else self.metric.value

    def target_for(self, member: str) -> Decimal | None:
        key = member_key(member)
        for name, target in self.target_overrides.items():
            if member_key(name) == key:
                return target
        return self.target


class Bonus(_Model):
    at: Number = Field(gt=0)
    amount: Money
    # The goal whose attainment is compared; none: the plan's quota.
    goal: str | None = None
    # For a team goal: who is paid when the team reaches `at`.
    pay: Payee | None = None


class Spiff(_Model):
    name: str = Field(min_length=1)
    when: dict[str, str] = Field(min_length=1)
    amount: Money | None = None
    rate: Rate | None = None

    @model_validator(mode="after")
    def _amount_or_rate(self) -> Self:
        if (self.amount is None) == (self.rate is None):
            raise ValueError("give exactly one of amount (flat, per deal) or rate (on the credit)")
        return self


class Clawback(_Model):
    window_days: int = Field(ge=0)


class PlanVersion(_Model):
    """The plan's rules from ``effective_from`` on: what it sets replaces the plan's own.

    Members, dates, ramp, draw and goals stay the plan's: a rep's ledger, its period
    count and draw balance run on across versions. Only quota bonuses (without
    ``goal:``) are versioned.
    """

    effective_from: PlanDate
    quota: Money | None = None
    commission: Commission | None = None
    bonuses: tuple[Bonus, ...] | None = None
    spiffs: tuple[Spiff, ...] | None = None
    clawback: Clawback | None = None
    override: Override | None = None


def _starts_window(index: int, day: date, level: Level | None) -> None:
    """A version of a plan with true-ups starts with a quarter or year: a window's
    true-up is computed under one set of rules."""
    if level is Level.QUARTER and (day.day != 1 or day.month % 3 != 1):
        raise ValueError(
            f"versions[{index}].effective_from: {day} is not the first day of a quarter; "
            "with quarterly true-ups a version starts a quarter"
        )
    if level is Level.YEAR and (day.day != 1 or day.month != 1):
        raise ValueError(
            f"versions[{index}].effective_from: {day} is not 1 January; with annual "
            "true-ups a version starts a year"
        )


class Plan(_Model):
    id: str = Field(min_length=1)
    name: str = ""
    start: PlanDate
    end: PlanDate | None = None
    members: tuple[str, ...] = ()
    quota: Money | None = None
    # crm: each rep-period's quota comes from the CRM; `quota` (with overrides and
    # ramp) is then the fallback for rep-periods the CRM has none for.
    quota_source: TargetSource = TargetSource.PLAN
    quota_overrides: dict[str, Money] = Field(default_factory=dict)
    ramp: tuple[Number, ...] = ()
    commission: Commission
    draw: Draw | None = None
    goals: tuple[Goal, ...] = ()
    bonuses: tuple[Bonus, ...] = ()
    spiffs: tuple[Spiff, ...] = ()
    clawback: Clawback | None = None
    holdback: Holdback | None = None
    # Managers' plans: a share of the credited bookings of the reps below them.
    override: Override | None = None
    # Effective-dated changes to the rules, oldest first (pay-cycle.md).
    versions: tuple[PlanVersion, ...] = ()
    _in_force: dict[date, Plan] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self._versions_consistent()
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end: {self.end} is before start {self.start}")
        if self.quota is not None and self.quota <= 0:
            raise ValueError("quota: must be greater than 0")
        for member, quota in self.quota_overrides.items():
            if quota <= 0:
                raise ValueError(f"quota_overrides.{member}: must be greater than 0")
            if member not in self.members:
                raise ValueError(f"quota_overrides.{member}: is not one of the plan's members")
        for index, factor in enumerate(self.ramp):
            if factor <= 0:
                raise ValueError(f"ramp[{index}]: must be greater than 0")
        quota_bonuses = [bonus for bonus in self.bonuses if bonus.goal is None]
        needs_quota = self.commission.tiers_on is TiersOn.ATTAINMENT or quota_bonuses
        if self.quota is None and needs_quota and self.quota_source is TargetSource.PLAN:
            what = (
                "attainment tiers"
                if self.commission.tiers_on is TiersOn.ATTAINMENT
                else ("attainment bonuses")
            )
            raise ValueError(f"quota: is required by {what}")
        if len(set(self.members)) != len(self.members):
            raise ValueError("members: a member is listed twice")
        gate = self.commission.gate
        if gate is not None:
            named = self.goal(gate.goal)
            if named is None or named.team:
                known = ", ".join(g.key for g in self.goals if not g.team) or "none"
                raise ValueError(
                    f"commission.gate.goal: {gate.goal!r} is not an individual goal of this "
                    f"plan (its goals: {known})"
                )
        if (
            self.commission.decelerator is not None
            and self.commission.tiers_on is not (TiersOn.ATTAINMENT)
            and self.quota is None
            and self.quota_source is TargetSource.PLAN
        ):
            raise ValueError("commission.decelerator: needs a quota (it compares attainment)")
        self._goals_consistent()
        return self

    def _goals_consistent(self) -> None:
        seen: dict[str, int] = {}
        slots: dict[tuple[GoalMetric, bool], int] = {}
        for index, goal in enumerate(self.goals):
            if goal.key in seen:
                raise ValueError(
                    f"goals[{index}].id: {goal.key!r} is already the id of goals[{seen[goal.key]}]"
                )
            seen[goal.key] = index
            slot = (goal.metric, goal.team)
            if slot in slots:
                scope = "team" if goal.team else "individual"
                raise ValueError(
                    f"goals[{index}]: goals[{slots[slot]}] is already the {scope} "
                    f"{goal.metric.value} goal; a plan has one of each (each has its CRM field)"
                )
            slots[slot] = index
            if not goal.team:
                for member in goal.target_overrides:
                    if member not in self.members:
                        raise ValueError(
                            f"goals[{index}].target_overrides.{member}: is not one of the "
                            "plan's members"
                        )
        for index, bonus in enumerate(self.bonuses):
            if bonus.goal is None:
                if bonus.pay is not None:
                    raise ValueError(f"bonuses[{index}].pay: only a team goal's bonus has a payee")
                continue
            named = self.goal(bonus.goal)
            if named is None:
                known = ", ".join(g.key for g in self.goals) or "none"
                raise ValueError(
                    f"bonuses[{index}].goal: {bonus.goal!r} is not a goal of this plan "
                    f"(its goals: {known})"
                )
            if bonus.pay is not None and not named.team:
                raise ValueError(
                    f"bonuses[{index}].pay: {bonus.goal} is an individual goal; "
                    "only a team goal's bonus has a payee"
                )

    def _versions_consistent(self) -> None:
        previous = self.start
        for index, version in enumerate(self.versions):
            if version.effective_from <= previous:
                raise ValueError(
                    f"versions[{index}].effective_from: {version.effective_from} must be after "
                    f"{previous} (the plan's start, or the version before)"
                )
            if self.end is not None and version.effective_from > self.end:
                raise ValueError(
                    f"versions[{index}].effective_from: {version.effective_from} is after the "
                    f"plan's end {self.end}"
                )
            if version.bonuses is not None and any(b.goal for b in version.bonuses):
                raise ValueError(
                    f"versions[{index}].bonuses: only quota bonuses (without goal:) change "
                    "with a version; goal bonuses stay the plan's"
                )
            previous = version.effective_from
        quota, commission = self.quota, self.commission
        for index, version in enumerate(self.versions):
            quota = version.quota if version.quota is not None else quota
            before, commission = commission, version.commission or commission
            _starts_window(index, version.effective_from, before.true_up or commission.true_up)
            attainment = commission.tiers_on is TiersOn.ATTAINMENT
            if attainment and quota is None and self.quota_source is TargetSource.PLAN:
                raise ValueError(f"versions[{index}].quota: is required by attainment tiers")
        overrides = [self.override, *(version.override for version in self.versions)]
        has_quota = self.quota is not None or any(v.quota is not None for v in self.versions)
        if (
            any(o is not None and o.tiers_on is TiersOn.ATTAINMENT for o in overrides)
            and not has_quota
            and self.quota_source is TargetSource.PLAN
        ):
            raise ValueError("override.tiers_on: attainment tiers need the plan's quota")

    def in_force(self, day: date) -> Plan:
        """The plan with the rules of the version in force on ``day`` (itself if none)."""
        chosen = [v for v in self.versions if v.effective_from <= day]
        if not chosen:
            return self
        cache: dict[date, Plan] = self._in_force
        found = cache.get(chosen[-1].effective_from)
        if found is None:
            update: dict[str, object] = {}
            for version in chosen:
                for name in ("quota", "commission", "bonuses", "spiffs", "clawback", "override"):
                    value = getattr(version, name)
                    if value is None:
                        continue
                    if name == "bonuses":
                        goal_bonuses = tuple(b for b in self.bonuses if b.goal is not None)
                        value = (*goal_bonuses, *value)
                    update[name] = value
            found = cache[chosen[-1].effective_from] = self.model_copy(update=update)
        return found

    def fingerprint(self, day: date) -> str:
        """A short fingerprint of the rules in force on ``day``: what a closed period was
        computed with (a later version leaves it alone; an edit in place changes it)."""
        rules = self.in_force(day).model_dump(mode="json", exclude={"versions", "members"})
        text = json.dumps(rules, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def goal(self, key: str) -> Goal | None:
        return next((goal for goal in self.goals if goal.key == key), None)

    @property
    def team_goals(self) -> tuple[Goal, ...]:
        return tuple(goal for goal in self.goals if goal.team)

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


class TeamMember(_Model):
    """A member who joined or left the team on a given day."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, coerce_numbers_to_str=True, populate_by_name=True
    )
    id: str = Field(min_length=1)
    since: PlanDate | None = Field(default=None, alias="from")
    until: PlanDate | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.since is not None and self.until is not None and self.until < self.since:
            raise ValueError(f"until: {self.until} is before from {self.since}")
        return self


class Team(_Model):
    """A team listed in spm.yaml: its manager and members (ids or emails)."""

    id: str = Field(min_length=1)
    manager: str | None = None
    members: tuple[str | TeamMember, ...] = Field(min_length=1)
