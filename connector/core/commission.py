"""Commission, SPIFF and bonus lines for one rep-period.

Marginal tiers are computed as a running integral of the rate over bookings:
with ``F(x) = ∫₀ˣ rate(t) dt`` (piecewise linear, the first tier's rate
extending below zero), a deal that takes cumulative bookings from ``a`` to
``b`` earns exactly ``F(b) - F(a)``. That one formula covers deals inside a
tier, deals crossing one or several bounds, and negative credits (credit
notes), with no slicing loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from connector.core.models import Deal, Line, LineKind
from connector.core.money import HUNDRED, ZERO, format_money, ratio, round_cents
from connector.core.plans import Bonus, Commission, Method, Spiff, TiersOn

_COMMISSION = LineKind.COMMISSION


class Credit(NamedTuple):
    """A rep's share of a credited deal."""

    deal: Deal
    amount: Decimal  # exact: amount × percent / 100
    share: Decimal  # percent / 100; 1 for an unsplit deal


def percent_text(fraction: Decimal) -> str:
    text = format(fraction * HUNDRED, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


@dataclass(frozen=True, slots=True)
class Schedule:
    """A plan's tiers resolved against one period's quota: bounds in money."""

    bounds: tuple[Decimal, ...]  # b_1 < … < b_{n-1}; the last tier is unbounded
    rates: tuple[Decimal, ...]  # n rates
    at_bounds: tuple[Decimal, ...]  # F(b_i)
    labels: tuple[str, ...]  # "tier 2 (<=150%) 15%"
    method: Method
    cap: Decimal | None
    # With a closed gate: the first tier held at a lower rate, and why.
    held: tuple[int, str] | None = None

    @classmethod
    def build(
        cls, commission: Commission, quota: Decimal | None, *, gate_closed: bool = False
    ) -> Schedule:
        """The tiers in money; with ``gate_closed``, the tiers from the gate's bound on pay
        the rate of the tier below it."""
        on_attainment = commission.tiers_on is TiersOn.ATTAINMENT
        if on_attainment and quota is None:
            raise ValueError("attainment tiers need a quota")
        bounds: list[Decimal] = []
        labels: list[str] = []
        previous_text = ""
        for index, tier in enumerate(commission.tiers, start=1):
            rate_text = percent_text(tier.rate)
            if tier.up_to is None:
                bound_text = f">{previous_text}" if previous_text else "all"
            else:
                bound = tier.up_to * quota if on_attainment and quota is not None else tier.up_to
                bounds.append(bound)
                previous_text = (
                    percent_text(tier.up_to) if on_attainment else format_money(tier.up_to)
                )
                bound_text = f"<={previous_text}"
            labels.append(f"tier {index} ({bound_text}) {rate_text}")
        rates = tuple(tier.rate for tier in commission.tiers)
        gate = commission.gate
        held: tuple[int, str] | None = None
        if gate_closed and gate is not None:
            lows = [None, *(tier.up_to for tier in commission.tiers[:-1])]
            gated = [i for i, low in enumerate(lows) if low is not None and low >= gate.above]
            if gated:
                kept = rates[gated[0] - 1]
                rates = tuple(kept if i in gated else rate for i, rate in enumerate(rates))
                note = (
                    f"held at {percent_text(kept)}: gate {gate.goal} below {percent_text(gate.at)}"
                )
                held = (gated[0], note)
                for i in gated:
                    labels[i] += f" {note}"
        at_bounds: list[Decimal] = []
        running = ZERO
        low = ZERO
        for index, bound in enumerate(bounds):
            # F(b_1) = r_1·b_1 holds for a negative b_1 too (the first rate extends below 0).
            running = rates[0] * bound if index == 0 else running + rates[index] * (bound - low)
            at_bounds.append(running)
            low = bound
        return cls(
            bounds=tuple(bounds),
            rates=rates,
            at_bounds=tuple(at_bounds),
            labels=tuple(labels),
            method=commission.method,
            cap=commission.cap,
            held=held,
        )

    def tier_of(self, bookings: Decimal) -> int:
        """Index of the tier holding ``bookings``; upper bounds are inclusive."""
        for index, bound in enumerate(self.bounds):
            if bookings <= bound:
                return index
        return len(self.bounds)

    def tiers_spanned(self, start: Decimal, end: Decimal) -> tuple[int, int]:
        """First and last tier of the bookings slice between ``start`` and ``end``.

        The slice is the half-open interval (low, high]: a slice that starts
        exactly on a bound lies wholly in the tier above it.
        """
        low, high = (start, end) if start <= end else (end, start)
        last = self.tier_of(high)
        if low == high:
            return last, last
        first = self.tier_of(low)
        if first < len(self.bounds) and low == self.bounds[first]:
            first += 1
        return first, last

    def integral(self, x: Decimal, tier: int) -> Decimal:
        """``F(x)``: commission on the first ``x`` of bookings, ``x`` being in ``tier``."""
        if tier == 0:
            return self.rates[0] * x
        return self.at_bounds[tier - 1] + self.rates[tier] * (x - self.bounds[tier - 1])


# A deal's factor on its commission and why (multipliers, a decelerator); None: 1.
Adjuster = Callable[[Deal], tuple[Decimal, str] | None]


def commission_lines(
    credits: Sequence[Credit], schedule: Schedule, adjust: Adjuster | None = None
) -> list[Line]:
    """One line per credit, in (close_date, id) order, rounded, then capped.

    ``adjust`` gives a deal's factor (multipliers, a decelerator): the line's exact
    amount is multiplied before it is rounded, and the cap applies after.
    """
    if schedule.method is Method.RETROACTIVE:
        lines = _retroactive(credits, schedule, adjust)
    else:
        lines = _marginal(credits, schedule, adjust)
    return _capped(lines, schedule.cap) if schedule.cap is not None else lines


def _factored(
    exact: Decimal, deal: Deal, rule: str, adjust: Adjuster | None
) -> tuple[Decimal, str]:
    if adjust is None:
        return round_cents(exact), rule
    found = adjust(deal)
    if found is None:
        return round_cents(exact), rule
    factor, why = found
    return round_cents(exact * factor), f"{rule}; × {factor.normalize():f} ({why})"


def _marginal(
    credits: Sequence[Credit], schedule: Schedule, adjust: Adjuster | None = None
) -> list[Line]:
    lines: list[Line] = []
    tier_of, integral = schedule.tier_of, schedule.integral
    rates, labels = schedule.rates, schedule.labels
    cumulative = ZERO
    tier = tier_of(cumulative)
    before = ZERO  # F(cumulative)
    for credit in credits:
        start, start_tier = cumulative, tier
        cumulative = start + credit.amount
        tier = tier_of(cumulative)
        after = integral(cumulative, tier)
        exact = after - before
        before = after
        if tier == start_tier:  # the whole slice lies in one tier
            rate, rule = rates[tier], labels[tier]
        else:
            first, last = schedule.tiers_spanned(start, cumulative)
            if first == last:
                rate, rule = rates[first], labels[first]
            else:
                rate = ratio(exact, credit.amount)
                rule = f"tiers {first + 1}-{last + 1} blended (marginal)"
                if schedule.held is not None and last >= schedule.held[0]:
                    rule = f"{rule}; tier {schedule.held[0] + 1} {schedule.held[1]}"
        amount, rule = _factored(exact, credit.deal, rule, adjust)
        lines.append(Line(_COMMISSION, credit.deal.id, amount, rate, rule, None, credit.amount))
    return lines


def _retroactive(
    credits: Sequence[Credit], schedule: Schedule, adjust: Adjuster | None = None
) -> list[Line]:
    total = sum((credit.amount for credit in credits), ZERO)
    tier = schedule.tier_of(total)
    rate = schedule.rates[tier]
    rule = f"{schedule.labels[tier]} on all bookings (retroactive)"
    lines: list[Line] = []
    for credit in credits:
        amount, said = _factored(credit.amount * rate, credit.deal, rule, adjust)
        lines.append(Line(_COMMISSION, credit.deal.id, amount, rate, said, None, credit.amount))
    return lines


def _capped(lines: list[Line], cap: Decimal) -> list[Line]:
    paid = ZERO
    result: list[Line] = []
    cap_text = format_money(cap)
    for line in lines:
        amount = line.amount
        if amount > 0 and amount > cap - paid:
            amount = max(cap - paid, ZERO)
            line = line._replace(
                amount=round_cents(amount),
                rule=f"{line.rule}; cut by the period cap of {cap_text}",
            )
        paid += amount
        result.append(line)
    return result


def deal_value(deal: Deal, key: str) -> str | None:
    """The text of a deal column, for SPIFF filters."""
    value = deal.properties.get(key)
    if value is not None:
        return value
    if key == "type":
        return deal.type
    if key == "status":
        return deal.status.value
    if key == "currency":
        return deal.currency
    if key == "owner_id":
        return deal.owner_id
    if key == "id":
        return deal.id
    return None


_ATTRIBUTES = {"type", "status", "currency", "owner_id", "id"}


def deal_matcher(when: Mapping[str, str]) -> Callable[[Deal], bool]:
    """A predicate for a SPIFF's or goal's ``when``; a single ``type`` condition, the common one,
    compares the attribute directly (this runs once per credited deal)."""
    if len(when) == 1:
        ((key, value),) = when.items()
        if key == "type":
            return lambda deal: deal.type == value or deal.properties.get("type") == value
    conditions = tuple(when.items())
    return lambda deal: all(deal_value(deal, key) == value for key, value in conditions)


def _spiff_rule(spiff: Spiff) -> str:
    if spiff.rate is not None:
        return f"SPIFF {spiff.name}: {percent_text(spiff.rate)} of credit"
    assert spiff.amount is not None  # the plan schema requires amount or rate
    return f"SPIFF {spiff.name}: {format_money(spiff.amount)} per deal"


def spiff_lines(credits: Sequence[Credit], spiffs: Sequence[Spiff]) -> list[Line]:
    """SPIFF lines, deal by deal in credit order, then in the plan's SPIFF order."""
    lines: list[Line] = []
    if not spiffs:
        return lines
    prepared = [(spiff, deal_matcher(spiff.when), _spiff_rule(spiff)) for spiff in spiffs]
    for credit in credits:
        deal = credit.deal
        for spiff, matches, rule in prepared:
            if not matches(deal):
                continue
            if spiff.rate is not None:
                amount = round_cents(credit.amount * spiff.rate)
                lines.append(Line(LineKind.SPIFF, deal.id, amount, spiff.rate, rule))
            elif spiff.amount is not None and credit.amount > 0:
                amount = round_cents(spiff.amount * credit.share)
                if credit.share != 1:
                    share_rule = f"{rule} × {percent_text(credit.share)} split"
                    lines.append(Line(LineKind.SPIFF, deal.id, amount, None, share_rule))
                else:
                    lines.append(Line(LineKind.SPIFF, deal.id, amount, None, rule))
    return lines


def bonus_lines(bookings: Decimal, quota: Decimal | None, bonuses: Sequence[Bonus]) -> list[Line]:
    """Attainment bonuses; thresholds compare exact bookings against ``at × quota``."""
    if quota is None:
        return []
    return [
        Line(
            LineKind.BONUS,
            None,
            round_cents(bonus.amount),
            None,
            f"bonus for attainment >= {percent_text(bonus.at)}",
        )
        for bonus in bonuses
        if bookings >= bonus.at * quota
    ]
