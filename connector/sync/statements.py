"""Assembling statements: the engine's one entry point, :func:`calculate`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from connector.models import CalcWarning, Deal, Rep, Statement
from connector.plans import Plan
from connector.sync.periods import PeriodKind


@dataclass(frozen=True, slots=True)
class Calculation:
    statements: tuple[Statement, ...]  # sorted by rep id, then period, then plan
    warnings: tuple[CalcWarning, ...]


def calculate(
    plans: Sequence[Plan],
    reps: Sequence[Rep],
    deals: Sequence[Deal],
    *,
    period_kind: PeriodKind,
    as_of: date,
) -> Calculation:
    """Every statement of every plan member, from their first period to the as-of period.

    Raises :class:`connector.errors.CalculationError` naming the record for
    inputs that cannot be computed.
    """
    raise NotImplementedError("being written")
