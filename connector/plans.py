"""The compensation plan schema (``plans:`` in spm.yaml), as the engine reads it.

Plans are pydantic models so that every mistake in spm.yaml is reported with
the path to the field; they are frozen, so the engine can share them freely.
Money and rates are ``Decimal`` read from text: the config loader keeps YAML
numbers as text, and :func:`connector.money.parse_decimal` refuses floats.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from connector.money import ONE, ZERO, is_whole_cents, parse_decimal

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


class Commission(_Model):
    method: Method = Method.MARGINAL
    tiers_on: TiersOn = TiersOn.ATTAINMENT
    tiers: tuple[Tier, ...] = Field(min_length=1)
    cap: Money | None = None

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
        return self


class Draw(_Model):
    type: DrawType
    amount: Money = Field(ge=0)
    periods: int | None = Field(default=None, ge=1)
    recovery_cap: Rate = ONE
    forgive: Forgive = Forgive.NEVER


class Bonus(_Model):
    at: Number = Field(gt=0)
    amount: Money


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


class Plan(_Model):
    id: str = Field(min_length=1)
    name: str = ""
    start: PlanDate
    end: PlanDate | None = None
    members: tuple[str, ...] = ()
    quota: Money | None = None
    quota_overrides: dict[str, Money] = Field(default_factory=dict)
    ramp: tuple[Number, ...] = ()
    commission: Commission
    draw: Draw | None = None
    bonuses: tuple[Bonus, ...] = ()
    spiffs: tuple[Spiff, ...] = ()
    clawback: Clawback | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
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
        needs_quota = self.commission.tiers_on is TiersOn.ATTAINMENT or self.bonuses
        if self.quota is None and needs_quota:
            what = (
                "attainment tiers"
                if self.commission.tiers_on is TiersOn.ATTAINMENT
                else ("attainment bonuses")
            )
            raise ValueError(f"quota: is required by {what}")
        if len(set(self.members)) != len(self.members):
            raise ValueError("members: a member is listed twice")
        return self

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


def membership_overlaps(plans: Iterable[Plan]) -> list[str]:
    """Members listed in two plans that cover a common day, as error messages."""
    problems: list[str] = []
    seen: dict[str, list[Plan]] = {}
    for plan in plans:
        for member in plan.members:
            # Emails are case-insensitive; CRM ids are not (Salesforce's 15-character ids).
            key = member.lower() if "@" in member else member
            for other in seen.get(key, []):
                if _overlap(plan, other):
                    problems.append(
                        f"member {member} is in plans {other.id} and {plan.id}, "
                        "which cover the same days"
                    )
            seen.setdefault(key, []).append(plan)
    return problems


def _overlap(a: Plan, b: Plan) -> bool:
    a_end = a.end or date.max
    b_end = b.end or date.max
    return a.start <= b_end and b.start <= a_end
