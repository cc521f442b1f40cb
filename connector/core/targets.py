"""Each ledger period's quota and individual goal targets, from the plan or the CRM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from connector.core.goals import Prepared
from connector.core.ledgers import Ledger
from connector.core.models import CrmQuota
from connector.core.money import ZERO
from connector.core.periods import PeriodKind, label, period_of
from connector.core.plans import TargetSource
from connector.errors import CalculationError


def _ramped(base: Decimal, ramp: Sequence[Decimal], k: int) -> Decimal:
    return base * ramp[k - 1] if k <= len(ramp) else base


def resolve_targets(
    ledgers: Sequence[Ledger], crm_quotas: Sequence[CrmQuota], kind: PeriodKind, goals: Prepared
) -> None:
    """Each ledger period's quota and individual goal targets, from the plan or the CRM.

    A CRM figure counts in the period holding its start date (monthly CRM quotas
    add up in a quarter); a CRM figure of 0 is no quota. A rep-period the CRM has
    no figure for takes the plan's (the fallback), else it is an error that names
    every such rep-period at once.
    """
    amounts: dict[tuple[str, int], Decimal] = {}
    quantities: dict[tuple[str, int], Decimal] = {}
    for crm_quota in crm_quotas:
        key = (crm_quota.rep_id, period_of(crm_quota.start_date, kind))
        if crm_quota.amount is not None:
            amounts[key] = amounts.get(key, ZERO) + crm_quota.amount
        if crm_quota.quantity is not None:
            quantities[key] = quantities.get(key, ZERO) + crm_quota.quantity
    missing: dict[tuple[str, str], dict[str, list[int]]] = {}
    for ledger in ledgers:
        plan, rep_id = ledger.plan, ledger.rep.id
        bases = [
            (prepared, prepared.goal.target_for(ledger.member)) for prepared in goals[plan.id][0]
        ]
        for period in range(ledger.first, ledger.last + 1):
            k = period - ledger.first + 1
            base = ledger.quota if ledger.overridden else ledger.rules(period, kind).quota
            fallback = None if base is None else _ramped(base, plan.ramp, k)
            quota = fallback
            if plan.quota_source is TargetSource.CRM:
                quota = amounts.get((rep_id, period)) or fallback
                if quota is None:
                    missing.setdefault((plan.id, "quota"), {}).setdefault(rep_id, []).append(period)
            if quota is not None and quota <= 0:
                raise CalculationError(
                    f"plan {plan.id}: rep {rep_id} has a quota of {quota} "
                    f"in {label(period, kind)}; a quota must be greater than 0"
                )
            ledger.quotas[period] = quota
            for prepared, base in bases:
                goal = prepared.goal
                target = None if base is None else _ramped(base, prepared.ramp, k)
                if goal.target_source is TargetSource.CRM:
                    target = quantities.get((rep_id, period)) or target
                    if target is None:
                        what = (plan.id, f"{prepared.key} target")
                        missing.setdefault(what, {}).setdefault(rep_id, []).append(period)
                ledger.targets[prepared.key, period] = target
    if missing:
        raise CalculationError(
            "; ".join(
                f"plan {plan_id}: the CRM has no {what} for {_listing(by_rep, kind)}: enter "
                f"them in the CRM, or set {_fallback(what)} in spm.yaml to fall back on"
                for (plan_id, what), by_rep in sorted(missing.items())
            )
        )


def _fallback(what: str) -> str:
    """The spm.yaml setting that stands in for a missing CRM figure (``what`` of the error)."""
    if what == "quota":
        return "the plan's quota"
    return f"the {what.removesuffix(' target')} goal's target"


def _listing(by_rep: Mapping[str, list[int]], kind: PeriodKind, shown: int = 10) -> str:
    """``r1 2026-03; r2 2026-01 to 2026-12``: each rep's missing periods, runs as ranges."""
    parts: list[str] = []
    for rep_id in sorted(by_rep):
        periods = sorted(by_rep[rep_id])
        runs: list[list[int]] = []
        for period in periods:
            if runs and period == runs[-1][-1] + 1:
                runs[-1].append(period)
            else:
                runs.append([period])
        text = ", ".join(
            label(run[0], kind)
            if len(run) == 1
            else f"{label(run[0], kind)} to {label(run[-1], kind)}"
            for run in runs
        )
        parts.append(f"rep {rep_id} {text}")
    listed = ", ".join(parts[:shown])
    return f"{listed} and {len(parts) - shown} more reps" if len(parts) > shown else listed
